"""Reading a torch file (a checkpoint of any stage): any damage is an error naming the file.

Apart from `sgpose.models.checkpoints` (the backbone namings, which import every backbone), so that a
stage reading only a refiner does not depend on the backbones' code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sgpose.core.errors import InputError


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the file and the keys."""


class UnreadableCheckpoint(InputError, CheckpointError):
    """A file torch cannot load at all (truncated, garbage, not a checkpoint): names the file."""


def torch_load(path: str | Path, weights_only: bool = True) -> object:
    """torch.load on CPU; any failure to load (zip or pickle corruption of any kind) is an
    UnreadableCheckpoint naming the file, never a raw UnpicklingError or ValueError from deep inside.
    A missing file is not a damaged one: a FileNotFoundError naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (has the stage that makes it run?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # noqa: BLE001 - torch raises anything from a damaged file
        raise UnreadableCheckpoint(path, f"not a readable torch checkpoint ({type(err).__name__}: "
                                   f"{str(err).splitlines()[0] if str(err) else ''}); rewrite it with the "
                                   "stage that makes it") from None
