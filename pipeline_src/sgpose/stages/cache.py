"""`sgpose cache`: run the frozen backbone once over every crop and store its outputs in HDF5.

For each split: Y0 heatmaps, the feature list (highest resolution first), the targets and the
crop meta, so the refiner never touches images again. The backbone is always `backbone.pt`
(trained by train_backbone, or an official checkpoint it imported); the sha256 of the weights'
source is recorded. With `cache.flip_test` the val
split also gets `flip/heatmaps` and `flip/feat/*`: the raw outputs for the mirrored crop
(docs/architecture.md, "Flip test"); `sgpose.data.heatmaps.flip_back` maps them back.

Each split is written as shards of `cache.shard_size` samples plus a manifest (`sgpose.shards`):
a re-run keeps every finished shard with the expected fingerprint and rebuilds the rest, so an
interrupted run resumes at the first unfinished shard. `--split S --shard i` writes one shard
(a Snakemake scatter job), `--split S --gather` only the manifest of finished shards.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from sgpose import shards
from sgpose.cache import cache_writer
from sgpose.config import Params, Paths
from sgpose.data.dataset import CropDataset
from sgpose.keypoints import get_layout
from sgpose.models.checkpoints import load_backbone
from sgpose.stages.train_backbone import backbone_source_sha256, read_instances

log = logging.getLogger(__name__)
SPLITS = ("train", "val")
FLIP_SPLITS = ("val",)  # the flip test is an inference-time device: no flipped train outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=SPLITS, help="only this split (default: both)")
    parser.add_argument("--shard", type=int, help="only this shard of --split (a scatter job; no manifest)")
    parser.add_argument("--gather", action="store_true",
                        help="only write the manifest of --split from its finished shards (the gather job)")


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
    split, shard, gather = getattr(args, "split", None), getattr(args, "shard", None), getattr(args, "gather", False)
    if (shard is not None or gather) and split is None:
        raise ValueError("--shard and --gather need --split")
    for name in [split] if split else SPLITS:
        plan = SplitPlan(params, paths, name)
        if gather:
            plan.gather()
            continue
        todo = plan.todo() if shard is None else plan.todo([shard])
        if todo:
            _write_shards(params, paths, plan, todo)
        if shard is None:
            plan.gather()


def cache_attrs(params: Params, paths: Paths) -> dict:
    """The attributes every shard and manifest carries: layout, sizes, backbone, weights, cache params."""
    bp, layout = params.backbone, get_layout(params.layout)
    return {"layout": layout.name, "input_size": list(bp.input_size), "heatmap_size": list(bp.heatmap_size),
            "num_joints": layout.num_joints, "backbone": bp.model_dump(mode="json"),
            "checkpoint_sha256": backbone_source_sha256(paths.backbone),
            "cache": params.cache.model_dump(mode="json", include={"dtype", "compression", "shard_size"})}


class SplitPlan:
    """One split's shards: ranges, fingerprints, which are finished, and the manifest over them."""

    def __init__(self, params: Params, paths: Paths, split: str):
        self.split, self.manifest = split, paths.cache(split)
        self.rows = read_instances(paths.instances(split))
        self.flip = params.cache.flip_test and split in FLIP_SPLITS
        self.attrs = cache_attrs(params, paths) | {"flip_test": self.flip}
        self.ranges = shards.shard_ranges(len(self.rows), params.cache.shard_size)
        code = shards.code_digest()
        self.prints = [shards.fingerprint(self.attrs, self.rows.iloc[a:b], a, code) for a, b in self.ranges]
        self.files = [shards.shard_path(self.manifest, i) for i in range(len(self.ranges))]

    def todo(self, which: list[int] | None = None) -> list[int]:
        """The shards (of `which`, default all) that are missing, unfinished, stale or damaged."""
        out = []
        for i in range(len(self.ranges)) if which is None else which:
            if not 0 <= i < len(self.ranges):
                raise ValueError(f"--shard {i}: {self.split} has shards 0..{len(self.ranges) - 1}")
            (a, b), path = self.ranges[i], self.files[i]
            problem = shards.shard_problem(path, b - a, self.prints[i])
            if problem is None:
                log.info("%s: finished, kept", path)
            else:
                out.append(i)
                if problem != "missing":
                    log.warning("%s: %s; rebuilding it", path, problem)
        return out

    def gather(self) -> None:
        """Write the manifest; every shard must be finished. Removes stray files in the shards folder."""
        unfinished = [str(self.files[i]) for i in range(len(self.ranges))
                      if shards.shard_problem(self.files[i], self.ranges[i][1] - self.ranges[i][0],
                                              self.prints[i]) is not None]
        if unfinished:
            raise ValueError(f"{self.manifest}: cannot gather, unfinished shards {unfinished}")
        for stray in shards.remove_strays(self.manifest, self.files):
            log.info("removed stray %s", stray)
        shards.write_manifest(self.manifest, self.files, [a for a, _ in self.ranges], len(self.rows))
        log.info("wrote %s (%d samples in %d shards)", self.manifest, len(self.rows), len(self.files))


def _write_shards(params: Params, paths: Paths, plan: SplitPlan, todo: list[int]) -> None:
    """Run the frozen backbone over the crops of the listed shards and write each shard atomically."""
    bp, layout = params.backbone, get_layout(params.layout)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_backbone(paths.backbone, bp, layout.num_joints).to(device)
    dataset = CropDataset(plan.rows, params.data.images_dir, bp.input_size, bp.heatmap_size, bp.heatmap_sigma,
                          layout, train=False)
    for i in todo:
        a, b = plan.ranges[i]
        loader = DataLoader(Subset(dataset, range(a, b)), batch_size=params.cache.batch_size, shuffle=False,
                            num_workers=params.train_backbone.num_workers)
        _write_shard(plan.files[i], loader, model, device, plan.flip, b - a,
                     plan.attrs | {"fingerprint": plan.prints[i], "shard_index": i, "shard_start": a}, params)


def _write_shard(path: Path, loader: DataLoader, model, device, flip: bool, n: int, attrs: dict,
                 params: Params) -> None:
    cp = params.cache
    with cache_writer(path, n, attrs, cp.dtype, cp.compression) as writer, torch.no_grad():
        for batch in tqdm(loader, desc=f"cache {path.name}", leave=False, dynamic_ncols=True):
            writer.append(batch_arrays(batch, run_backbone(model, batch["image"].to(device), flip)))
    log.info("wrote %s (%d samples)", path, n)
