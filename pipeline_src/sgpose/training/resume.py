"""Resume points of the training stages: `<output>.last`, beside the output, written after every epoch
and, on SIGTERM (`sgpose.runtime.interrupt`), at the step an epoch reached.

A resume point holds the whole training state and the `fingerprint` of what made it (every parameter
that shapes the weights, the training data, the compute set-up). A re-run continues from it only when
its fingerprint is the current one and it is not ahead of the configured epochs; a truncated, foreign or
stale file is reported and ignored (the run starts clean), never loaded. The stage removes it when its
output is complete. Both training stages (backbone and refiner) keep theirs this way.

`epoch` counts the finished epochs; a point saved inside an epoch also holds `step`, the optimizer steps
of epoch `epoch + 1` done, and what the loop needs to redraw that epoch's batches and skip the done ones
(the loops' own keys): the resumed run ends with the bytes of one never stopped. A point never holds a
non-finite number (`core.checkpoint_io.save_torch`): a diverged state is no point to resume from.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sgpose.core.checkpoint_io import save_torch, torch_load

log = logging.getLogger(__name__)
SUFFIX = ".last"


class ResumePoint:
    """The resume file of `output` for a run made as `fingerprint` says, training `epochs` epochs."""

    def __init__(self, output: Path, fingerprint: dict, epochs: int):
        self.path = Path(output).with_name(Path(output).name + SUFFIX)
        self.fingerprint, self.epochs = fingerprint, epochs
        self.at: tuple[int, int] | None = None  # (epoch, step) of this run's point on disk, once loaded or saved

    def load(self) -> dict | None:
        """The saved state when there is one made the same way, else None (and nothing is loaded)."""
        if not self.path.is_file():
            return None
        try:
            state = torch_load(self.path)
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file must not block a fresh run
            log.warning("%s: cannot resume (%s); starting clean", self.path, err)
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint or not self._in_range(state):
            log.warning("%s: made with other parameters or data; starting clean", self.path)
            return None
        self.at = (int(state["epoch"]), int(state.get("step", 0)))
        log.info("resuming from %s (%s)", self.path, where(*self.at))
        return state

    def _in_range(self, state: dict) -> bool:
        epoch, step = int(state.get("epoch", -1)), int(state.get("step", 0))
        return 0 <= epoch <= self.epochs and step >= 0 and (step == 0 or epoch < self.epochs)

    def save(self, state: dict) -> None:
        """Write the state (with the fingerprint) atomically; a non-finite number in it is refused."""
        save_torch(self.path, state | {"fingerprint": self.fingerprint})
        self.at = (int(state["epoch"]), int(state.get("step", 0)))

    def kept(self) -> str:
        """Which point of this run remains, in words (for a run that stops)."""
        if self.at is None:
            return "no resume point of this run (none was saved yet)"
        return f"the resume point {self.path} ({where(*self.at)}) is kept"

    def clear(self) -> None:
        """The output is complete: the resume point is no longer needed."""
        self.path.unlink(missing_ok=True)


def where(epoch: int, step: int = 0) -> str:
    """A resume point's place in words: `epoch 2` (2 finished), `step 3 of epoch 3` (inside the third)."""
    return f"step {step} of epoch {epoch + 1}" if step else f"epoch {epoch}"
