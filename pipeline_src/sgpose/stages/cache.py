"""`sgpose cache --backbone B`: run the frozen backbone once over every split's crops; write HDF5.

Per split (train and the backbone's evaluation splits) the cache holds the backbone's features
(`cache.feature_levels`, highest resolution first), the initial heatmaps Y0, target heatmaps and
weights, joints and crop meta, so the refiner never touches images again. The backbone is always
`backbone.pt` (trained or imported by `train_backbone`), whose source is recorded. Evaluation splits
with `cache.flip_test` also get `flip/heatmaps` and `flip/feat/*`: the raw outputs for the mirrored
crop (docs/architecture.md, "Flip test"). The train split holds `cache.train_views` views of every
instance, interleaved (sample i * V + v is view v of instance i): view 0 the plain crop, the others
drawn with `cache.augment` (flip / scale / rotation), so refiner training can see one per epoch.

Each split is `cache.shards[split]` shard files plus a manifest (`sgpose.cache.shards`): a re-run keeps
every finished shard with the expected fingerprint and rebuilds the rest, so an interrupted run
resumes at the first unfinished shard. `--split S --shard i` writes one shard (a Snakemake scatter
job), `--split S --gather` only the manifest of finished shards (the gather job).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from sgpose import compute, locks, threads
from sgpose.cache import shards
from sgpose.cache.writer import cache_writer
from sgpose.config.paths import Paths
from sgpose.config.schema import SPLITS, AugmentParams
from sgpose.config.selection import Params
from sgpose.dag import imports
from sgpose.data.coco import read_instances
from sgpose.data.controlled import ControlledY0, weights
from sgpose.data.dataset import CropDataset, ViewCrops
from sgpose.data.integrity import verify_images
from sgpose.keypoints import get_layout
from sgpose.models.backbones import forward_views
from sgpose.models.checkpoints import backbone_source_sha256, load_backbone

log = logging.getLogger(__name__)
META = ("center", "scale", "bbox", "image_id", "ann_id", "score")
VIEW_META = ("view", "rotation", "flipped")  # with cache.train_views > 1: how each view was drawn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=SPLITS, help="only this split (default: train and the backbone's evals)")
    parser.add_argument("--shard", type=int, help="only this shard of --split (a scatter job; no manifest)")
    parser.add_argument("--gather", action="store_true",
                        help="only write the manifest of --split from its finished shards (the gather job)")


def batch_arrays(batch: dict, outputs: dict[str, torch.Tensor]) -> dict:
    """One DataLoader batch plus backbone outputs, keyed by cache dataset name, as numpy."""
    out = dict(outputs)
    out |= {k: batch[k] for k in ("target", "target_weight", "joints")}
    out |= {f"meta/{k}": batch[k] for k in (*META, *(VIEW_META if "view" in batch else ()))}
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    split, shard, gather = getattr(args, "split", None), getattr(args, "shard", None), getattr(args, "gather", False)
    if (shard is not None or gather) and split is None:
        raise ValueError("--shard and --gather need --split")
    if split is not None and split not in params.splits:
        raise ValueError(f"--split {split}: backbone {params.backbone.name} caches {', '.join(params.splits)}")
    for name in [split] if split else params.splits:
        plan = SplitPlan(params, paths, name)
        if gather:
            plan.gather()
            continue
        todo = plan.todo() if shard is None else plan.todo([shard])
        if todo:
            verify_images(params, paths, [f for i in todo for f in plan.rows["file_name"].iloc[slice(*plan.ranges[i])]])
            _write_shards(params, paths, plan, todo)
        if shard is None:
            plan.gather()


# the cache keys that shape a split's shards: every split's, then the train split's views (augment only
# draws views >= 1), then the evaluation splits' flip test; batch_size and shards never change a number
SHAPE_KEYS = ("dtype", "compression", "feature_levels")
TRAIN_KEYS = ("train_views",)
VIEW_KEYS = ("augment",)
EVAL_KEYS = ("flip_test",)


def shard_attrs(params: Params, paths: Paths, split: str) -> dict:
    """The attributes every shard and the manifest of `split` carry: layout, sizes, backbone, weights,
    the cache keys that shape this split's shards (`SHAPE_KEYS`...), the compute set-up in effect on
    this node, and the split's `flip_test` and `views`. The shard fingerprints hash them, so a key
    that does not shape a split's shards never rebuilds them (a train_views change keeps val's)."""
    bp, layout, cp = params.backbone, get_layout(params.layout), params.cache
    train = split == "train"
    keys = {*SHAPE_KEYS, *((*TRAIN_KEYS, *(VIEW_KEYS if cp.train_views > 1 else ())) if train else EVAL_KEYS)}
    return {"layout": layout.name, "input_size": list(bp.input_size), "heatmap_size": list(bp.heatmap_size),
            "num_joints": layout.num_joints, "backbone": bp.model_dump(mode="json", exclude={"train"}),
            "checkpoint_sha256": backbone_source_sha256(weights(params, paths)[1]),
            "cache": cp.model_dump(mode="json", include=keys),
            "compute": compute.effective(params.compute, compute.device(params.compute)),
            "flip_test": cp.flip_test and not train,  # the flip test is an inference-time device
            "views": cp.train_views if train else 1}


class SplitPlan:
    """One split's shards: instance ranges, fingerprints, which are finished, and the manifest over them."""

    def __init__(self, params: Params, paths: Paths, split: str):
        self.split, self.manifest, self.results = split, paths.cache(split), paths.results
        self.rows = read_instances(paths.instances(split))
        self.attrs = shard_attrs(params, paths, split)
        self.flip, self.views = self.attrs["flip_test"], self.attrs["views"]
        self.ranges = shards.shard_ranges(len(self.rows), params.cache.num_shards(split))
        code = shards.code_digest(imports.module_files(__name__), imports.ROOT)  # the code computing the numbers
        self.prints = [shards.fingerprint(self.attrs, self.rows.iloc[a:b], a, code) for a, b in self.ranges]
        self.files = [shards.shard_path(self.manifest, i) for i in range(len(self.ranges))]

    def samples(self, i: int) -> tuple[int, int]:
        """Sample range [start, stop) of shard i (instances times views)."""
        a, b = self.ranges[i]
        return a * self.views, b * self.views

    def problem(self, i: int, content: bool = True) -> str | None:
        """Why shard i must be (re)built, or None when it is finished and current (and, with `content`,
        every chunk passes its checksum)."""
        a, b = self.samples(i)
        return shards.shard_problem(self.files[i], b - a, self.prints[i], content)

    def todo(self, which: list[int] | None = None) -> list[int]:
        """The shards (of `which`, default all) that are missing, unfinished, stale or damaged."""
        out = []
        for i in range(len(self.ranges)) if which is None else which:
            if not 0 <= i < len(self.ranges):
                raise ValueError(f"--shard {i}: {self.split} has shards 0..{len(self.ranges) - 1} (cache.shards)")
            problem = self.problem(i)
            if problem is None:
                log.info("%s: finished, kept", self.files[i])
            else:
                out.append(i)
                if problem != "missing":
                    log.warning("%s: %s; rebuilding it", self.files[i], problem)
        return out

    def gather(self) -> None:
        """Write the manifest (under its lock); every shard must be finished (its content was checked when
        it was kept or written: not read again here). Removes stray files in the shards folder, never the
        temporary file of a live writer (its shard's lock is held)."""
        with locks.output_lock(self.manifest, self.results, wait=True):
            self._gather()

    def _gather(self) -> None:
        unfinished = [str(self.files[i]) for i in range(len(self.ranges)) if self.problem(i, content=False) is not None]
        if unfinished:
            raise ValueError(f"{self.manifest}: cannot gather, unfinished shards {unfinished}")
        for stray in shards.remove_strays(self.manifest, self.files, lambda p: locks.live_temporary(p, self.results)):
            log.info("removed stray %s", stray)
        n = len(self.rows) * self.views
        if shards.write_manifest(self.manifest, self.files, [self.samples(i)[0] for i in range(len(self.files))], n):
            log.info("wrote %s (%d samples in %d shards)", self.manifest, n, len(self.files))
        else:
            log.info("%s: current (same shards), kept", self.manifest)


