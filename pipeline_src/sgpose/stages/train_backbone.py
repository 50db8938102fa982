"""`sgpose train_backbone --backbone B`: train a backbone (SimpleBaseline or HRNet) where no official checkpoint is used.

Adam + MultiStepLR (x0.1 at `lr_steps`) on SimpleBaseline's JointsMSELoss. Resumable: after
every epoch the model, optimizer, scheduler and log so far go to `backbone.pt.last` (atomically);
a rerun continues from it when it was made with the same parameters. Outputs: `backbone.pt`
({"state_dict", "backbone", "num_joints", "epochs", "source", "source_sha256"}) and the per-epoch log CSV.
With `backbones.<name>.checkpoint` set nothing is trained: the official checkpoint is imported into backbone.pt.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.data.coco import read_instances
from sgpose.data.dataset import CropDataset
from sgpose.data.download import sha256_file
from sgpose.data.integrity import verify_images
from sgpose.io import atomic_path
from sgpose.keypoints import get_layout
from sgpose.models import zoo
from sgpose.models.backbones import build_backbone
from sgpose.models.checkpoints import load_backbone

log = logging.getLogger(__name__)
LOG_COLUMNS = ["epoch", "loss", "lr", "seconds"]


def joints_mse_loss(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """SimpleBaseline's JointsMSELoss: 0.5 * mean over joints of MSE(pred * w, target * w)."""
    w = weight[..., None, None]
    return 0.5 * ((pred - target) * w).pow(2).mean()


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, desc: str) -> float:
    """One pass over the loader; returns the sample-weighted mean loss."""
    model.train()
    total, count = 0.0, 0
    for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        heatmaps, _ = model(batch["image"].to(device))
        loss = joints_mse_loss(heatmaps, batch["target"].to(device), batch["target_weight"].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["image"])
        count += len(batch["image"])
    return total / max(count, 1)


def _fingerprint(params: Params, num_joints: int) -> dict:
    """What a resume checkpoint must have been made with to be continued (any `epochs` not below its own)."""
    train = params.train_backbone.model_dump(mode="json", exclude={"epochs", "num_workers"})
    return {"backbone": params.backbone.model_dump(mode="json", exclude={"train"}), "train": train,
            "layout": params.layout, "num_joints": num_joints}


def _try_resume(last: Path, fingerprint: dict, epochs: int, model, optimizer, scheduler) -> tuple[int, list[dict]]:
    """Load `last` into the training state if compatible; returns (epochs done, log rows)."""
    if not last.is_file():
        return 0, []
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != fingerprint or state["epoch"] > epochs:
            log.warning("%s: made with other parameters; starting from scratch", last)
            return 0, []
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except Exception as err:  # a corrupt or foreign file must not block a fresh run
        log.warning("%s: cannot resume (%s); starting from scratch", last, err)
        return 0, []
    log.info("resuming from %s after epoch %d", last, state["epoch"])
    return int(state["epoch"]), list(state["log"])


def configured_checkpoint(params: Params, paths: Paths) -> Path:
    """The official checkpoint named by `backbones.<name>.checkpoint` (registry file under checkpoints/, or a path)."""
    key = params.backbone.checkpoint
    if zoo.is_registry_key(key):
        zoo.check_compatible(key, params.backbone, get_layout(params.layout).num_joints)
    path = zoo.checkpoint_path(key, paths.root)
    if not path.is_file() and zoo.is_registry_key(key):  # fetched here: only the backbones that import it
        path = zoo.fetch_checkpoint(key, paths.root, os.environ.get("SGPOSE_MIRROR") or None)
    if not path.is_file():
        hint = "run `sgpose download`" if zoo.is_registry_key(key) else f"check backbones.{params.backbone.name}.checkpoint"
        raise FileNotFoundError(f"{path}: checkpoint {key} not found ({hint})")
    return path


def import_checkpoint(params: Params, paths: Paths) -> None:
    """Where an official checkpoint exists nothing is trained: it is loaded strictly (any naming scheme)
    and saved as backbone.pt, so every later stage reads one file whatever its origin."""
    source = configured_checkpoint(params, paths)
    model = load_backbone(source, params.backbone, get_layout(params.layout).num_joints)
    save_backbone(paths.backbone, model, params, epochs=0, source=source)
    with atomic_path(paths.backbone_log) as tmp:
        pd.DataFrame(columns=LOG_COLUMNS).to_csv(tmp, index=False)
    log.info("imported %s into %s (no training: official checkpoint)", source, paths.backbone)


def save_backbone(path: Path, model: nn.Module, params: Params, epochs: int, source: Path | None = None) -> None:
    """backbone.pt: weights, the params that built them, and the sha256 of an imported source file."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "backbone": params.backbone.model_dump(mode="json"),
                    "num_joints": get_layout(params.layout).num_joints, "epochs": epochs,
                    "source": str(source) if source else None,
                    "source_sha256": sha256_file(source) if source else None}, tmp)


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    if params.backbone.checkpoint:
        return import_checkpoint(params, paths)
    tp, bp = params.train_backbone, params.backbone
    layout = get_layout(params.layout)
    torch.manual_seed(tp.seed)
    instances = read_instances(paths.instances("train"))
    verify_images(params, paths, instances["file_name"])  # the downloaded bytes, not damaged ones
    dataset = CropDataset(instances, params.data.images_dir, bp.input_size,
                          bp.heatmap_size, bp.heatmap_sigma, layout, augment=tp.augment, seed=tp.seed,
                          input_color=bp.input_color)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_backbone(bp, layout.num_joints).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tp.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=tp.lr_steps, gamma=0.1)
    last = paths.backbone.with_name(paths.backbone.name + ".last")
    fingerprint = _fingerprint(params, layout.num_joints)
    start, rows = _try_resume(last, fingerprint, tp.epochs, model, optimizer, scheduler)

    for epoch in range(start, tp.epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=tp.batch_size, shuffle=True, num_workers=tp.num_workers,
                            generator=torch.Generator().manual_seed(tp.seed * 1000 + epoch), drop_last=False)
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        loss = train_one_epoch(model, loader, optimizer, device, f"backbone epoch {epoch + 1}/{tp.epochs}")
        scheduler.step()
        rows.append({"epoch": epoch + 1, "loss": loss, "lr": lr, "seconds": time.perf_counter() - t0})
        log.info("epoch %d/%d loss %.6g lr %.3g (%.1f s)", epoch + 1, tp.epochs, loss, lr, rows[-1]["seconds"])
        with atomic_path(last) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "log": rows,
                        "fingerprint": fingerprint}, tmp)

    save_backbone(paths.backbone, model, params, tp.epochs)
    with atomic_path(paths.backbone_log) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)
    last.unlink(missing_ok=True)
    log.info("wrote %s and %s", paths.backbone, paths.backbone_log)
