"""Training a backbone from scratch (SimpleBaseline or HRNet) where no official checkpoint is used.

Adam + MultiStepLR (x0.1 at `lr_steps`) on SimpleBaseline's JointsMSELoss (`sgpose.models.losses`), on
augmented crops (`train_backbone.augment`), under the `compute` section's device, autocast and memory
format. Resumable: after every epoch the model, optimizer, scheduler and log so far go to
`backbone.pt.last` (`sgpose.training.resume`); a rerun continues from it when it was made the same way.
"""

from __future__ import annotations

import logging
import time

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from sgpose.cache import shards
from sgpose.config.paths import Paths
from sgpose.config.schema import ComputeParams
from sgpose.config.selection import Params
from sgpose.core.io import atomic_path, sha256_file
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import read_instances
from sgpose.data.dataset import CropDataset
from sgpose.data.integrity import verify_images
from sgpose.models.backbones import build_backbone
from sgpose.models.checkpoints import LOG_COLUMNS, save_backbone
from sgpose.models.losses import joints_mse
from sgpose.runtime import compute, threads
from sgpose.training.resume import ResumePoint

log = logging.getLogger(__name__)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device,
                    desc: str, cp: ComputeParams | None = None, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over the loader on `device`, under `cp`'s autocast and memory format (sgpose.runtime.compute;
    plain fp32 on the CPU); returns the sample-weighted mean loss. `scaler`: fp16's loss scaling."""
    cp = cp or ComputeParams(device=device.type)
    scaler = scaler or compute.grad_scaler(cp, device)
    model.train()
    # the sum is kept on the device in float64 (one sync per epoch, not per batch): the same IEEE double
    # operations as adding each loss.item(), so the logged loss is the same to the bit
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        image, target, weight = (compute.to_device(batch[k], cp, device) for k in ("image", "target", "target_weight"))
        with compute.autocast(cp, device):
            heatmaps, _ = model(image)
        loss = joints_mse(heatmaps.float(), target, weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # disabled (amp off, bf16, the CPU): loss.backward(), optimizer.step()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(image)
        count += len(image)
    return total.item() / max(count, 1)


def fingerprint(params: Params, paths: Paths, rows: pd.DataFrame, num_joints: int, device: torch.device) -> dict:
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


def fit(params: Params, paths: Paths) -> None:
    """Train the backbone, resuming from backbone.pt.last when it was made the same way (`fingerprint`);
    writes backbone.pt and its train_log.csv."""
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
    scaler = compute.grad_scaler(cp, device)
    resume = ResumePoint(paths.backbone, fingerprint(params, paths, instances, layout.num_joints, device), tp.epochs)
    start, rows = 0, []
    if (state := resume.load()) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, rows = int(state["epoch"]), list(state["log"])

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
        resume.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "log": rows, "scaler": scaler.state_dict()})

    save_backbone(paths.backbone, model, params, tp.epochs)
    with atomic_path(paths.backbone_log) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)
    resume.clear()
    log.info("wrote %s and %s", paths.backbone, paths.backbone_log)
