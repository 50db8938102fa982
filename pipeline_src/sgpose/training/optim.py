"""The optimizer of both trainings: Adam (Kingma & Ba, 2015) as torch computes it, with its one
operation whose bits depend on the processor, the square root of the second moment, made exact.

torch.optim.Adam on the CPU takes that root with torch's `sqrt`, which differs per processor
(`sgpose.runtime.exact`): measured under `portable`, five Adam steps of a small network gave other weights
under an emulated Zen 3, Haswell or Ice Lake than on Zen 4, and the same weights once the root was
IEEE's. On CUDA the update stays torch's own (foreach or fused kernels; GPU bits are not portable).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from sgpose.runtime import exact


class Adam(torch.optim.Optimizer):
    """torch.optim.Adam's update (no weight decay, no AMSGrad), its state under the same names (`step`,
    `exp_avg`, `exp_avg_sq`), with denom = sqrt(v) / sqrt(1 - beta2^t) + eps from IEEE square roots:
        m <- m + (1 - beta1)(g - m);  v <- beta2 v + (1 - beta2) g^2;  p <- p - lr / (1 - beta1^t) m / denom"""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (exact.sqrt(v) / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))
        return loss


def adam(params: Iterable[Tensor], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The trainings' optimizer on `device`: `Adam` on the CPU, torch's own on CUDA."""
    if device.type == "cpu":
        return Adam(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)
