"""Arithmetic whose bits no processor can move: the operations torch computes differently per machine,
computed IEEE-exactly instead (docs/reproducibility.md, "What moves the bits").

torch's CPU `sqrt` (and `pow(x, 0.5)`) runs MKL's vector math, which is accurate to about an ulp but not
correctly rounded, and whose code depends on the processor: measured on Zen 4, 1,251 of 100,003 float64
and 15,640 float32 square roots differ from IEEE's, and other ones differ under an emulated Zen 3, Haswell
or Ice Lake. IEEE 754 defines sqrt as correctly rounded, and numpy computes it with the processor's
`sqrtps`/`sqrtpd`, which every x86-64 processor computes to the same bits. The GPU's arithmetic is never
portable (docs/reproducibility.md), so a CUDA tensor keeps torch's own.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def sqrt(x: Tensor) -> Tensor:
    """The correctly rounded square root of `x`, a new tensor of its dtype and device (no autograd)."""
    if x.device.type != "cpu":
        return torch.sqrt(x)
    if x.dtype == torch.bfloat16:  # numpy has no bfloat16; float32's root rounds to the same bfloat16
        return sqrt(x.float()).to(x.dtype)
    return torch.from_numpy(np.sqrt(x.detach().numpy(force=True)))
