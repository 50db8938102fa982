"""Resume points of the training stages: `<output>.last`, beside the output, written after every epoch.

A resume point holds the whole training state and the `fingerprint` of what made it (every parameter
that shapes the weights, the training data, the compute set-up). A re-run continues from it only when
its fingerprint is the current one and it is not ahead of the configured epochs; a truncated, foreign or
stale file is reported and ignored (the run starts clean), never loaded. The stage removes it when its
output is complete. Both training stages (backbone and refiner) keep theirs this way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sgpose.core.checkpoint_io import torch_load
from sgpose.core.io import atomic_path

log = logging.getLogger(__name__)
SUFFIX = ".last"


class ResumePoint:
    """The resume file of `output` for a run made as `fingerprint` says, training `epochs` epochs."""

    def __init__(self, output: Path, fingerprint: dict, epochs: int):
        self.path = Path(output).with_name(Path(output).name + SUFFIX)
        self.fingerprint, self.epochs = fingerprint, epochs

    def load(self) -> dict | None:
        """The saved state when there is one made the same way, else None (and nothing is loaded)."""
        if not self.path.is_file():
            return None
        try:
            state = torch_load(self.path)
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file must not block a fresh run
            log.warning("%s: cannot resume (%s); starting clean", self.path, err)
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint \
                or not 0 <= int(state.get("epoch", -1)) <= self.epochs:
            log.warning("%s: made with other parameters or data; starting clean", self.path)
            return None
        log.info("resuming from %s (epoch %d)", self.path, state["epoch"])
        return state

    def save(self, state: dict) -> None:
        """Write the state (with the fingerprint) atomically."""
        with atomic_path(self.path) as tmp:
            torch.save(state | {"fingerprint": self.fingerprint}, tmp)

    def clear(self) -> None:
        """The output is complete: the resume point is no longer needed."""
        self.path.unlink(missing_ok=True)
