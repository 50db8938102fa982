"""`sgpose train_refiner`: train the structure-guided UNet from the HDF5 cache (SPEC 4).

The cache is read batch by batch (`sgpose.data.cache_loader`, `train_refiner.num_workers` reader
processes), never loaded whole: full COCO's train cache is hundreds of GB. Each epoch's batches
are a seeded permutation, so the run is reproducible for any number of workers.
Resumable: a `refiner.pt.last` checkpoint is written after every epoch and picked up by a re-run.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

from sgpose.config import Params, Paths
from sgpose.data.cache_loader import CacheBatches, batch_loader, features, shuffled_batches
from sgpose.io import atomic_path
from sgpose.refine import build_unet, guidance_spec, training_loss
from sgpose.variants import REFINED

log = logging.getLogger(__name__)
REFINED_VARIANTS = REFINED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="ours", choices=REFINED_VARIANTS, help="which refiner to train")


def feature_list(data: dict, index=slice(None), prefix: str = "") -> list[torch.Tensor]:
    """`{prefix}feat/0..n-1` of a loaded cache as float tensors, highest resolution first
    (prefix `flip/` for the mirrored crops)."""
    head = f"{prefix}feat/"
    keys = sorted((k for k in data if k.startswith(head)), key=lambda k: int(k[len(head):]))
    return [torch.from_numpy(data[k][index]).float() for k in keys]


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    tp = params.train_refiner
    torch.manual_seed(tp.seed)
    data = CacheBatches(paths.cache("train"))
    n = len(data)
    if n == 0:
        raise ValueError(f"{paths.cache('train')}: the training cache holds no samples")
    channels = data.feature_channels()
    unet = build_unet(params, channels, args.variant)
    spec = guidance_spec(params, args.variant, paths.start_pose)
    log.info("variant %s: %s; %d steps", args.variant, spec.variant.description, spec.T)
    opt = torch.optim.Adam(unet.parameters(), lr=tp.lr)  # constant lr (SPEC 4)
    out = paths.refiner(args.variant)
    last = out.with_name(out.name + ".last")
    gen = torch.Generator().manual_seed(tp.seed)
    start_epoch, rows = _resume(last, unet, opt, gen)
    for epoch in range(start_epoch, tp.epochs):
        t0, total = time.time(), 0.0
        unet.train()
        loader = batch_loader(data, shuffled_batches(n, tp.batch_size, gen), tp.num_workers)
        for batch in tqdm(loader, desc=f"refiner epoch {epoch + 1}/{tp.epochs}", leave=False):
            loss = training_loss(unet, spec, features(batch), batch["heatmaps"], batch["target"],
                                 batch["target_weight"], gen, joints=batch["joints"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch["heatmaps"])
        rows.append({"epoch": epoch + 1, "loss": total / n, "lr": tp.lr, "seconds": round(time.time() - t0, 2)})
        log.info("refiner epoch %d: loss %.3e", epoch + 1, rows[-1]["loss"])
        _save(last, _checkpoint(unet, opt, epoch + 1, rows, channels, params, args.variant)
              | {"generator": gen.get_state()})
    _save(out, _checkpoint(unet, None, tp.epochs, rows, channels, params, args.variant))
    _write_log(paths.refiner_log(args.variant), rows)
    last.unlink(missing_ok=True)


def _checkpoint(unet, opt, epoch, rows, channels, params: Params, variant: str) -> dict:
    ckpt = {"state_dict": unet.state_dict(), "epoch": epoch, "log": rows, "feature_channels": channels,
            "variant": variant,
            "refiner": params.refiner.model_dump(), "guidance": params.guidance.model_dump(), "layout": params.layout}
    if opt is not None:
        ckpt["optimizer"] = opt.state_dict()
    return ckpt


def _save(path: Path, ckpt: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _resume(last: Path, unet, opt, gen: torch.Generator) -> tuple[int, list[dict]]:
    """Continue from an interrupted run's last epoch checkpoint, if one is there and fits."""
    if not last.exists():
        return 0, []
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    try:
        unet.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
    except (RuntimeError, KeyError, ValueError) as err:
        log.warning("%s does not fit this configuration (%s): starting clean", last, err)
        return 0, []
    log.info("resuming refiner training from %s (epoch %d)", last, ckpt["epoch"])
    return ckpt["epoch"], list(ckpt["log"])


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "loss", "lr", "seconds"])
        writer.writeheader()
        writer.writerows(rows)


def load_refiner(path: Path, params: Params, variant: str = "ours"):
    """The trained UNet of one variant in eval mode; errors name the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained refiner (run `sgpose train_refiner` first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("variant", variant) != variant:
        raise ValueError(f"{path}: a refiner of variant {ckpt['variant']}, expected {variant}")
    unet = build_unet(params, ckpt["feature_channels"], variant)
    try:
        unet.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit the current refiner parameters; retrain ({err})") from None
    return unet.eval()
