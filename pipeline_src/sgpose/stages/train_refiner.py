"""`sgpose train_refiner --backbone B --variant V`: train the structure-guided UNet (SPEC 4).

Features come (`sgpose.data.sources`) from the HDF5 cache, read batch by batch (`sgpose.cache.reader`,
`train_refiner.num_workers` reader processes; a cache under `train_refiner.preload_gb` is read into
memory once), one cached view of each instance per epoch; or, with `train_refiner.features: online`,
from the frozen backbone run in the loop on freshly augmented crops (`cache.augment`). Each epoch's
batches, views and steps t come from one seeded generator, so a run is reproducible for any number
of workers and processes. Device, mixed precision and channels_last follow the `compute` section;
`train_refiner.devices` > 1 trains with DDP (`sgpose.distributed`): every process takes its share of
each global batch, and the loss is weighted so the gradient equals the single-process one.
Resumable: `refiner.pt.last` is written after every epoch and picked up by a re-run.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sgpose import compute, distributed, variants
from sgpose.cache.reader import features, shuffled_batches
from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.data.sources import training_source
from sgpose.io import atomic_path
from sgpose.refine import draw_steps, guidance_spec, training_loss
from sgpose.refiner import build_unet, refiner_checkpoint, save_refiner

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="ours", type=variants.refined_argument,
                        help="which refiner to train: A1..A4, ours, or a sweep ours_S<k> / ours_linear (default ours)")


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    tp = params.train_refiner
    if tp.devices > 1 and not distributed.launched():
        return distributed.relaunch(tp.devices, args.argv)
    dev = compute.device(params.compute)
    with distributed.process_group(dev) as (rank, world):
        train(params, paths, args.variant, dev, rank, world)


def train(params: Params, paths: Paths, variant: str, dev: torch.device, rank: int = 0, world: int = 1) -> None:
    """Train one variant's refiner; process `rank` of `world` (DDP) takes every world-th sample of each batch."""
    tp, cp = params.train_refiner, params.compute
    source = training_source(params, paths, dev)
    n = source.num_instances
    if n == 0:
        raise ValueError(f"{paths.cache('train')}: the training split holds no samples")
    torch.manual_seed(tp.seed)  # the initial weights, whichever source loaded what before
    unet = compute.prepare_model(build_unet(params, source.channels, variant, source.levels), cp, dev)
    spec = guidance_spec(params, variant, paths.start_pose)
    if rank == 0:
        log.info("variant %s: %s; %d steps; features %s on %s%s", variant, spec.variant.description, spec.T,
                 tp.features, dev, f" x {world} processes" if world > 1 else "")
    opt = torch.optim.Adam(unet.parameters(), lr=tp.lr)  # constant lr (SPEC 4)
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and cp.amp == "fp16")
    out = paths.refiner(variant)
    last = out.with_name(out.name + ".last")
    gen = torch.Generator().manual_seed(tp.seed)
    fingerprint = _fingerprint(params, variant, source.identity)
    start_epoch, rows = 0, []
    if (state := _resumable(last, fingerprint, tp.epochs)) is not None:
        unet.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        start_epoch, rows = state["epoch"], list(state["log"])
    # under torchrun always DDP, one process too: the GPU check runs the NCCL path on a single GPU
    ddp = distributed.launched()
    model = DistributedDataParallel(unet, device_ids=[dev.index] if dev.type == "cuda" else None) if ddp else unet
    for epoch in range(start_epoch, tp.epochs):
        t0, total = time.time(), torch.zeros((), device=dev)
        model.train()
        batches = shuffled_batches(n, tp.batch_size, gen, source.views)
        steps = [draw_steps(spec, len(b), gen) for b in batches]
        if world > 1 and len(batches[-1]) < world:  # a process would get no sample: drop the remainder
            batches, steps = batches[:-1], steps[:-1]
        local = [b[rank::world] for b in batches]
        desc = f"refiner {variant} epoch {epoch + 1}/{tp.epochs}"
        for batch, t, size in tqdm(zip(source.batches(local, epoch), steps, map(len, batches)), total=len(local),
                                   desc=desc, leave=False, disable=rank > 0):
            b = {k: compute.to_device(v, cp, dev) for k, v in batch.items()}
            with compute.autocast(cp, dev):
                loss = training_loss(model, spec, features(b), b["heatmaps"], b["target"], b["target_weight"],
                                     t[rank::world], joints=b["joints"])
            k = len(b["heatmaps"])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss * (k * world / size)).backward()  # DDP averages: the global batch mean
            scaler.step(opt)
            scaler.update()
            total += loss.detach().float() * k  # on the device: no sync per step
        rows.append({"epoch": epoch + 1, "loss": distributed.all_sum(total.item(), world) / sum(map(len, batches)),
                     "lr": tp.lr, "seconds": round(time.time() - t0, 2)})
        if rank == 0:
            log.info("refiner %s epoch %d: loss %.3e (%.1f s)", variant, epoch + 1, rows[-1]["loss"], rows[-1]["seconds"])
            save_refiner(last, refiner_checkpoint(unet, opt, epoch + 1, rows, source, params, variant)
                  | {"generator": gen.get_state(), "scaler": scaler.state_dict(), "fingerprint": fingerprint})
        distributed.barrier(world)
    if rank == 0:
        save_refiner(out, refiner_checkpoint(unet, None, tp.epochs, rows, source, params, variant))
        _write_log(paths.refiner_log(variant), rows)
        last.unlink(missing_ok=True)
    distributed.barrier(world)


def _fingerprint(params: Params, variant: str, source: str) -> dict:
    """What an interrupted run must have been made with to be continued: every parameter that changes
    the weights (any `epochs` not below its own) and the training data (`source.identity`)."""
    train = params.train_refiner.model_dump(mode="json", exclude={"epochs", "num_workers", "preload_gb"})
    return {"variant": variant, "train": train, "guidance": params.guidance.model_dump(mode="json"),
            "refiner": params.refiner.model_dump(mode="json"), "compute": params.compute.model_dump(mode="json"),
            "layout": params.layout, "source": source}


def _resumable(last: Path, fingerprint: dict, epochs: int) -> dict | None:
    """An interrupted run's last epoch checkpoint if it is there, readable and made the same way, else
    None (nothing is loaded from it then: the run starts clean)."""
    if not last.is_file():
        return None
    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file must not block a fresh run
        log.warning("%s: cannot resume (%s); starting clean", last, err)
        return None
    if state.get("fingerprint") != fingerprint or state.get("epoch", 0) > epochs:
        log.warning("%s: made with other parameters or data; starting clean", last)
        return None
    log.info("resuming refiner training from %s (epoch %d)", last, state["epoch"])
    return state


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "loss", "lr", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
