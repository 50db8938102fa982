"""Read backbone checkpoints of every supported naming and load them strictly.

Namings (detected from the keys, after unwrapping `{"state_dict": ...}` and stripping DataParallel's
`module.`): the official repository's (no prefix; also what train_backbone writes), mmpose 0.x
(`backbone.*`, `keypoint_head.*`) and mmpose 1.x (`backbone.*`, `head.*`). All are renamed to the
official names, which our models use. Loading is strict: a missing or unexpected key or a wrong
shape is an error naming the file and the first offending keys with their count.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from sgpose.config.schema import BackboneParams
from sgpose.core.checkpoint_io import (  # noqa: F401 (re-exported)
    REWRITE,
    CheckpointError,
    UnreadableCheckpoint,
    check_finite_weights,
    save_torch,
    torch_load,
)
from sgpose.core.errors import InputError
from sgpose.core.io import sha256_file
from sgpose.core.keypoints import get_layout
from sgpose.models import zoo
from sgpose.models.backbones import ARCH_FIELDS, build_backbone, describe

log = logging.getLogger(__name__)

# naming -> prefixes that map onto official names (checked in this order)
NAMINGS: dict[str, tuple[str, ...]] = {
    "mmpose_0x": ("backbone.", "keypoint_head."),
    "mmpose_1x": ("backbone.", "head."),
}
SHOW = 5  # offending keys quoted in an error
# a backbone's per-epoch log (a tracked output): no wall times, so equal work gives equal bytes (they go to stderr)
LOG_COLUMNS = ["epoch", "loss", "lr"]


def read_checkpoint(path: Path, advice: str = REWRITE) -> object:
    """torch.load on CPU; tensors-only, and full unpickling only for a registry checkpoint whose bytes are
    the published ones (`zoo.published`): unpickling runs any code a file holds, so a file of unknown
    origin that is more than tensors is refused (an UnreadableCheckpoint naming it, with `advice`), never
    unpickled."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone checkpoint not found (run train_backbone or download)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if zoo.published(path):
            log.warning("%s: not a tensors-only checkpoint; a verified registry file: loading it with full "
                        "unpickling", path)
            return torch_load(path, weights_only=False)
    except Exception:  # noqa: BLE001 - damaged: torch_load says so, naming the file
        pass
    return torch_load(path, advice=advice)


def detect_naming(keys: list[str]) -> str:
    """`official`, `mmpose_0x` or `mmpose_1x`: mmpose when any key carries its head prefix."""
    if any(k.startswith("keypoint_head.") for k in keys):
        return "mmpose_0x"
    if any(k.startswith("head.") for k in keys):
        return "mmpose_1x"
    if keys and all(k.startswith("backbone.") for k in keys):
        return "mmpose_1x"  # a headless mmpose file: its keys still need `backbone.` stripped
    return "official"


def to_official_names(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Strip `module.` and the naming's prefixes; keys without a known prefix are kept (and then reported)."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    naming = detect_naming(list(sd))
    prefixes = NAMINGS.get(naming, ())
    out = {}
    for key, value in sd.items():
        stripped = next((key[len(p):] for p in prefixes if key.startswith(p)), key)
        out[stripped] = value
    return out, naming


def extract_state_dict(obj: object) -> dict[str, Tensor]:
    """The weights from ours / official / mmpose checkpoint objects (a `state_dict` wrapper or bare)."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError("checkpoint holds no state_dict of tensors")
    return sd


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:SHOW]) + (f", ... ({len(keys)} in all)" if len(keys) > SHOW else f" ({len(keys)})")


def layout_errors(model: nn.Module, sd: dict[str, Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of `sd` against `model`, in words."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    shapes = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in ours.items()
              if k in sd and sd[k].shape != v.shape]
    return [f"{what}: {_few(keys)}" for what, keys in
            (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)) if keys]


def load_strict(model: nn.Module, state_dict: dict[str, Tensor], source: str | Path) -> str:
    """Load any supported naming into `model` strictly; returns the naming. Errors name `source`."""
    sd, naming = to_official_names(state_dict)
    errors = layout_errors(model, sd)
    if errors:
        raise CheckpointError(f"{source} ({naming} naming): " + "; ".join(errors))
    model.load_state_dict(sd, strict=True)
    return naming


def _check_saved_params(path: Path, obj: object, bp: BackboneParams) -> None:
    """Checkpoints written by train_backbone record their params: refuse a mismatch by name."""
    if not (isinstance(obj, dict) and isinstance(obj.get("backbone"), dict)):
        return
    saved = {"arch": "simple_baseline", **obj["backbone"]}
    for key in ARCH_FIELDS[bp.arch]:
        if saved.get(key) != getattr(bp, key):
            raise CheckpointError(f"{path}: trained with backbone.{key}={saved.get(key)}, params say {getattr(bp, key)}")


def backbone_source_sha256(path: Path) -> str:
    """sha256 of the official checkpoint a backbone.pt was imported from, else of backbone.pt itself:
    what the weights behind a cache or a refiner are known by."""
    meta = torch_load(path)
    if not isinstance(meta, dict):
        raise InputError(path, f"not a backbone checkpoint (holds a {type(meta).__name__}, not a dict); "
                         "rerun train_backbone")
    return meta.get("source_sha256") or sha256_file(path)


def load_backbone(path: str | Path, bp: BackboneParams, num_joints: int, configured: bool = False) -> nn.Module:
    """The frozen backbone (eval mode, requires_grad False) from `path`; errors name the file. `configured`:
    the file is the official checkpoint `backbones.<name>.checkpoint` names (an unreadable one is to be
    replaced, not rewritten by a stage)."""
    path = Path(path)
    advice = (f"it is the file backbones.{bp.name}.checkpoint names: replace it with the published checkpoint"
              if configured else REWRITE)
    obj = read_checkpoint(path, advice)
    _check_saved_params(path, obj, bp)
    model = build_backbone(bp, num_joints)
    try:
        sd = extract_state_dict(obj)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    check_finite_weights(path, sd)
    try:
        naming = load_strict(model, sd, path)
    except CheckpointError as err:
        raise CheckpointError(f"{err} (expected a {describe(bp, num_joints)})") from None
    log.info("loaded %s (%s naming) into a %s", path, naming, describe(bp, num_joints))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def save_backbone(path: Path, model: nn.Module, params, epochs: int, source: Path | None = None,
                  compute: dict | None = None) -> None:
    """backbone.pt: weights, the params that built them (`params.backbone`, `params.layout`: a selection's),
    the sha256 of an imported source file and what computed a trained one (`compute`: device, autocast,
    CPU numerics, sgpose.runtime.compute.effective); non-finite weights are refused (`save_torch`)."""
    save_torch(path, {"state_dict": {k: v.cpu().contiguous() for k, v in model.state_dict().items()},
                      "backbone": params.backbone.model_dump(mode="json"),
                      "num_joints": get_layout(params.layout).num_joints, "epochs": epochs,
                      "source": str(source) if source else None,
                      "source_sha256": sha256_file(source) if source else None, "compute": compute})
