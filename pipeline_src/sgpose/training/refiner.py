"""Training the structure-guided refiner (docs/method.md, "Training"; Algorithm 1), for any source.

Each epoch's batches, views and steps t come from one seeded generator, so a run is reproducible for any
number of workers and processes. Device, mixed precision and channels_last follow the `compute` section;
with DDP (`sgpose.runtime.distributed`) every process takes its share of each global batch, and the loss is
weighted so the gradient equals the single-process one. Resumable: the resume point (`training.resume`) is
written after every epoch and on SIGTERM at the step reached (`runtime.interrupt`; the resumed run redraws
that epoch's batches from the generator state saved before they were drawn, skips the done ones and adds
to the saved partial loss sum: the same bytes as a run never stopped). A non-finite loss, gradient norm
or weight stops the run before anything is written (`training.guard`).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sgpose.cache.reader import features, shuffled_batches
from sgpose.config.paths import Paths
from sgpose.config.schema import ComputeParams
from sgpose.config.selection import Params
from sgpose.core.io import atomic_path
from sgpose.core.keypoints import get_layout
from sgpose.method.refine import draw_steps, guidance_spec, training_loss
from sgpose.method.refiner import LOG_FIELDS, build_unet, refiner_checkpoint, save_refiner
from sgpose.runtime import compute, distributed, interrupt
from sgpose.runtime.prefetch import Prefetcher
from sgpose.training.guard import DivergenceGuard
from sgpose.training.optim import adam
from sgpose.training.resume import ResumePoint
from sgpose.training.sources import TrainingSource
from sgpose.training.validation import Validation

log = logging.getLogger(__name__)


def fingerprint(params: Params, variant: str, source: TrainingSource) -> dict:
    """What an interrupted run must have been made with to be continued: every parameter that changes
    the weights (any `epochs` not below its own) and the training data (`source.identity`)."""
    train = params.train_refiner.model_dump(mode="json", exclude={"epochs", "num_workers", "decoders", "preload_gb",
                                                                  "prefetch_gb"})
    return {"variant": variant, "train": train, "guidance": params.guidance.model_dump(mode="json"),
            "refiner": params.refiner.model_dump(mode="json"), "compute": params.compute.model_dump(mode="json"),
            "layout": params.layout, "source": source.identity}


def fit(params: Params, paths: Paths, variant: str, source: TrainingSource, dev: torch.device, rank: int = 0,
        world: int = 1) -> None:
    """Train one variant's refiner from `source`; writes refiner.pt and train_log.csv (process 0)."""
    tp, cp = params.train_refiner, params.compute
    n = source.num_instances
    if n == 0:
        raise ValueError(f"{paths.cache('train')}: the training split holds no samples")
    torch.manual_seed(tp.seed)  # the initial weights, whichever source loaded what before
    num_joints = get_layout(params.layout).num_joints
    unet = compute.prepare_refiner(build_unet(params.refiner, num_joints, source.features, variant), cp, dev)
    spec = guidance_spec(params, variant, paths.start_pose).to(dev)  # no copy from the host per step
    if rank == 0:
        log.info("variant %s: %s; %d steps; features %s on %s%s", variant, spec.variant.description, spec.T,
                 tp.features, dev, f" x {world} processes" if world > 1 else "")
    opt = adam(unet.parameters(), tp.lr, dev)  # the paper: constant lr (docs/method.md, Training)
    scaler = compute.grad_scaler(cp, dev)
    out = paths.refiner(variant)
    gen = torch.Generator().manual_seed(tp.seed)
    resume = ResumePoint(out, fingerprint(params, variant, source), tp.epochs)
    validation = Validation(params, paths, variant, dev) if rank == 0 else None
    guard = DivergenceGuard(unet, dev, scaler, tp.grad_clip_norm, f"refiner {variant}", _advice(tp), resume.kept)
    start_epoch, skip, partial, rows = 0, 0, None, []
    if (state := resume.load()) is not None:
        unet.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])  # as the next epoch to run began: its batches are drawn again
        start_epoch, rows = state["epoch"], list(state["log"])  # the optimizer's state holds the epoch's lr
        skip, partial = state.get("step", 0), state.get("totals", [None] * world)[rank]  # inside that epoch
    # under torchrun always DDP, one process too: the GPU check runs the NCCL path on a single GPU
    ddp = distributed.launched()
    model = DistributedDataParallel(unet, device_ids=[dev.index] if dev.type == "cuda" else None) if ddp else unet
    for epoch in range(start_epoch, tp.epochs):
        lr = set_lr(opt, tp, epoch)
        t0, total = time.time(), torch.tensor(partial or 0.0, device=dev)  # float32, as the sum's steps
        drawn_from = gen.get_state()  # a point saved inside this epoch redraws its batches from here
        model.train()
        batches = shuffled_batches(n, tp.batch_size, gen, source.views)
        steps = [draw_steps(spec, len(b), gen, tp.p_last) for b in batches]
        if world > 1 and len(batches[-1]) < world:  # a process would get no sample: drop the remainder
            batches, steps = batches[:-1], steps[:-1]
        local, sizes = [b[rank::world] for b in batches], list(map(len, batches))
        # the epoch's steps on the device in one copy: a copy per step from pageable memory waits for the device
        steps = list(torch.cat(steps).to(dev).split([len(t) for t in steps])) if steps else steps
        guard.start_epoch(epoch, len(local))
        desc = f"refiner {variant} epoch {epoch + 1}/{tp.epochs}"
        # a resumed epoch skips the steps done before the stop (the sources draw per (seed, epoch, sample));
        # the batches are read ahead and put on the device on a thread (`Prefetcher`)
        loaded = Prefetcher(source.batches(local[skip:], epoch), lambda batch: to_device(batch, cp, dev), dev)
        # closed on the way out (a SIGTERM stop, a divergence): the reading thread stops there
        with contextlib.closing(iter(loaded)) as ahead:
            for i, (b, t, size) in enumerate(tqdm(zip(ahead, steps[skip:], sizes[skip:]), total=len(local),
                                                  initial=skip, desc=desc, leave=False, disable=rank > 0), start=skip):
                with compute.autocast(cp, dev):
                    loss = training_loss(model, spec, features(b), b["heatmaps"], b["target"], b["target_weight"],
                                         t[rank::world], joints=b["joints"])
                k = len(b["heatmaps"])
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss * (k * world / size)).backward()  # DDP averages: the global batch mean
                guard.gradients(opt)  # train_refiner.grad_clip_norm; the norm for the divergence check
                scaler.step(opt)
                scaler.update()
                total += loss.detach().float() * k  # on the device: no sync per step
                synced = guard.observe(i, loss)  # a non-finite loss, gradient norm or weight: Diverged
                if (synced or world == 1) and interrupt.requested(world):  # SIGTERM: keep this step, stop
                    guard.check()
                    totals = distributed.gather_floats(total, world)
                    if rank == 0:
                        resume.save(_checkpoint(unet, opt, epoch, rows, params, variant)
                                    | {"generator": drawn_from, "scaler": scaler.state_dict(), "step": i + 1,
                                       "totals": totals})
                    distributed.barrier(world)
                    raise interrupt.stopped(f"step {i + 1}/{len(local)} of epoch {epoch + 1}", str(resume.path))
        guard.check()
        skip, partial = 0, None
        # no wall time in the rows: they go into refiner.pt and train_log.csv, whose bytes equal work must reproduce
        rows.append({"epoch": epoch + 1, "loss": distributed.all_sum(total.item(), world) / sum(sizes), "lr": lr,
                     "val_ap": ""})
        if rank == 0:
            if validation.due(epoch + 1):
                rows[-1]["val_ap"] = validation.ap(unet, spec)
            log.info("refiner %s epoch %d: loss %.3e%s (%.1f s, %.1f s waiting for batches)", variant, epoch + 1,
                     rows[-1]["loss"], f", val AP {rows[-1]['val_ap']:.4f}" if rows[-1]["val_ap"] != "" else "",
                     time.time() - t0, loaded.waited)
            resume.save(_checkpoint(unet, opt, epoch + 1, rows, params, variant)
                        | {"generator": gen.get_state(), "scaler": scaler.state_dict()})
        distributed.barrier(world)
    if rank == 0:
        save_refiner(out, _checkpoint(unet, None, tp.epochs, rows, params, variant))
        write_log(paths.refiner_log(variant), rows)
        resume.clear()
    distributed.barrier(world)


