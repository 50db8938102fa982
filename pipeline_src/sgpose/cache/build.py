"""The frozen backbone's outputs over a split's crops, written as cache shards (`sgpose cache`).

`crop_dataset` gives the crops in cache order (the training views interleaved); `write_shard` runs the
backbone over one shard's crops batch by batch and appends its outputs, the targets and the crop meta
to the shard file (`sgpose.cache.writer`, on a writer thread while the next batch runs). A controlled
backbone's Y0 (`sgpose.controlled`) comes in as `y0`: the cache does not know how it is drawn.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from sgpose.cache.writer import cache_writer
from sgpose.config.schema import AugmentParams, BackboneParams, CacheParams, ComputeParams
from sgpose.core.keypoints import KeypointLayout
from sgpose.core.modes import CacheStore
from sgpose.data.dataset import CropDataset, ViewCrops
from sgpose.models.backbones import forward_trunk, forward_views
from sgpose.runtime import compute, threads

log = logging.getLogger(__name__)
META = ("center", "scale", "bbox", "image_id", "ann_id", "score")
VIEW_META = ("view", "rotation", "flipped")  # with cache.train_views > 1: how each view was drawn
TARGETS = ("target", "target_weight", "joints")
Y0 = Callable[[dict, bool], dict[str, torch.Tensor]]  # (crop batch, flip) -> {"heatmaps", "flip/heatmaps"}


def crop_dataset(rows, images_dir: str, bp: BackboneParams, layout: KeypointLayout, views: int,
                 augment: AugmentParams) -> Dataset:
    """A split's crops in cache order: the plain crop of each instance, or with `views` > 1 the plain crop
    and `views - 1` augmented ones, interleaved (sample i * views + v; draws seeded: reproducible)."""
    def crops(aug: AugmentParams | None) -> CropDataset:
        return CropDataset(rows, images_dir, bp.input_size, bp.heatmap_size, bp.heatmap_sigma, layout,
                           augment=aug, input_color=bp.input_color)

    return crops(None) if views == 1 else ViewCrops(crops(None), crops(augment), views)


def batch_arrays(batch: dict, outputs: dict[str, torch.Tensor]) -> dict:
    """One DataLoader batch plus backbone outputs, keyed by cache dataset name, as numpy."""
    out = dict(outputs)
    out |= {k: batch[k] for k in TARGETS}
    out |= {f"meta/{k}": batch[k] for k in (*META, *(VIEW_META if "view" in batch else ()))}
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def write_shard(path: Path, crops: Dataset, samples: tuple[int, int], model: torch.nn.Module, cache: CacheParams,
                cp: ComputeParams, dev: torch.device, flip: bool, attrs: dict, workers: int = 0,
                y0: Y0 | None = None) -> None:
    """Samples [a, b) of `crops` through the frozen backbone (and its mirrored view with `flip`) into the shard
    at `path`, written atomically with `attrs`; with `y0`, Y0 is its rendering instead of the model's. With
    `attrs["store"]` trunk the shard holds the trunk's map instead of the features (`forward_trunk`)."""
    a, b = samples
    trunk = attrs.get("store") == CacheStore.TRUNK
    loader = DataLoader(Subset(crops, range(a, b)), batch_size=cache.batch_size, shuffle=False,
                        num_workers=threads.loader_workers(workers), pin_memory=dev.type == "cuda")
    with cache_writer(path, b - a, attrs, cache.dtype, cache.compression, background=True) as writer, \
            compute.inference(cp, dev):
        for batch in tqdm(loader, desc=f"cache {path.parent.name}/{path.name}", leave=False, dynamic_ncols=True):
            images = compute.to_device(batch["image"], cp, dev)
            outputs = (forward_trunk(model, images, cache.feature_levels) if trunk else
                       forward_views(model, images, flip, cache.feature_levels))
            writer.append(batch_arrays(batch, outputs | (y0(batch, flip) if y0 else {})))
    log.info("wrote %s (%d samples)", path, b - a)
