"""Multi-process (DDP) training behind one parameter, `train_refiner.devices`.

A stage asked for N > 1 devices re-launches itself under `torchrun` (`torch.distributed.run
--standalone`, N processes on this machine) with the same command line; each process then joins
the process group: NCCL with one GPU per process (`LOCAL_RANK`), gloo on the CPU (how the tests
run it). On a cluster, start the stage under your own torchrun / srun instead: a process that
already has WORLD_SIZE set is never re-launched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from typing import Iterator

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def launched() -> bool:
    """True inside a torchrun (or srun + env) process group."""
    return "WORLD_SIZE" in os.environ


def relaunch(nproc: int, argv: list[str]) -> None:
    """Run `sgpose <argv>` under torchrun with `nproc` processes; raise if any of them fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "sgpose.cli", *argv]
    log.info("launching %d processes: %s", nproc, " ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        raise ValueError(f"the {nproc} training processes failed (see their log above)")


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[tuple[int, int]]:
    """(rank, world size): joins the group when launched by torchrun, else (0, 1) and nothing to join."""
    if not launched():
        yield 0, 1
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        dist.destroy_process_group()


def all_sum(value: float, world: int) -> float:
    """The sum of `value` over every process (the value itself for one process)."""
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")  # NCCL reduces GPU tensors only
    dist.all_reduce(t)
    return float(t.item())


def gather_floats(value: torch.Tensor, world: int) -> list[float]:
    """Every process's scalar `value`, by rank (a float32 goes through float64 and back exactly)."""
    mine = float(value)
    return [all_sum(mine if r == dist.get_rank() else 0.0, world) for r in range(world)] if world > 1 else [mine]


def barrier(world: int) -> None:
    """Wait for every process (no-op for one)."""
    if world > 1:
        dist.barrier()
