"""`sgpose train_backbone --backbone B`: train a backbone (SimpleBaseline or HRNet) where no official checkpoint is used.

The training is `sgpose.training.backbone.fit` (Adam + MultiStepLR on SimpleBaseline's JointsMSELoss;
resumable from `backbone.pt.last`, written after every epoch and on SIGTERM at the step reached). Outputs: `backbone.pt`
({"state_dict", "backbone", "num_joints", "epochs", "source", "source_sha256"}) and the per-epoch log CSV.
With `backbones.<name>.checkpoint` set nothing is trained: the official checkpoint is imported into backbone.pt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core.io import atomic_path
from sgpose.core.keypoints import get_layout
from sgpose.models import zoo
from sgpose.models.checkpoints import LOG_COLUMNS, load_backbone, save_backbone
from sgpose.runtime import interrupt, locks
from sgpose.stages import Run
from sgpose.training.backbone import fit

log = logging.getLogger(__name__)


def configured_checkpoint(params: Params, paths: Paths) -> Path:
    """The official checkpoint named by `backbones.<name>.checkpoint` (registry file under checkpoints/, or a path)."""
    key = params.backbone.checkpoint
    if zoo.is_registry_key(key):
        zoo.check_compatible(key, params.backbone, get_layout(params.layout).num_joints)
    path = zoo.checkpoint_path(key, paths.root)
    if not path.is_file():
        hint = (f"run `sgpose download --dataset {params.dataset}`: it fetches the registry checkpoints of the "
                "dataset's backbones" if zoo.is_registry_key(key) else f"check backbones.{params.backbone.name}.checkpoint")
        raise FileNotFoundError(f"{path}: checkpoint {key} not found ({hint})")
    return path


def import_checkpoint(params: Params, paths: Paths) -> None:
    """Where an official checkpoint exists nothing is trained: it is loaded strictly (any naming scheme)
    and saved as backbone.pt, so every later stage reads one file whatever its origin."""
    source = configured_checkpoint(params, paths)
    model = load_backbone(source, params.backbone, get_layout(params.layout).num_joints, configured=True)
    save_backbone(paths.backbone, model, params, epochs=0, source=source)
    with atomic_path(paths.backbone_log) as tmp:
        pd.DataFrame(columns=LOG_COLUMNS).to_csv(tmp, index=False)
    log.info("imported %s into %s (no training: official checkpoint)", source, paths.backbone)


def main(run: Run) -> None:
    params, paths = run.params, run.paths
    if params.backbone.controlled:
        raise ValueError(f"backbones.{params.backbone.name} is a controlled backbone ({params.backbone.arch}): it has no "
                         f"weights to train; its cache runs {params.backbone.features_from}'s backbone.pt")
    # one writer of backbone.pt and its resume file: a second run stops, naming the first; SIGTERM: a resume
    # point at the step reached, exit 143 (runtime.interrupt)
    with locks.output_lock(paths.backbone, paths.results, wait=False), interrupt.on_sigterm():
        if params.backbone.checkpoint:
            return import_checkpoint(params, paths)
        fit(params, paths)
