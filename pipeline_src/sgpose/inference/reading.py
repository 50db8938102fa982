"""The refiner's inference reading as infer, infer_online and predict run it (`Reading`): the UNet and
the guidance in the compute dtype and memory format from end to end, replayed from a CUDA graph and
compiled where the `compute` section says so.

    weights   converted once to `compute.refiner_dtype` (bf16 on CUDA by default) in the refiner's memory
              format: no autocast, which cast every weight and activation at every call (on an H200,
              92 copies of 292 kernels per static reading, twice the device time of its convolutions)
    inputs    the features converted once on the device to the same dtype and format; Y0 stays float32
              (P_pred is its argmax); the guidance spec's tensors live on the device
    graphs    `compute.refiner_cuda_graphs`: the whole reading (P_pred, the guidance, the UNet calls)
              captured once per batch shape and replayed (`sgpose.runtime.graphs`), every batch padded
              to `infer.batch_size` so that the split's last batch replays the same graph
    compile   `compute.refiner_compile`: torch.compile of the whole reading (fuses the normalisations,
              activations and the guidance's rendering), compiled once for that one shape

On the CPU all of it is off (float32, NCHW, eager): the reading is `refine` itself, to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sgpose.config.schema import ComputeParams
from sgpose.core.modes import InferenceMode
from sgpose.method.refine import GuidanceSpec, refine
from sgpose.method.unet import StructureGuidedUNet
from sgpose.runtime import compute
from sgpose.runtime.graphs import FixedBatch, GraphedCall


@dataclass(frozen=True)
class Setup:
    """How a reading runs: the weights' and features' dtype, the memory format, CUDA graphs, the
    torch.compile backend (None: eager) and the batch every call is padded to when graphs or compile
    are on. `of` reads them from the `compute` section; the tests set them on the CPU."""

    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    cuda_graphs: bool = False
    compile: str | None = None
    batch: int = 64

    @classmethod
    def of(cls, cp: ComputeParams, dev: torch.device, batch: int) -> Setup:
        on_gpu = dev.type == "cuda"
        return cls(compute.refiner_dtype(cp, dev), compute.refiner_channels_last(cp, dev),
                   cp.refiner_cuda_graphs and on_gpu, "inductor" if cp.refiner_compile and on_gpu else None, batch)


class Reading:
    """`reading(feats, y0)` -> the refined heatmaps (B, K, h, w) of one docs/method.md §5 reading, in the
    refiner's dtype on its device, for a batch on any device (converted here). Converts `unet` in place."""

    def __init__(self, unet: StructureGuidedUNet, spec: GuidanceSpec, mode: InferenceMode, dev: torch.device,
                 setup: Setup = Setup()):
        self.setup, self.dev, self.mode = setup, dev, mode
        self.format = torch.channels_last if setup.channels_last else torch.contiguous_format
        self.unet = unet.to(device=dev, dtype=setup.dtype, memory_format=self.format).eval()
        self.spec = spec.to(dev)
        run = self._eager
        if setup.compile is not None:
            run = torch.compile(run, backend=setup.compile, dynamic=False)
        if setup.cuda_graphs:
            run = GraphedCall(run)
        fixed = setup.compile is not None or setup.cuda_graphs  # both want one shape
        self.run = FixedBatch(run, setup.batch) if fixed else run

    def _eager(self, *args: Tensor) -> Tensor:
        """The reading over (F_0, ..., F_n, Y0) on the device."""
        return refine(self.unet, self.spec, list(args[:-1]), args[-1], self.mode)

    def inputs(self, feats: list[Tensor], y0: Tensor) -> list[Tensor]:
        """The features in the refiner's dtype and memory format, Y0 as float32 NCHW, on its device."""
        dtype = self.setup.dtype
        moved = [f.to(self.dev, non_blocking=True).to(dtype=dtype, memory_format=self.format) for f in feats]
        return [*moved, y0.to(self.dev, non_blocking=True).float().contiguous()]

    @torch.no_grad()
    def __call__(self, feats: list[Tensor], y0: Tensor) -> Tensor:
        return self.run(*self.inputs(feats, y0))
