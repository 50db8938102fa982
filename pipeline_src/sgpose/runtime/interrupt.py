"""SIGTERM, as SLURM sends it before it ends a job at its time limit or on preemption (and as `scancel
--signal=TERM` does): the training stages stop at the step they reached, keep it, and exit.

`on_sigterm()` (around a stage's run) turns SIGTERM into a flag: the training loops ask `requested()`
after each optimizer step, save a resume point at that step (`sgpose.training.resume`) and raise
`Preempted`, which the CLI turns into exit status 143 (DVC and Snakemake count it a failure; the SLURM
profile resubmits the job, which resumes at that step). SLURM signals every process of the job, the
DataLoader workers too, and a worker ended by it makes the main process fail wherever it is ("DataLoader
worker exited unexpectedly", in the middle of the save): the training loaders' workers ignore SIGTERM
(`worker_init`) and end with the main process. Changes how a stage stops, never what it writes
(`sgpose.runtime.imports.UNTRACKED`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from sgpose.core.errors import Preempted

_received: list[int] = []  # the signals seen since on_sigterm() began (a list: set from a signal handler)


def _note(signum: int, frame) -> None:
    _received.append(signum)  # nothing else here: a signal handler may interrupt any code, logging's included


@contextlib.contextmanager
def on_sigterm() -> Iterator[None]:
    """SIGTERM sets a flag (`received`) instead of ending the process, until the block ends. Outside the
    main thread (where Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _note)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def received() -> bool:
    """Whether this process got SIGTERM inside `on_sigterm()`."""
    return bool(_received)


def requested(world: int = 1) -> bool:
    """Whether to stop now: SIGTERM received here, or with `world` > 1 DDP processes by any of them (an
    all-reduce: every process must stop at the same step, or the others wait in the next one's)."""
    if world == 1:
        return received()
    from sgpose.runtime import distributed

    return distributed.all_sum(float(received()), world) > 0


def stopped(where: str, resume_point: str) -> Preempted:
    """The Preempted error of a loop stopped at `where` (`step 3/10 of epoch 2`) with its resume point saved."""
    return Preempted(f"stopped by SIGTERM at {where}; resume point {resume_point} saved: a rerun continues from "
                     f"there (exit {Preempted.STATUS})")


def worker_init(worker_id: int) -> None:
    """A DataLoader worker's `worker_init_fn`: ignore SIGTERM (the main process stops, saves and ends them)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
