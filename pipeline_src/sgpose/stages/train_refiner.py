"""`sgpose train_refiner --backbone B --variant V`: train the structure-guided UNet (docs/method.md, Training).

Features come from the training source `train_refiner.features` names (`sgpose.training.sources`): the
HDF5 cache, read batch by batch (`train_refiner.num_workers` reader processes; a cache under
`train_refiner.preload_gb` is read into memory once), one cached view of each instance per epoch; or,
with `online`, the frozen backbone run in the loop on freshly augmented crops (`cache.augment`); a
controlled backbone's cache redraws its Y0 every epoch (`sgpose.controlled.source`). The loop is
`sgpose.training.refiner.fit`. `train_refiner.devices` > 1 trains with DDP (`sgpose.runtime.distributed`).
Resumable: `refiner.pt.last` is written after every epoch and, on SIGTERM (a SLURM time limit or
preemption), at the step reached; a re-run picks it up. The stage then exits 143 (`core.errors.Preempted`).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.controlled.source import ControlledSource
from sgpose.core import variants
from sgpose.core.modes import FeatureSource
from sgpose.runtime import compute, distributed, interrupt, locks
from sgpose.stages import Run
from sgpose.training.refiner import fit
from sgpose.training.resume import SUFFIX
from sgpose.training.sources import CachedSource, OnlineSource, TrainingSource, trunk_head


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="ours", type=variants.refined_argument,
                        help="which refiner to train: A1..A4, ours, or a sweep ours_S<k> / ours_linear; <variant>_seed<k>: "
                        "under train_refiner.seed + k (default ours)")


def main(run: Run) -> None:
    # a variant's seed k (`<variant>_seed<k>`, ablation.seeds) trains under train_refiner.seed + k
    params, paths, args = run.params.seeded(run.args.variant), run.paths, run.args
    with interrupt.on_sigterm():  # SIGTERM: a resume point at the step reached, exit 143 (runtime.interrupt)
        if params.train_refiner.devices > 1 and not distributed.launched():
            return _relaunch(params.train_refiner.devices, args.argv, paths.refiner(args.variant))
        dev = compute.device(params.compute)
        with distributed.process_group(dev) as (rank, world):
            # process 0 holds the lock of refiner.pt (and so of its resume file): a second run stops, naming it
            lock = locks.output_lock(paths.refiner(args.variant), paths.results, wait=False)
            with lock if rank == 0 else contextlib.nullcontext():
                fit(params, paths, args.variant, training_source(params, paths, dev), dev, rank, world)


def _relaunch(devices: int, argv: list[str], out: Path) -> None:
    """The DDP processes under torchrun; stopped by SIGTERM (they saved the resume point), exit 143 too."""
    try:
        distributed.relaunch(devices, argv)
    except ValueError:
        if interrupt.received():
            raise interrupt.stopped(f"the step its {devices} processes reached", f"{out}{SUFFIX}") from None
        raise


def training_source(params: Params, paths: Paths, dev: torch.device) -> TrainingSource:
    """The source `train_refiner.features` names (a controlled backbone: its cache, Y0 redrawn per epoch)."""
    if params.backbone.controlled:
        if params.train_refiner.features == FeatureSource.ONLINE:
            raise ValueError(f"backbones.{params.backbone.name}: a controlled backbone ({params.backbone.arch}) trains "
                             "from its cache; train_refiner.features: online is not supported for it")
        return ControlledSource(params, paths, dev)
    if params.train_refiner.features == FeatureSource.ONLINE:
        return OnlineSource(params, paths, dev)
    return CachedSource(paths.cache("train"), params.train_refiner, dev, head=trunk_head(params, paths, dev))
