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

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from sgpose.cache.transfer import ToHost
from sgpose.cache.writer import OVERFLOW, BackgroundAppends, cache_writer
from sgpose.config.schema import AugmentParams, BackboneParams, CacheParams, ComputeParams
from sgpose.core.errors import NonFiniteError
from sgpose.core.keypoints import KeypointLayout
from sgpose.core.modes import CacheStore
from sgpose.data.dataset import CropDataset, ViewCrops
from sgpose.models.backbones import forward_trunk, forward_views
from sgpose.runtime import compute, threads
from sgpose.runtime.timer import Timer

log = logging.getLogger(__name__)
META = ("center", "scale", "bbox", "image_id", "ann_id", "score")
VIEW_META = ("view", "rotation", "flipped")  # with cache.train_views > 1: how each view was drawn
TARGETS = ("target", "target_weight", "joints")
# (crop batch, backbone outputs, flip) -> the outputs a controlled backbone renders instead (Y0, evidence features)
Y0 = Callable[[dict, dict, bool], dict[str, torch.Tensor]]


def crop_dataset(rows, images_dir: str, bp: BackboneParams, layout: KeypointLayout, views: int,
                 augment: AugmentParams) -> Dataset:
    """A split's crops in cache order: the plain crop of each instance, or with `views` > 1 the plain crop
    and `views - 1` augmented ones, interleaved (sample i * views + v; draws seeded: reproducible)."""
    def crops(aug: AugmentParams | None) -> CropDataset:
        return CropDataset(rows, images_dir, bp.input_size, bp.heatmap_size, bp.heatmap_sigma, layout,
                           augment=aug, input_color=bp.input_color)

    return crops(None) if views == 1 else ViewCrops(crops(None), crops(augment), views)


def batch_arrays(batch: dict, outputs: dict[str, np.ndarray]) -> dict:
    """One DataLoader batch plus the backbone's outputs (on the host: `ToHost`), keyed by cache dataset name,
    as numpy."""
    out = {k: batch[k].numpy() for k in TARGETS}
    out |= {f"meta/{k}": batch[k].numpy() for k in (*META, *(VIEW_META if "view" in batch else ()))}
    return outputs | out


def write_shard(path: Path, crops: Dataset, samples: tuple[int, int], model: torch.nn.Module, cache: CacheParams,
                cp: ComputeParams, dev: torch.device, flip: bool, attrs: dict, workers: int = 0,
                y0: Y0 | None = None) -> dict[str, float]:
    """Samples [a, b) of `crops` through the frozen backbone (and its mirrored view with `flip`) into the shard
    at `path`, written atomically with `attrs`; with `y0` (a controlled backbone), what it renders replaces
    the model's outputs (Y0, and features with evidence). With `attrs["store"]` trunk the shard holds the
    trunk's map instead of the features (`forward_trunk`). Logs and returns where the time went (seconds):
    waiting for crops, on the device, waiting for the writer."""
    a, b = samples
    trunk = attrs.get("store") == CacheStore.TRUNK
    loader = DataLoader(Subset(crops, range(a, b)), batch_size=cache.batch_size, shuffle=False,
                        num_workers=threads.loader_workers(workers), pin_memory=dev.type == "cuda")

    def forward(batch: dict) -> dict[str, torch.Tensor]:
        images = compute.to_device(batch["image"], cp, dev)
        out = forward_trunk(model, images, cache.feature_levels) if trunk else forward_views(
            model, images, flip, cache.feature_levels)
        return out | (y0(batch, out, flip) if y0 else {})

    timer = Timer()
    with cache_writer(path, b - a, attrs, cache.dtype, cache.compression, background=True) as writer, \
            compute.inference(cp, dev):
        batches = timer.iterate(tqdm(loader, desc=f"cache {path.parent.name}/{path.name}", leave=False,
                                     dynamic_ncols=True), "crops")
        _write_batches(batches, forward, ToHost(dev, cache.dtype), writer, timer, path)
    log.info("wrote %s (%d samples; %s)", path, b - a, timer)
    return dict(timer.seconds)


def _write_batches(batches, forward, to_host: ToHost, writer: BackgroundAppends, timer: Timer, path: Path) -> None:
    """Each batch's outputs computed, then brought to the host while the next one computes, then appended.
    Outputs that overflow float16 (found on the device, where they are converted) are named in the log and
    the batch refused, as the writer refuses them (`CacheWriter._check_finite`): nothing of the shard is kept."""
    done = 0  # samples handed to the writer

    def write(batch: dict, pending) -> None:
        nonlocal done
        with timer("device"):
            outputs, overflowed = pending()
        b = len(batch["image"])
        if overflowed:
            key = sorted(overflowed)[0]
            log.warning(OVERFLOW, path, key)
            raise NonFiniteError(str(path), f"{key} of samples {done}-{done + b - 1} holds values beyond the float16 "
                                 "range (|x| > 65504), which it would store as infinity; set cache.dtype: float32")
        with timer("writer"):
            writer.append(batch_arrays(batch, outputs))
        done += b

    previous = None  # the batch whose outputs are on their way to the host
    for batch in batches:
        with timer("device"):
            pending = to_host.start(forward(batch))
        if previous is not None:
            write(*previous)
        previous = (batch, pending)
    if previous is not None:
        write(*previous)
    with timer("writer"):
        writer.join()  # the writer thread's queue drained: its share of the wall time
