"""Torch files: a file torch cannot read is one line naming it, without torch's advice to unpickle a file of
unknown origin; no checkpoint is written holding a non-finite number (a diverged training's weights)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from sgpose.core.checkpoint_io import UnreadableCheckpoint, non_finite, save_torch, torch_load
from sgpose.core.errors import NonFiniteError

UNSAFE_ADVICE = ("weights_only", "trusted source", "Re-running", "add_safe_globals", "allowlist")


class Payload:
    """Unpickling this runs `open(marker, "w")`: what a hostile checkpoint could do with pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("content", ["random", "code"])
def test_an_unreadable_checkpoint_is_one_line_without_unsafe_advice(tmp_path, content):
    path, marker = tmp_path / "refiner.pt", tmp_path / "ran"
    if content == "random":
        path.write_bytes(random.Random(0).randbytes(4096))
    else:
        torch.save({"state_dict": Payload(marker)}, path)
    with pytest.raises(UnreadableCheckpoint) as err:
        torch_load(path)
    message = str(err.value)
    says = ("not a torch file: neither torch's zip format nor a pickle; its first bytes " if content == "random"
            else "UnpicklingError: the safe loader refused it: ")  # random bytes: no torch reason, what the file is
    assert message.startswith(f"{path}: not a readable torch checkpoint ({says}")
    assert message.endswith("); rewrite it with the stage that makes it") and "\n" not in message
    assert not [advice for advice in UNSAFE_ADVICE if advice in message], message
    assert not marker.exists()  # nothing in it ran


def test_a_checkpoint_with_non_finite_numbers_is_not_written(tmp_path):
    weights = {"down.0.weight": torch.ones(3, 4), "down.0.bias": torch.tensor([1.0, math.nan, math.inf]),
               "step": torch.tensor(7)}
    assert non_finite({"state_dict": weights}) == "2 of 15 values not finite (NaN or inf), first in state_dict.down.0.bias"
    with pytest.raises(NonFiniteError, match=r"refiner\.pt: not written: 2 of 15 values not finite \(NaN or inf\), "
                                             r"first in state_dict\.down\.0\.bias; the training diverged"):
        save_torch(tmp_path / "refiner.pt", {"state_dict": weights, "epoch": 3})
    assert list(tmp_path.iterdir()) == []
    weights["down.0.bias"] = torch.zeros(3)
    save_torch(tmp_path / "refiner.pt", {"state_dict": weights})
    assert torch_load(tmp_path / "refiner.pt")["state_dict"]["step"] == 7
