"""Shared by the benchmark scripts: the median wall time of a call, synchronised on CUDA."""

from __future__ import annotations

import statistics
import time

import torch


def timed(fn, iters: int = 3) -> float:
    """Median seconds of `fn()` over `iters` runs after one warm-up (synchronised on CUDA)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
