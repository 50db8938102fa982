"""The paper's variants (SPEC 6) as small declarative descriptions, and the step weights each implies.

A variant says what guidance the UNet sees, whether it gets the step embedding, and which pose
builds the guidance path in training; everything else (the UNet, the loss, the decoding) is shared.
Every guidance kind is a (T, S) weight matrix over the rendered maps G^0..G^{S-1}: H(t) = max_s
w(t, s) G^s, so one batched code path serves them all.

    baseline  the backbone's own heatmaps (no refiner)
    A1        UNet on the features only: no guidance, no step embedding, one step
    A2        the prediction's map as a static guidance: one step (guidance.a2_map: rendered | raw Y0)
    A3        the interpolated maps G^s as the sequence, no graduated fusion (guidance.a3_steps)
    A4        graduated sequence, built from ground truth in training and from the prediction at test
    ours      graduated sequence from the prediction in training and at test ("path consistency")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sgpose.guidance import fusion_weights

GuidanceKind = Literal["none", "prediction", "interpolated", "graduated"]
A3Steps = Literal["clamp", "per_map"]
BASELINE = "baseline"


@dataclass(frozen=True)
class Variant:
    """What distinguishes one refined variant from another."""

    name: str
    guidance: GuidanceKind
    step_embedding: bool
    train_path: Literal["pred", "gt"]  # the pose the guidance path ends at during training
    description: str


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("A1", "none", False, "pred", "UNet on backbone features only"),
    Variant("A2", "prediction", False, "pred", "+ static predicted heatmap"),
    Variant("A3", "interpolated", True, "pred", "+ interpolated heatmap sequence, no graduated fusion"),
    Variant("A4", "graduated", True, "gt", "graduated sequence from ground truth in training"),
    Variant("ours", "graduated", True, "pred", "graduated sequence from the prediction (path consistency)"),
)}
REFINED = tuple(VARIANTS)
ALL = (BASELINE, *REFINED)


def get_variant(name: str) -> Variant:
    """The description of a refined variant; an unknown name is an error listing the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown refined variant {name!r}; expected one of {', '.join(REFINED)}")
    return VARIANTS[name]


def step_weights(kind: GuidanceKind, S: int, a3_steps: A3Steps = "clamp") -> Tensor:
    """w(t, s) as a (T, S) tensor for a guidance kind; T = rows.

    none        (1, S) zeros: one step, no map
    prediction  (1, S) one-hot at s = S-1: the prediction's own map G^{S-1}, one step
    interpolated  clamp: T = S+2 steps, H(t) = G^{clamp(t-1, 0, S-1)} (the same steps as `ours`,
                  so only the fusion differs); per_map: T = S steps, H(t) = G^t
    graduated   fusion_weights(S) (SPEC 2), T = S+2
    """
    if kind == "none":
        return torch.zeros(1, S, dtype=torch.float64)
    if kind == "prediction":
        return torch.eye(S, dtype=torch.float64)[-1:]
    if kind == "interpolated":
        if a3_steps == "per_map":
            return torch.eye(S, dtype=torch.float64)
        if a3_steps != "clamp":
            raise ValueError(f"unknown a3_steps reading {a3_steps!r}; use clamp or per_map")
        idx = (torch.arange(S + 2) - 1).clamp(0, S - 1)
        return torch.eye(S, dtype=torch.float64)[idx]
    if kind == "graduated":
        return fusion_weights(S)
    raise ValueError(f"unknown guidance kind {kind!r}")
