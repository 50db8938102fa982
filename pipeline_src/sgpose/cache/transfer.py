"""The backbone's outputs of a cache batch brought to the host in the cache's dtype (`ToHost`).

The writer stores the large datasets in fp16 (`cache.dtype`). Converting float32 outputs on the host cost
the cache stage a copy of twice the bytes over the bus and a conversion of every value on the writer's
thread (SimpleBaseline-R50 with the flip view: 8.9 MB a sample). Here the conversion runs on the device,
values that overflow float16 are found there, and on CUDA the copy runs on a side stream into pinned
memory while the next batch's forward computes (`start` now, `result` one batch later). The values are the
writer's own conversion (torch's round to nearest even; tests/cache/test_transfer.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from sgpose.cache.writer import FP16_INF

Result = tuple[dict[str, np.ndarray], list[str]]  # arrays by key, the keys whose finite values overflowed


class ToHost:
    """`start(outputs)` -> a callable giving the outputs (float tensors in `dtype`, others as they are) as
    numpy arrays and the keys whose finite values overflowed float16."""

    def __init__(self, dev: torch.device, dtype: str):
        self.dev, self.dtype = dev, getattr(torch, dtype)
        self.stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None

    def start(self, outputs: dict[str, Tensor]) -> Callable[[], Result]:
        converted = {k: self._convert(v) for k, v in outputs.items()}
        half = self.dtype == torch.float16
        flags = torch.stack([(_overflow(v) if half else _no(v)).to(self.dev) for v in outputs.values()])
        if self.stream is None:
            return lambda: _result(converted, flags)
        self.stream.wait_stream(torch.cuda.current_stream(self.dev))
        with torch.cuda.stream(self.stream):  # pinned destinations: the copies overlap the next forward
            host = {k: v.to("cpu", non_blocking=True) for k, v in converted.items()}
            flags_host = flags.to("cpu", non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        for v in (*converted.values(), flags):
            if v.is_cuda:
                v.record_stream(self.stream)  # made on the compute stream, read on this one

        def result() -> Result:
            done.synchronize()
            return _result(host, flags_host)

        return result

    def _convert(self, x: Tensor) -> Tensor:
        return x.to(self.dtype) if x.is_floating_point() and x.dtype != self.dtype else x


def _overflow(x: Tensor) -> Tensor:
    """Whether a finite value of float `x` rounds to inf in float16 (a 0-dim bool on its device)."""
    if not x.is_floating_point() or x.dtype == torch.float16:
        return _no(x)
    return (torch.isfinite(x) & (x.abs() >= FP16_INF)).any()


def _no(x: Tensor | None = None) -> Tensor:
    return torch.zeros((), dtype=torch.bool, device=None if x is None else x.device)


def _result(arrays: dict[str, Tensor], flags: Tensor) -> Result:
    keys = list(arrays)
    return {k: v.numpy() for k, v in arrays.items()}, [k for k, f in zip(keys, flags.tolist()) if f]
