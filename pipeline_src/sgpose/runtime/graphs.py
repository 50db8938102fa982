"""Fixed shapes and CUDA graphs for an inference callable: f(*tensors) -> tensor.

A small network at 64x48 is launch-bound on a GPU: the refiner's static reading is a few hundred kernels
of microseconds each (docs/scale.md, "The GPU check"). A CUDA graph records them once and replays them in
one launch; torch.compile fuses them. Both want fixed shapes (a graph replays fixed buffers; a compiled
function recompiles for every new shape), so:

    FixedBatch    pads every call to one batch size (the stage's) and cuts the output back: the last,
                  shorter batch of a split replays the same graph. Rows never meet in the refiner (every
                  layer works per sample), so padding changes no real row's values.
    GraphedCall   captures `fn` once per input signature (shapes, dtypes, strides) after a warm-up on a
                  side stream (cuDNN's autotuner, torch.compile's compilation), then copies each call's
                  inputs into the captured buffers and replays. CUDA only.

What a captured function must not do: copy from the host (a CPU tensor moved to the device inside it:
"Cannot copy between CPU and CUDA tensors during CUDA graph capture") or read a value back (`.item()`,
`.tolist()`, indexing with a host list). tests/runtime/test_graphs.py checks the refiner's readings
for both on the CPU (`host_traffic`, on the meta device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

Fn = Callable[..., Tensor]


class FixedBatch:
    """`fn` called on inputs padded with zero rows to `rows` (longer calls in pieces of `rows`), its
    output cut back to the real rows. Every input is a batch (dim 0) in its own memory format."""

    def __init__(self, fn: Fn, rows: int):
        self.fn, self.rows = fn, rows

    def __call__(self, *args: Tensor) -> Tensor:
        n = args[0].shape[0]
        if n == self.rows:
            return self.fn(*args)
        if n > self.rows:
            return torch.cat([self(*(a[i:i + self.rows] for a in args)) for i in range(0, n, self.rows)])
        return self.fn(*(_padded(a, self.rows) for a in args))[:n]


def _padded(x: Tensor, rows: int) -> Tensor:
    """`x` (n rows) followed by zero rows up to `rows`, in `x`'s memory format (a captured graph's key)."""
    fmt = torch.channels_last if x.dim() == 4 and _is_channels_last(x) else torch.contiguous_format
    out = torch.zeros((rows, *x.shape[1:]), dtype=x.dtype, device=x.device).contiguous(memory_format=fmt)
    out[:len(x)] = x
    return out


def _is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


@dataclass
class _Captured:
    inputs: list[Tensor]
    output: Tensor
    graph: torch.cuda.CUDAGraph


class GraphedCall:
    """`fn` replayed from a CUDA graph, one per input signature, captured on its first call after
    `warmup` calls on a side stream; all graphs share one memory pool (they never run at once). The
    output is a copy: the captured buffer is overwritten by the next replay."""

    def __init__(self, fn: Fn, warmup: int = 2):
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA graphs need CUDA (compute.refiner_cuda_graphs applies on a GPU only)")
        self.fn, self.warmup = fn, warmup
        self.graphs: dict[tuple, _Captured] = {}
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, *args: Tensor) -> Tensor:
        key = tuple((tuple(a.shape), a.dtype, a.stride(), a.device) for a in args)
        captured = self.graphs.get(key) or self._capture(key, args)
        for buffer, a in zip(captured.inputs, args):
            buffer.copy_(a)
        captured.graph.replay()
        return captured.output.clone()

    def _capture(self, key: tuple, args: tuple[Tensor, ...]) -> _Captured:
        inputs = [a.clone() for a in args]  # clone keeps the strides: the key's
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # as torch.cuda.graphs asks: lazy initialisations happen off the capture
            for _ in range(self.warmup):
                self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = self.fn(*inputs)
        self.graphs[key] = captured = _Captured(inputs, output, graph)
        return captured


class HostTraffic(TorchDispatchMode):
    """Records the ops of a function that a CUDA graph could not capture, run on tensors of one device
    (the meta device on a machine without a GPU): a tensor of another device in an op's arguments (a
    copy from the host, not a 0-dim scalar) and a value read back to the host (`.item()`, `.tolist()`)."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device, self.found = device, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket.__name__)
        if name in ("_local_scalar_dense", "item"):
            self.found.append(f"{name}: a value read back to the host")
        for a in (*args, *kwargs.values(), *(x for v in args if isinstance(v, (list, tuple)) for x in v)):
            if isinstance(a, Tensor) and a.device != self.device and a.dim() > 0:
                self.found.append(f"{name}: a {a.device.type} tensor of shape {tuple(a.shape)}")
        return func(*args, **kwargs)


def host_traffic(fn: Fn, *args: Tensor) -> list[str]:
    """What `fn(*args)` does that a CUDA graph could not capture (`HostTraffic`); [] when capturable.
    Run it on meta tensors (model too) where there is no GPU: every op then has a device to compare with."""
    with HostTraffic(args[0].device) as mode:
        fn(*args)
    return mode.found
