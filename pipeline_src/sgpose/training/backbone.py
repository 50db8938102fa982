"""Training a backbone from scratch (SimpleBaseline or HRNet) where no official checkpoint is used.

Adam + MultiStepLR (x0.1 at `lr_steps`) on SimpleBaseline's JointsMSELoss (`sgpose.models.losses`), on
augmented crops (`train_backbone.augment`), under the `compute` section's device, autocast and memory
format. Resumable: after every epoch the model, optimizer, scheduler and log so far go to
`backbone.pt.last` (`sgpose.training.resume`), and on SIGTERM at the step reached (with the epoch's
partial loss sum; the resumed epoch skips the done batches of the same seeded order); a rerun continues
from it when it was made the same way. A non-finite loss, gradient norm or weight stops the run before
anything is written (`sgpose.training.guard`); `train_backbone.grad_clip_norm` clips the gradients.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import pandas as pd
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler
from tqdm import tqdm

from sgpose.cache import shards
from sgpose.config.paths import Paths
from sgpose.config.schema import ComputeParams, TrainBackboneParams
from sgpose.config.selection import Params
from sgpose.core.io import atomic_path, sha256_file
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import read_instances
from sgpose.data.dataset import CropDataset
from sgpose.data.integrity import verify_images
from sgpose.models.backbones import build_backbone
from sgpose.models.checkpoints import LOG_COLUMNS, save_backbone
from sgpose.models.losses import joints_mse
from sgpose.runtime import compute, interrupt, threads
from sgpose.training.guard import DivergenceGuard
from sgpose.training.optim import adam
from sgpose.training.resume import ResumePoint

log = logging.getLogger(__name__)


@dataclass
class EpochProgress:
    """How far an epoch got: the optimizer steps done, the float64 loss sum over them and its samples
    (a resume point saved inside the epoch holds it; the resumed epoch adds to it)."""

    step: int = 0
    total: float = 0.0
    count: int = 0


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device,
                    desc: str, cp: ComputeParams | None = None, scaler: torch.amp.GradScaler | None = None,
                    guard: DivergenceGuard | None = None, done: EpochProgress | None = None,
                    stop: Callable[[EpochProgress], None] | None = None) -> float:
    """One pass over the loader on `device`, under `cp`'s autocast and memory format (sgpose.runtime.compute;
    plain fp32 on the CPU); returns the sample-weighted mean loss. `scaler`: fp16's loss scaling. `guard`:
    the divergence checks (and gradient clipping); `done`: the part of the epoch done before a stop (the
    loader then holds the rest); `stop(progress)`: called on SIGTERM after a step (saves, raises)."""
    cp = cp or ComputeParams(device=device.type)
    scaler = scaler or compute.grad_scaler(cp, device)
    done = done or EpochProgress()
    model.train()
    # the sum is kept on the device in float64 (one sync per epoch, not per batch): the same IEEE double
    # operations as adding each loss.item(), so the logged loss is the same to the bit
    total, count = torch.tensor(done.total, dtype=torch.float64, device=device), done.count
    for i, batch in enumerate(tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, initial=done.step,
                                   total=done.step + len(loader)), start=done.step):
        image, target, weight = (compute.to_device(batch[k], cp, device) for k in ("image", "target", "target_weight"))
        with compute.autocast(cp, device):
            heatmaps, _ = model(image)
        loss = joints_mse(heatmaps.float(), target, weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # disabled (amp off, bf16, the CPU): loss.backward(), optimizer.step()
        if guard is not None:
            guard.gradients(optimizer)
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(image)
        count += len(image)
        if guard is not None:
            guard.observe(i, loss)
        if stop is not None and interrupt.requested():  # SIGTERM: keep this step, stop
            if guard is not None:
                guard.check()
            stop(EpochProgress(i + 1, float(total), count))
    if guard is not None:
        guard.check()
    return total.item() / max(count, 1)


def epoch_loader(dataset: CropDataset, tp, epoch: int, device: torch.device, skip: int = 0) -> DataLoader:
    """The epoch's shuffled batches (seeded by seed and epoch) without the first `skip`: the order of
    DataLoader(shuffle=True) with that generator, which draws the workers' base seed from it and then
    the permutation, as this loader does (tests/stages/test_train_backbone.py pins it)."""
    generator = torch.Generator().manual_seed(tp.seed * 1000 + epoch)
    order = BatchSampler(RandomSampler(dataset, generator=generator), tp.batch_size, drop_last=False)
    return DataLoader(dataset, batch_sampler=SkipBatches(order, skip), num_workers=threads.loader_workers(tp.num_workers),
                      generator=generator, pin_memory=device.type == "cuda", worker_init_fn=interrupt.worker_init)


class SkipBatches(Sampler):
    """A batch sampler without its first `skip` batches (drawn all the same: the order stays the same)."""

    def __init__(self, batches: BatchSampler, skip: int = 0):
        self.batches, self.skip = batches, skip

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.batches) - self.skip, 0)


def _advice(tp: TrainBackboneParams) -> str:
    """What to try after a divergence: the knobs of the train_backbone section."""
    clip = "gradient clipping, train_backbone.grad_clip_norm (off now)" if tp.grad_clip_norm is None else \
        f"a smaller train_backbone.grad_clip_norm (now {tp.grad_clip_norm:g})"
    return f"a lower train_backbone.lr (now {tp.lr:g}; per backbone: backbones.<name>.train.lr) or {clip}."


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
    optimizer = adam(model.parameters(), tp.lr, device)  # its square roots exact on the CPU (training.optim)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=tp.lr_steps, gamma=0.1)
    scaler = compute.grad_scaler(cp, device)
    resume = ResumePoint(paths.backbone, fingerprint(params, paths, instances, layout.num_joints, device), tp.epochs)
    guard = DivergenceGuard(model, device, scaler, tp.grad_clip_norm, f"backbone {bp.name}", _advice(tp), resume.kept)
    start, rows, done = 0, [], EpochProgress()
    if (state := resume.load()) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, rows = int(state["epoch"]), list(state["log"])
        done = EpochProgress(state.get("step", 0), state.get("total", 0.0), state.get("count", 0))

    def training_state(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "log": rows, "scaler": scaler.state_dict()}

    def stop(progress: EpochProgress) -> None:  # SIGTERM inside epoch `epoch`: keep the step reached, end
        resume.save(training_state(epoch) | asdict(progress))
        raise interrupt.stopped(f"step {progress.step}/{guard.steps} of epoch {epoch + 1}", str(resume.path))

    for epoch in range(start, tp.epochs):
        dataset.set_epoch(epoch)
        loader = epoch_loader(dataset, tp, epoch, device, skip=done.step)
        guard.start_epoch(epoch, done.step + len(loader))
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        loss = train_one_epoch(model, loader, optimizer, device, f"backbone epoch {epoch + 1}/{tp.epochs}", cp, scaler,
                               guard, done, stop)
        done = EpochProgress()
        scheduler.step()
        rows.append({"epoch": epoch + 1, "loss": loss, "lr": lr})
        log.info("epoch %d/%d loss %.6g lr %.3g (%.1f s)", epoch + 1, tp.epochs, loss, lr, time.perf_counter() - t0)
        resume.save(training_state(epoch + 1))

    save_backbone(paths.backbone, model, params, tp.epochs, compute=compute.effective(cp, device))
    with atomic_path(paths.backbone_log) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)
    resume.clear()
    log.info("wrote %s and %s", paths.backbone, paths.backbone_log)
