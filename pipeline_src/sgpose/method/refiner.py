"""The refiner as a whole: its factory (`build_unet`, from the refiner section and the cached features),
its checkpoint format (`refiner_checkpoint`, `save_refiner`) and loading a trained one (`load_refiner`).
Training (`sgpose.training.refiner`), inference and the report use it from here.
"""

from __future__ import annotations

from pathlib import Path

from sgpose.config.schema import GuidanceParams, RefinerParams
from sgpose.core.checkpoint_io import check_finite_weights, save_torch, torch_load
from sgpose.core.errors import InputError
from sgpose.core.modes import RefinerInit
from sgpose.core.variants import get_variant
from sgpose.method.refine import input_channels
from sgpose.method.unet import StructureGuidedUNet
from sgpose.models.features import FeatureInfo, from_json, to_json

# a training log row (refiner.pt and train_log.csv): no wall time, so equal work gives equal bytes; val_ap is
# the validation AP of the epochs `train_refiner.val_every` scores ("" for the others)
LOG_FIELDS = ("epoch", "loss", "lr", "val_ap")
REQUIRED = ("state_dict", "features")


def build_unet(rp: RefinerParams, num_joints: int, features: list[FeatureInfo], variant: str = "ours") -> StructureGuidedUNet:
    """The refiner of one variant for `num_joints` joints and these cached backbone features."""
    v = get_variant(variant)
    return StructureGuidedUNet(num_joints, features, rp.base_channels, rp.channel_mults, rp.time_dim,
                               in_channels=input_channels(num_joints, v, rp.prev_heatmap), step_embedding=v.step_embedding,
                               zero_init=rp.init == RefinerInit.ZERO, input_gain=rp.guidance_gain)


def refiner_checkpoint(unet: StructureGuidedUNet, opt, epoch: int, rows: list[dict], variant: str, rp: RefinerParams,
                       gp: GuidanceParams, layout: str) -> dict:
    """The refiner checkpoint format: weights, what the UNet was built for (`build_unet`'s arguments:
    the features, variant, refiner section), the guidance and layout, the log; with `opt`, the optimizer
    state too (an epoch checkpoint to resume from)."""
    # log rows rebuilt on one set of key objects: pickle memoises keys by identity, so rows resumed from
    # refiner.pt.last would otherwise be written with other bytes than the same rows of a clean run
    log_rows = [{k: row[k] for k in LOG_FIELDS} for row in rows]
    ckpt = {"state_dict": {k: v.cpu().contiguous() for k, v in unet.state_dict().items()}, "epoch": epoch, "log": log_rows,
            "features": to_json(unet.features), "variant": variant, "refiner": rp.model_dump(mode="json"),
            "guidance": gp.model_dump(mode="json"), "layout": layout}
    if opt is not None:
        ckpt["optimizer"] = opt.state_dict()
    return ckpt


def save_refiner(path: Path, ckpt: dict) -> None:
    """Write a checkpoint atomically (temporary name, renamed when complete); non-finite weights are refused."""
    save_torch(path, ckpt)


def load_refiner(path: Path, rp: RefinerParams, num_joints: int, variant: str = "ours") -> StructureGuidedUNet:
    """The trained UNet of one variant in eval mode, on the CPU; errors name the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained refiner (run `sgpose train_refiner --variant {variant}` first)")
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or not set(REQUIRED) <= ckpt.keys():
        raise InputError(path, f"not a refiner checkpoint (holds {_kind(ckpt)}); rerun `sgpose train_refiner "
                         f"--variant {variant}`")
    if ckpt.get("variant", variant) != variant:
        raise ValueError(f"{path}: a refiner of variant {ckpt['variant']}, expected {variant}")
    check_finite_weights(path, ckpt["state_dict"])
    unet = build_unet(rp, num_joints, from_json(ckpt["features"]), variant)
    try:
        unet.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit the current refiner parameters; retrain ({err})") from None
    return unet.eval()


def _kind(obj: object) -> str:
    """What a loaded checkpoint object is, in words: `a list`, `a dict without state_dict, ...`."""
    if isinstance(obj, dict):
        return "a dict without " + ", ".join(k for k in REQUIRED if k not in obj)
    return f"a {type(obj).__name__}"
