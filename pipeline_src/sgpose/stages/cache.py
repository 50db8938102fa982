"""`sgpose cache --backbone B`: run the frozen backbone once over every split's crops; write HDF5.

Per split (train and the backbone's evaluation splits) the cache holds the backbone's features
(`cache.feature_levels`, highest resolution first), the initial heatmaps Y0, target heatmaps and
weights, joints and crop meta, so the refiner never touches images again. The backbone is always
`backbone.pt` (trained or imported by `train_backbone`), whose source is recorded. Evaluation splits
with `cache.flip_test` also get `flip/heatmaps` and `flip/feat/*`: the raw outputs for the mirrored
crop (docs/architecture.md, "Flip test"). The train split holds `cache.train_views` views of every
instance, interleaved (sample i * V + v is view v of instance i): view 0 the plain crop, the others
drawn with `cache.augment` (flip / scale / rotation), so refiner training can see one per epoch.

Each split is `cache.shards[split]` shard files plus a manifest (`sgpose.cache.plan`): a re-run keeps
every finished shard with the expected fingerprint and rebuilds the rest, so an interrupted run
resumes at the first unfinished shard. `--split S --shard i` writes one shard (a Snakemake scatter
job), `--split S --gather` only the manifest of finished shards (the gather job). Finished shards are kept
even under `dvc repro -f` (they are persistent outputs, and current ones hold the bytes a rebuild would
write); `--rebuild` writes them again.
"""

from __future__ import annotations

import argparse
import logging

from sgpose.cache.build import crop_dataset, write_shard
from sgpose.cache.plan import SplitPlan
from sgpose.config.paths import Paths
from sgpose.config.schema import SPLITS
from sgpose.config.selection import Params
from sgpose.controlled.y0 import ControlledY0
from sgpose.core.keypoints import get_layout
from sgpose.data.integrity import verify_images
from sgpose.models.checkpoints import load_backbone
from sgpose.runtime import compute
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=SPLITS, help="only this split (default: train and the backbone's evals)")
    parser.add_argument("--shard", type=int, help="only this shard of --split (a scatter job; no manifest)")
    parser.add_argument("--gather", action="store_true",
                        help="only write the manifest of --split from its finished shards (the gather job)")
    parser.add_argument("--rebuild", action="store_true",
                        help="write every shard again, finished ones too (default: keep finished, current shards)")


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
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
        which = None if shard is None else [shard]
        todo = plan.indices(which) if getattr(args, "rebuild", False) else plan.todo(which)
        kept = len(plan.indices(which)) - len(todo)
        if kept:
            log.info("%s: kept %d finished, current shard%s (`dvc repro -f` keeps them: persistent outputs); to "
                     "write them again: sgpose cache --backbone %s --split %s --rebuild", plan.manifest, kept,
                     "s" * (kept != 1), params.backbone.name, name)
        if todo:
            verify_images(params, paths, [f for i in todo for f in plan.rows["file_name"].iloc[slice(*plan.ranges[i])]])
            write_shards(params, paths, plan, todo, rebuild=getattr(args, "rebuild", False))
        if shard is None:
            plan.gather()


def write_shards(params: Params, paths: Paths, plan: SplitPlan, todo: list[int], rebuild: bool = False) -> None:
    """Run the frozen backbone over the crops of the listed shards and write each shard atomically (under
    its lock: another `sgpose cache` may be writing it, and then it is kept, unless `rebuild`)."""
    cp, dev, layout = params.compute, compute.device(params.compute), get_layout(params.layout)
    bp = params.features_backbone  # a controlled backbone's features come from `features_from`
    model = compute.prepare_model(load_backbone(paths.weights(params.backbone), bp, layout.num_joints), cp, dev).eval()
    # a controlled backbone's Y0 (and, on evaluation splits, its features' evidence: training mixes fresh draws)
    y0 = ControlledY0(params, plan.rows, evidence=plan.split != "train").for_crops if params.backbone.controlled else None
    crops = crop_dataset(plan.rows, params.data.images_dir, params.backbone, layout, plan.views, params.cache.augment)
    for i in todo:
        with plan.lock(i):
            if not rebuild and plan.problem(i) is None:
                log.info("%s: finished by another process meanwhile, kept", plan.files[i])
                continue
            write_shard(plan.files[i], crops, plan.samples(i), model, params.cache, cp, dev, plan.flip,
                        plan.shard_attrs(i), params.train_backbone.num_workers, y0)
