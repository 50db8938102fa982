"""Training losses shared by the backbone and the refiner."""

from __future__ import annotations

from torch import Tensor


def joints_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """SimpleBaseline's JointsMSELoss: 0.5 * mean over joints of MSE(w_k * pred_k, w_k * target_k).

    pred, target (N, K, h, w); weight (N, K), 0 for unlabelled joints.
    """
    w = weight[:, :, None, None]
    return 0.5 * ((pred - target) * w).pow(2).mean()
