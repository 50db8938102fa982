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

from sgpose import compute, locks, threads
from sgpose.cache import shards
from sgpose.config.paths import Paths
from sgpose.config.schema import ComputeParams
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
# the per-epoch log (a tracked output): no wall times, so equal work gives equal bytes (they go to stderr)
LOG_COLUMNS = ["epoch", "loss", "lr"]


def joints_mse_loss(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """SimpleBaseline's JointsMSELoss: 0.5 * mean over joints of MSE(pred * w, target * w)."""
    w = weight[..., None, None]
    return 0.5 * ((pred - target) * w).pow(2).mean()


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device,
                    desc: str, cp: ComputeParams | None = None, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over the loader on `device`, under `cp`'s autocast and memory format (sgpose.compute;
    plain fp32 on the CPU); returns the sample-weighted mean loss. `scaler`: fp16's loss scaling."""
    cp = cp or ComputeParams(device=device.type)
    scaler = scaler or grad_scaler(cp, device)
    model.train()
    # the sum is kept on the device in float64 (one sync per epoch, not per batch): the same IEEE double
    # operations as adding each loss.item(), so the logged loss is the same to the bit
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        image, target, weight = (compute.to_device(batch[k], cp, device) for k in ("image", "target", "target_weight"))
        with compute.autocast(cp, device):
            heatmaps, _ = model(image)
        loss = joints_mse_loss(heatmaps.float(), target, weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # disabled (amp off, bf16, the CPU): loss.backward(), optimizer.step()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(image)
        count += len(image)
    return total.item() / max(count, 1)


def grad_scaler(cp: ComputeParams, device: torch.device) -> torch.amp.GradScaler:
    """fp16's loss scaling, enabled only where fp16 autocast runs (as train_refiner's)."""
    return torch.amp.GradScaler("cuda", enabled=compute.effective(cp, device)["amp"] == "fp16")


def _fingerprint(params: Params, paths: Paths, rows: pd.DataFrame, num_joints: int, device: torch.device) -> dict:
    """What a resume checkpoint must have been made with to be continued (any `epochs` not below its
    own): every parameter that shapes the weights, the training data (a digest of the instance table:
    boxes, keypoints, image ids and files; the download stamp: every image's sha256) and what the
    numbers were computed with (device type, autocast dtype, memory format: `compute.effective`)."""
    train = params.train_backbone.model_dump(mode="json", exclude={"epochs", "num_workers"})
    stamp = paths.download_stamp
    return {"backbone": params.backbone.model_dump(mode="json", exclude={"train"}), "train": train,
            "layout": params.layout, "num_joints": num_joints, "images_dir": str(params.data.images_dir),
            "instances": shards.rows_digest(rows), "compute": compute.effective(params.compute, device),
            "download": sha256_file(stamp) if stamp.is_file() else None}


def _try_resume(last: Path, fingerprint: dict, epochs: int, model, optimizer, scheduler,
                scaler: torch.amp.GradScaler | None = None) -> tuple[int, list[dict]]:
    """Load `last` into the training state if compatible; returns (epochs done, log rows)."""
    if not last.is_file():
        return 0, []
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != fingerprint or state["epoch"] > epochs:
            log.warning("%s: made with other parameters or training data; starting from scratch", last)
            return 0, []
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
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
        torch.save({"state_dict": {k: v.cpu().contiguous() for k, v in model.state_dict().items()},
                    "backbone": params.backbone.model_dump(mode="json"),
                    "num_joints": get_layout(params.layout).num_joints, "epochs": epochs,
                    "source": str(source) if source else None,
                    "source_sha256": sha256_file(source) if source else None}, tmp)


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    if params.backbone.controlled:
        raise ValueError(f"backbones.{params.backbone.name} is a controlled backbone ({params.backbone.arch}): it has no "
                         f"weights to train; its cache runs {params.backbone.features_from}'s backbone.pt")
    # one writer of backbone.pt and its resume file: a second run stops, naming the first
    with locks.output_lock(paths.backbone, paths.results, wait=False):
        if params.backbone.checkpoint:
            return import_checkpoint(params, paths)
        train(params, paths)


def train(params: Params, paths: Paths) -> None:
    """Train the backbone, resuming from backbone.pt.last when it was made the same way (`_fingerprint`)."""
    tp, bp = params.train_backbone, params.backbone
    layout = get_layout(params.layout)
    torch.manual_seed(tp.seed)
    instances = read_instances(paths.instances("train"))
    verify_images(params, paths, instances["file_name"])  # the downloaded bytes, not damaged ones
    dataset = CropDataset(instances, params.data.images_dir, bp.input_size,
                          bp.heatmap_size, bp.heatmap_sigma, layout, augment=tp.augment, seed=tp.seed,
                          input_color=bp.input_color)
    cp = params.compute
    device = compute.device(cp)  # the stages' device, autocast and memory format (the `compute` section)
    model = compute.prepare_model(build_backbone(bp, layout.num_joints), cp, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tp.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=tp.lr_steps, gamma=0.1)
    scaler = grad_scaler(cp, device)
    last = paths.backbone.with_name(paths.backbone.name + ".last")
    fingerprint = _fingerprint(params, paths, instances, layout.num_joints, device)
    start, rows = _try_resume(last, fingerprint, tp.epochs, model, optimizer, scheduler, scaler)

    for epoch in range(start, tp.epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=tp.batch_size, shuffle=True, num_workers=threads.loader_workers(tp.num_workers),
                            generator=torch.Generator().manual_seed(tp.seed * 1000 + epoch), drop_last=False,
                            pin_memory=device.type == "cuda")
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        loss = train_one_epoch(model, loader, optimizer, device, f"backbone epoch {epoch + 1}/{tp.epochs}", cp, scaler)
        scheduler.step()
        rows.append({"epoch": epoch + 1, "loss": loss, "lr": lr})
        log.info("epoch %d/%d loss %.6g lr %.3g (%.1f s)", epoch + 1, tp.epochs, loss, lr, time.perf_counter() - t0)
        with atomic_path(last) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "log": rows,
                        "fingerprint": fingerprint, "scaler": scaler.state_dict()}, tmp)

    save_backbone(paths.backbone, model, params, tp.epochs)
    with atomic_path(paths.backbone_log) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)
    last.unlink(missing_ok=True)
    log.info("wrote %s and %s", paths.backbone, paths.backbone_log)
