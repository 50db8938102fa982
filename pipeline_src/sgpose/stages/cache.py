"""`sgpose cache`: run the frozen backbone once over every crop and store its outputs in HDF5.

For each split: Y0 heatmaps, the feature list (highest resolution first), the targets and the
crop meta, so the refiner never touches images again. The backbone is always `backbone.pt`
(trained by train_backbone, or an official checkpoint it imported); the sha256 of the weights'
source is recorded. With `cache.flip_test` the val
split also gets `flip/heatmaps` and `flip/feat/*`: the raw outputs for the mirrored crop
(docs/architecture.md, "Flip test"); `sgpose.data.heatmaps.flip_back` maps them back.
"""

from __future__ import annotations

import argparse
import logging

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sgpose.cache import cache_writer
from sgpose.config import Params, Paths
from sgpose.data.dataset import CropDataset
from sgpose.keypoints import get_layout
from sgpose.models.checkpoints import load_backbone
from sgpose.stages.train_backbone import backbone_source_sha256, read_instances

log = logging.getLogger(__name__)
SPLITS = ("train", "val")
FLIP_SPLITS = ("val",)  # the flip test is an inference-time device: no flipped train outputs


def run_backbone(model: torch.nn.Module, images: torch.Tensor, flip: bool) -> dict[str, torch.Tensor]:
    """Heatmaps and features keyed by cache dataset name; with `flip`, also those of the mirrored crops."""
    heatmaps, feats = model(images)
    out = {"heatmaps": heatmaps, **{f"feat/{i}": f for i, f in enumerate(feats)}}
    if flip:
        heatmaps, feats = model(images.flip(-1))
        out |= {"flip/heatmaps": heatmaps, **{f"flip/feat/{i}": f for i, f in enumerate(feats)}}
    return out


def batch_arrays(batch: dict, outputs: dict[str, torch.Tensor]) -> dict:
    """One DataLoader batch plus backbone outputs, keyed by cache dataset name, as numpy."""
    out = dict(outputs)
    out |= {k: batch[k] for k in ("target", "target_weight", "joints")}
    out |= {f"meta/{k}": batch[k] for k in ("center", "scale", "bbox", "image_id", "ann_id", "score")}
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    bp, layout = params.backbone, get_layout(params.layout)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_backbone(paths.backbone, bp, layout.num_joints).to(device)
    attrs = {"layout": layout.name, "input_size": list(bp.input_size), "heatmap_size": list(bp.heatmap_size),
             "num_joints": layout.num_joints, "backbone": bp.model_dump(mode="json"),
             "checkpoint_sha256": backbone_source_sha256(paths.backbone)}
    for split in SPLITS:
        flip = params.cache.flip_test and split in FLIP_SPLITS
        dataset = CropDataset(read_instances(paths.instances(split)), params.data.images_dir, bp.input_size,
                              bp.heatmap_size, bp.heatmap_sigma, layout, train=False)
        loader = DataLoader(dataset, batch_size=params.cache.batch_size, shuffle=False,
                            num_workers=params.train_backbone.num_workers)
        with cache_writer(paths.cache(split), len(dataset), attrs | {"flip_test": flip},
                          params.cache.dtype) as writer, torch.no_grad():
            for batch in tqdm(loader, desc=f"cache {split}", leave=False, dynamic_ncols=True):
                writer.append(batch_arrays(batch, run_backbone(model, batch["image"].to(device), flip)))
        log.info("wrote %s (%d samples)", paths.cache(split), len(dataset))
