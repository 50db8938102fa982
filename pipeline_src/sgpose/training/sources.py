"""Where refiner training batches come from: one contract, `TrainingSource`, and its sources.

Every source gives batches keyed like the cache (`heatmaps`, `feat/0..`, `target`, `target_weight`,
`joints`) for lists of instance indices (one epoch's batches), so the training loop does not know which it
reads: the HDF5 cache (`CachedSource`), the frozen backbone run on fresh augmented crops (`OnlineSource`),
or a controlled backbone's cache with Y0 redrawn every epoch (`sgpose.controlled.source`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch.utils.data import DataLoader

from sgpose.cache import shards
from sgpose.cache.head import TrunkHead
from sgpose.cache.reader import TRAIN_KEYS, CacheBatches, EpochLoader, prefetch_factor
from sgpose.config.paths import Paths
from sgpose.config.schema import TrainRefinerParams
from sgpose.config.selection import Params
from sgpose.core.io import sha256_file
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import read_instances
from sgpose.data.dataset import CropDataset
from sgpose.models.backbones import forward_views
from sgpose.models.checkpoints import backbone_source_sha256, load_backbone
from sgpose.models.features import FeatureInfo, select
from sgpose.runtime import compute, interrupt, threads

log = logging.getLogger(__name__)
TARGETS = ("target", "target_weight", "joints")


class TrainingSource(ABC):
    """Refiner training batches: `batches(batches, epoch)` yields one batch per list of instance indices
    (sample index = instance * views + view), keyed like the cache, on the CPU.

    `num_instances` and `views` size an epoch; `features` are the backbone features every batch holds
    (what the refiner is built for); `identity` names the data, so a resumed run never continues on
    other data."""

    num_instances: int
    views: int
    features: list[FeatureInfo]
    identity: str

    @abstractmethod
    def batches(self, batches: list[list[int]], epoch: int) -> Iterable[dict[str, torch.Tensor]]:
        """One epoch's batches, in this order."""


class CachedSource(TrainingSource):
    """Training batches read from the train cache; one of its views per instance and epoch. A cache of a
    SimpleBaseline's trunk (`cache.store: trunk`) has its features made by `head(attrs)` on the device."""

    def __init__(self, path: Path, tp: TrainRefinerParams, dev: torch.device, keys: tuple[str, ...] = TRAIN_KEYS,
                 head: Callable[[dict], TrunkHead] | None = None):
        # fp16 batches from the reader processes, float32 on the device (compute.to_device)
        self.data = CacheBatches(path, keys, as_stored=True, decoders=tp.decoders)
        if self.data.trunk and head is None:
            raise ValueError(f"{path}: holds a backbone's trunk (cache.store: trunk) and nothing here reruns its head")
        self.head = head(self.data.attrs) if self.data.trunk else None
        if self.data.nbytes <= tp.preload_gb * 1e9:
            self.data.load()
            log.info("%s: %.2f GB, read into memory (train_refiner.preload_gb %.1f)", path, self.data.nbytes / 1e9,
                     tp.preload_gb)
        # the batches the reader processes hold ready are bounded in bytes (train_refiner.prefetch_gb), not batches
        workers = threads.loader_workers(tp.num_workers)
        prefetch = prefetch_factor(tp.prefetch_gb * 1e9, workers, self.data.sample_nbytes * tp.batch_size)
        self.views, self.loader = self.data.views, EpochLoader(self.data, tp.num_workers, dev.type == "cuda", prefetch)
        self.num_instances = len(self.data) // self.views
        self.features = self.data.feature_info()
        # the cache's attributes name its backbone weights, parameters and (manifest) shard fingerprints
        self.identity = hashlib.sha256(json.dumps(self.data.attrs, sort_keys=True, default=str).encode()).hexdigest()

    def batches(self, batches: list[list[int]], epoch: int) -> Iterable[dict[str, torch.Tensor]]:
        loader = self.loader(batches)  # the same reader processes every epoch
        return loader if self.head is None else map(self.head.expand, loader)


class OnlineSource(TrainingSource):
    """Training batches computed by the frozen backbone on augmented crops (`features: online`):
    every epoch new draws of `cache.augment`, at the cost of a backbone forward per sample."""

    def __init__(self, params: Params, paths: Paths, dev: torch.device):
        bp, layout, self.cp, self.dev = params.backbone, get_layout(params.layout), params.compute, dev
        self.model = compute.prepare_model(load_backbone(paths.backbone, bp, layout.num_joints), self.cp, dev).eval()
        rows = read_instances(paths.instances("train"))
        self.crops = CropDataset(rows, params.data.images_dir, bp.input_size,
                                 bp.heatmap_size, bp.heatmap_sigma, layout, augment=params.cache.augment,
                                 seed=params.train_refiner.seed, input_color=bp.input_color)
        self.levels, self.workers = params.cache.feature_levels, params.train_refiner.num_workers
        self.features = select(self.model.feature_info, self.levels)
        self.views, self.num_instances = 1, len(self.crops)
        stamp = paths.download_stamp  # the images' sha256s: a resume must not continue on other data
        self.identity = json.dumps({"backbone": backbone_source_sha256(paths.backbone),
                                    "cache": params.cache.model_dump(mode="json"), "instances": shards.rows_digest(rows),
                                    "download": sha256_file(stamp) if stamp.is_file() else None}, sort_keys=True)

    def batches(self, batches: list[list[int]], epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        self.crops.set_epoch(epoch)
        loader = DataLoader(self.crops, batch_sampler=batches, num_workers=threads.loader_workers(self.workers),
                            pin_memory=self.dev.type == "cuda", worker_init_fn=interrupt.worker_init)
        for batch in loader:
            with compute.inference(self.cp, self.dev):
                out = forward_views(self.model, compute.to_device(batch["image"], self.cp, self.dev), False,
                                    self.levels)
            yield out | {k: batch[k] for k in TARGETS}


def trunk_head(params: Params, paths: Paths, dev: torch.device) -> Callable[[dict], TrunkHead]:
    """The head a trunk cache of this selection needs (`CachedSource`'s `head`): the features backbone's."""
    return lambda attrs: TrunkHead.load(paths.weights(params.backbone), params.features_backbone,
                                        get_layout(params.layout).num_joints, attrs, params.compute, dev)
