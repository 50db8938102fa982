"""Reading and writing a torch file (a checkpoint of any stage): any damage is an error naming the file,
and no checkpoint holds a non-finite number (a diverged training's weights are refused, both ways).

Apart from `sgpose.models.checkpoints` (the backbone namings, which import every backbone), so that a
stage reading only a refiner does not depend on the backbones' code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Iterator

import torch

from sgpose.core.errors import InputError, NonFiniteError
from sgpose.core.io import atomic_path


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the file and the keys."""


class UnreadableCheckpoint(InputError, CheckpointError):
    """A file torch cannot load at all (truncated, garbage, not a checkpoint): names the file."""


REWRITE = "rewrite it with the stage that makes it"
ZIP_MAGIC, PICKLE_PROTOCOL = b"PK\x03\x04", 0x80  # torch's zip format; a legacy torch file is a pickle


def torch_load(path: str | Path, weights_only: bool = True, advice: str = REWRITE) -> object:
    """torch.load on CPU; any failure to load (zip or pickle corruption of any kind) is an
    UnreadableCheckpoint naming the file and what it is, with `advice` (the project's own files: rewrite it
    with its stage; a file the params name: replace it), never a raw UnpicklingError or KeyError from deep
    inside. A missing file is not a damaged one: a FileNotFoundError naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (has the stage that makes it run?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # noqa: BLE001 - torch raises anything from a damaged file
        what = _kind(Path(path)) or f"{type(err).__name__}: {_reason(err)}"
        raise UnreadableCheckpoint(path, f"not a readable torch checkpoint ({what}); {advice}") from None


def _kind(path: Path) -> str | None:
    """What a file torch cannot read is, where its first bytes say it is no torch file at all (else None)."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC) or (head and head[0] == PICKLE_PROTOCOL):
        return None
    shown = " ".join(f"{b:02x}" for b in head) if head else "none: the file is empty"
    return f"not a torch file: neither torch's zip format nor a pickle; its first bytes {shown}"


def _reason(err: Exception) -> str:
    """torch's reason in one line. Its weights-only loader's refusal advises loading with pickle
    (`weights_only=False`) or allowlisting what the file names, either of which runs code a file of
    unknown origin holds: only its finding is kept."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in text:
        marker = "WeightsUnpickler error:"  # the finding follows it, or the advice's paragraph
        found = text.split(marker, 1)[1] if marker in text else text.split("\n\n", 1)[-1]
        found = " ".join(found.split("Check the documentation", 1)[0].split(" Please use", 1)[0].split())
        return "the safe loader refused it: " + (found if found and "weights_only" not in found else "unsupported content")
    return text.splitlines()[0] if text else ""


def non_finite(obj: Any) -> str | None:
    """None when every floating-point tensor in a checkpoint tree (dicts, lists, tuples) is finite; else
    what is not, in words: `477009 of 477009 values not finite (NaN or inf), first in down.0.weight`."""
    bad = total = 0
    first = None
    for name, tensor in _tensors(obj):
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        count = int(tensor.numel() - torch.isfinite(tensor).sum())
        bad, total, first = bad + count, total + tensor.numel(), first or (name if count else None)
    return f"{bad} of {total} values not finite (NaN or inf), first in {first}" if bad else None


def _tensors(obj: Any, where: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{where}[{i}]")


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save atomically (temporary name, renamed when complete), refusing non-finite numbers: the
    weights of a diverged training are no result and no point to resume from (NonFiniteError)."""
    if (bad := non_finite(obj)) is not None:
        raise NonFiniteError(path, f"not written: {bad}; the training diverged")
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def check_finite_weights(path: str | Path, state_dict: Any) -> None:
    """A loaded checkpoint's weights must be finite: one written by a diverged training (before sgpose
    refused to write one) is an InputError naming it."""
    if (bad := non_finite(state_dict)) is not None:
        raise InputError(path, f"{bad}: written by a diverged training; delete it and retrain (a lower lr, or "
                         "gradient clipping)")


