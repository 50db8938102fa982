"""The refiner as a whole: its factory (`build_unet`, from params and the cached feature list), its
checkpoint format (`refiner_checkpoint`, `save_refiner`) and loading a trained one (`load_refiner`).
Training (`sgpose.stages.train_refiner`), inference and the report use it from here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sgpose.checkpoint_io import torch_load
from sgpose.config.selection import Params
from sgpose.errors import InputError
from sgpose.io import atomic_path
from sgpose.keypoints import get_layout
from sgpose.models.unet import StructureGuidedUNet
from sgpose.refine import input_channels
from sgpose.variants import get_variant

# a training log row (refiner.pt and train_log.csv): no wall time, so equal work gives equal bytes
LOG_FIELDS = ("epoch", "loss", "lr")


def build_unet(params: Params, feature_channels: list[int], variant: str = "ours",
               feature_levels: list[int] | None = None) -> StructureGuidedUNet:
    """The refiner for this params file, this backbone's cached feature list (channels, and the
    backbone level of each) and this variant."""
    rp, k = params.refiner, get_layout(params.layout).num_joints
    v = get_variant(variant)
    return StructureGuidedUNet(k, feature_channels, rp.base_channels, rp.channel_mults, rp.time_dim,
                               in_channels=input_channels(k, v, rp.prev_heatmap), step_embedding=v.step_embedding,
                               feature_levels=feature_levels)


def refiner_checkpoint(unet, opt, epoch, rows, source, params: Params, variant: str) -> dict:
    """The refiner checkpoint format: weights, what the UNet was built for (`build_unet`'s arguments:
    feature channels and levels, variant, refiner section), the guidance and layout, the log; with
    `opt`, the optimizer state too (an epoch checkpoint to resume from)."""
    # log rows rebuilt on one set of key objects: pickle memoises keys by identity, so rows resumed from
    # refiner.pt.last would otherwise be written with other bytes than the same rows of a clean run
    log_rows = [{k: row[k] for k in LOG_FIELDS} for row in rows]
    ckpt = {"state_dict": {k: v.cpu().contiguous() for k, v in unet.state_dict().items()}, "epoch": epoch, "log": log_rows,
            "feature_channels": source.channels, "feature_levels": source.levels, "variant": variant,
            "refiner": params.refiner.model_dump(), "guidance": params.guidance.model_dump(mode="json"), "layout": params.layout}
    if opt is not None:
        ckpt["optimizer"] = opt.state_dict()
    return ckpt


def save_refiner(path: Path, ckpt: dict) -> None:
    """Write a checkpoint atomically (temporary name, renamed when complete)."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_refiner(path: Path, params: Params, variant: str = "ours"):
    """The trained UNet of one variant in eval mode, on the CPU; errors name the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained refiner (run `sgpose train_refiner --variant {variant}` first)")
    ckpt = torch_load(path, weights_only=False)
    if not isinstance(ckpt, dict) or not {"state_dict", "feature_channels"} <= ckpt.keys():
        raise InputError(path, f"not a refiner checkpoint (holds {_kind(ckpt)}); rerun `sgpose train_refiner "
                         f"--variant {variant}`")
    if ckpt.get("variant", variant) != variant:
        raise ValueError(f"{path}: a refiner of variant {ckpt['variant']}, expected {variant}")
    unet = build_unet(params, ckpt["feature_channels"], variant, ckpt.get("feature_levels"))
    try:
        unet.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit the current refiner parameters; retrain ({err})") from None
    return unet.eval()


def _kind(obj: object) -> str:
    """What a loaded checkpoint object is, in words: `a list`, `a dict without state_dict, ...`."""
    if isinstance(obj, dict):
        return "a dict without " + ", ".join(k for k in ("state_dict", "feature_channels") if k not in obj)
    return f"a {type(obj).__name__}"
