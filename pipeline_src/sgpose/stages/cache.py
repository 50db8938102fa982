"""`sgpose cache`: run the frozen backbone once over every crop and store its outputs in HDF5.

For each split: Y0 heatmaps, the feature list (highest resolution first), the targets and the
crop meta, so the refiner never touches images again. The backbone is `backbone.checkpoint`
(an official checkpoint) when set, else the one train_backbone wrote; its sha256 is recorded.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sgpose.cache import cache_writer
from sgpose.config import Params, Paths
from sgpose.data.dataset import CropDataset
from sgpose.data.download import sha256_file
from sgpose.keypoints import get_layout
from sgpose.models.simple_baseline import load_backbone
from sgpose.stages.train_backbone import read_instances

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


def backbone_path(params: Params, paths: Paths) -> Path:
    """The official checkpoint when configured, else the trained backbone."""
    return Path(params.backbone.checkpoint) if params.backbone.checkpoint else paths.backbone


def batch_arrays(batch: dict, heatmaps: torch.Tensor, feats: list[torch.Tensor]) -> dict:
    """One DataLoader batch plus backbone outputs, keyed by cache dataset name, as numpy."""
    out = {"heatmaps": heatmaps, **{f"feat/{i}": f for i, f in enumerate(feats)}}
    out |= {k: batch[k] for k in ("target", "target_weight", "joints")}
    out |= {f"meta/{k}": batch[k] for k in ("center", "scale", "bbox", "image_id", "ann_id", "score")}
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    bp, layout = params.backbone, get_layout(params.layout)
    ckpt = backbone_path(params, paths)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_backbone(ckpt, bp, layout.num_joints).to(device)
    attrs = {"layout": layout.name, "input_size": list(bp.input_size), "heatmap_size": list(bp.heatmap_size),
             "num_joints": layout.num_joints, "backbone": bp.model_dump(mode="json"),
             "checkpoint_sha256": sha256_file(ckpt)}
    for split in SPLITS:
        dataset = CropDataset(read_instances(paths.instances(split)), params.data.images_dir, bp.input_size,
                              bp.heatmap_size, bp.heatmap_sigma, layout, train=False)
        loader = DataLoader(dataset, batch_size=params.cache.batch_size, shuffle=False,
                            num_workers=params.train_backbone.num_workers)
        with cache_writer(paths.cache(split), len(dataset), attrs, params.cache.dtype) as writer, torch.no_grad():
            for batch in tqdm(loader, desc=f"cache {split}", leave=False, dynamic_ncols=True):
                heatmaps, feats = model(batch["image"].to(device))
                writer.append(batch_arrays(batch, heatmaps, feats))
        log.info("wrote %s (%d samples)", paths.cache(split), len(dataset))