def set_lr(opt: torch.optim.Optimizer, tp, epoch: int) -> float:
    """Epoch `epoch`'s (0-based) learning rate, set in `opt`: `lr` x 0.1 for each of `lr_steps` reached
    (MultiStepLR's schedule, computed from the epoch so a resumed run sets the same)."""
    lr = tp.lr * 0.1 ** sum(epoch >= s for s in tp.lr_steps)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


def _advice(tp) -> str:
    """What to try after a divergence: the knobs of the train_refiner section."""
    clip = "gradient clipping, train_refiner.grad_clip_norm (off now)" if tp.grad_clip_norm is None else \
        f"a smaller train_refiner.grad_clip_norm (now {tp.grad_clip_norm:g})"
    return f"a lower train_refiner.lr (now {tp.lr:g}) or {clip}."


def to_device(batch: dict[str, torch.Tensor], cp: ComputeParams, dev: torch.device) -> dict[str, torch.Tensor]:
    """A training batch on the device, its maps in the refiner's memory format."""
    nhwc = compute.refiner_channels_last(cp, dev)
    return {k: compute.to_device(v, cp, dev, nhwc) for k, v in batch.items()}


def _checkpoint(unet, opt, epoch: int, rows: list[dict], params: Params, variant: str) -> dict:
    """The checkpoint, with what computed it (device, autocast, CPU numerics: `compute.effective`)."""
    dev = next(unet.parameters()).device
    return refiner_checkpoint(unet, opt, epoch, rows, variant, params.refiner, params.guidance, params.layout) | {
        "compute": compute.effective(params.compute, dev)}


def write_log(path: Path, rows: list[dict]) -> None:
    """train_log.csv: one row per epoch (epoch, loss, lr)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