def _crops(params: Params, plan: SplitPlan) -> Dataset:
    """The split's crops in cache order (with the training views; augmentation draws seeded: reproducible)."""
    bp, layout = params.backbone, get_layout(params.layout)

    def crops(augment: AugmentParams | None) -> CropDataset:
        return CropDataset(plan.rows, params.data.images_dir, bp.input_size, bp.heatmap_size, bp.heatmap_sigma,
                           layout, augment=augment, input_color=bp.input_color)

    return crops(None) if plan.views == 1 else ViewCrops(crops(None), crops(params.cache.augment), plan.views)


def _write_shards(params: Params, paths: Paths, plan: SplitPlan, todo: list[int]) -> None:
    """Run the frozen backbone over the crops of the listed shards and write each shard atomically."""
    cp, dev = params.compute, compute.device(params.compute)
    bp, path = weights(params, paths)  # a controlled backbone's features come from `features_from`
    model = compute.prepare_model(load_backbone(path, bp, get_layout(params.layout).num_joints), cp, dev).eval()
    y0 = ControlledY0(params, plan.rows) if params.backbone.controlled else None
    crops = _crops(params, plan)
    for i in todo:
        with locks.output_lock(plan.files[i], plan.results, wait=True):  # another `sgpose cache` may write it
            if plan.problem(i) is None:
                log.info("%s: finished by another process meanwhile, kept", plan.files[i])
                continue
            _write_one(params, plan, crops, model, dev, i, y0)


def _write_one(params: Params, plan: SplitPlan, crops: Dataset, model: torch.nn.Module, dev: torch.device,
               i: int, y0) -> None:
    """Shard i of the plan, written atomically (the caller holds its lock)."""
    a, b = plan.samples(i)
    loader = DataLoader(Subset(crops, range(a, b)), batch_size=params.cache.batch_size, shuffle=False,
                        num_workers=threads.loader_workers(params.train_backbone.num_workers), pin_memory=dev.type == "cuda")
    attrs = plan.attrs | {"fingerprint": plan.prints[i], "shard_index": i, "shard_start": a}
    _write_shard(plan.files[i], loader, model, params, dev, plan.flip, b - a, attrs, y0)


def _write_shard(path: Path, loader: DataLoader, model: torch.nn.Module, params: Params, dev: torch.device,
                 flip: bool, n: int, attrs: dict, y0: ControlledY0 | None = None) -> None:
    """One shard; with `y0` (a controlled backbone) Y0 is the rendered ground truth, not the model's."""
    cp = params.cache
    with cache_writer(path, n, attrs, cp.dtype, cp.compression, background=True) as writer, \
            compute.inference(params.compute, dev):
        for batch in tqdm(loader, desc=f"cache {path.parent.name}/{path.name}", leave=False, dynamic_ncols=True):
            images = compute.to_device(batch["image"], params.compute, dev)
            outputs = forward_views(model, images, flip, cp.feature_levels)
            writer.append(batch_arrays(batch, outputs | (y0.for_crops(batch, flip) if y0 else {})))
    log.info("wrote %s (%d samples)", path, n)
