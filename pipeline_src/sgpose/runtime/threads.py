"""How many cores a stage uses: one thread count for torch (intra- and inter-op), OpenCV and the
DataLoader's worker processes (issue 16).

Jobs that Snakemake (`--cores N`, a rule's `threads:`) or SLURM (`--cpus-per-task`) place side by
side must each stay within their cores: left alone, every process lets torch take all of them and
the machine is oversubscribed many times over. A separate module from `sgpose.runtime.compute`, whose
source is part of the cache fingerprint: a thread count does not change what is computed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Callable

SLURM_CPUS = "SLURM_CPUS_PER_TASK"
# read by OpenMP (torch's intra-op pool), MKL and OpenBLAS when they start: a library the stage has not
# imported yet (or imports lazily) starts with the stage's count
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which cgroups and `taskset` narrow;
    `os.cpu_count()` where the platform has no affinity call)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_threads(explicit: int | None, rule: str | None = None, default: int | None = None) -> tuple[int, str]:
    """(threads, where the number came from), first found of: `--threads N` (what the Snakemake rule
    was given), SLURM_CPUS_PER_TASK (the cores SLURM allotted), the threads of the stage's rule
    (`resources.<rule>.threads` of the params file, else the rule's default: `sgpose.dag.table`; at most
    the cores this process may use: the defaults are a GPU node's), else every core this process may use."""
    if explicit is not None:
        if explicit < 1:
            raise ValueError(f"--threads {explicit}: must be at least 1")
        return explicit, "--threads"
    slurm = os.environ.get(SLURM_CPUS, "").strip()
    if slurm:
        if not slurm.isdigit() or int(slurm) < 1:
            raise ValueError(f"{SLURM_CPUS}={slurm!r}: not a positive integer")
        return int(slurm), SLURM_CPUS
    if rule is not None and default:
        cores = available_cores()
        if default > cores:
            return cores, f"resources.{rule}.threads {default}, capped at this machine's {cores} cores"
        return int(default), f"resources.{rule}.threads"
    return available_cores(), "all cores of this machine"


_THREADS: int | None = None  # what configure_threads set in this process


def configure_threads(explicit: int | None, stage: str, rule: str | None = None, default: int | None = None,
                      numerics: Callable[[], str] | None = None) -> int:
    """Give torch (intra- and inter-op), OpenCV and DataLoader workers this stage's cores
    (`resolve_threads`); under torchrun each of WORLD_SIZE processes takes its share. Called once by
    the CLI before a stage runs, so processes placed side by side never oversubscribe the CPU.
    `numerics`: puts the CPU numerics in force after the threads (`portable` fixes torch's own count:
    sgpose.runtime.numerics) and names them; the log line then says both."""
    global _THREADS
    n, source = resolve_threads(explicit, rule, default)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n = max(1, n // world)
    os.environ.update({var: str(n) for var in THREAD_ENV})
    # only what the stage's modules imported: evaluate, prepare or download never load torch (about a
    # second per process), and OpenCV's pool (crop decoding and warping) is set where it was loaded
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):  # settable once, before any inter-op work: a second call keeps it
            torch.set_num_interop_threads(n)
    if "cv2" in sys.modules:
        import cv2

        cv2.setNumThreads(n)
    _THREADS = n
    share = f", each of {world} DDP processes" if world > 1 else ""
    in_force = f"; numerics {numerics()}" if numerics is not None else ""
    logging.getLogger("sgpose").info("sgpose %s: %d thread%s (from %s%s)%s", stage, n, "" if n == 1 else "s", source,
                                     share, in_force)
    return n


def loader_workers(requested: int) -> int:
    """DataLoader worker processes within this stage's cores: at most threads - 1 (the main process
    runs the model on one), as many as asked where configure_threads was never called."""
    return requested if _THREADS is None else min(requested, max(_THREADS - 1, 0))


def pool_threads() -> int:
    """Threads for work that releases the GIL beside the stage's own (the cache's chunk encoding):
    this stage's cores, every core where configure_threads was never called."""
    return _THREADS or available_cores()
