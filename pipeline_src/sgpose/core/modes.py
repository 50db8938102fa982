"""The modes chosen by a parameter, one enum each, defined once (STYLE.md pattern 5): the config schema
validates `params.yaml` against them and the code that acts on each compares with the members, never
with a string. Torch-free, so the schema (read by the DAG generator and both engines) and
`sgpose.core.variants` never import torch. Each mode's code: `Schedule` and `Missing` in `sgpose.method.guidance`
(alphas, interpolate), `StartPose` in `sgpose.method.refine.guidance_spec`, `InferenceMode` in
`sgpose.method.refine.refine` (SPEC 5), `DecodeMode` in `sgpose.data.decoding`, `ColorOrder` in
`sgpose.data.dataset`. The variants' guidance kind is `sgpose.core.variants.GuidanceKind`, beside the variants.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Schedule(StrEnum):
    """alpha_s along the path P_start -> P_pred (SPEC 2; Fig. 6 compares them)."""

    COSINE = "cosine"  # 1 - abar(s / (S-1)), improved-DDPM's cosine abar (the paper's default)
    LINEAR = "linear"  # s / (S-1)


class Missing(StrEnum):
    """How a joint missing in P_pred (at (0, 0)) is read when interpolating (docs/paper_notes.md)."""

    LITERAL = "literal"  # interpolate toward (0, 0) as written; blank only where the pose is exactly (0, 0)
    KEEP_START = "keep_start"  # hold the start position; blank at the last map (the prediction's own)
    BLANK = "blank"  # blank at every s


class StartPose(StrEnum):
    """P_start of the guidance path (SPEC 2)."""

    CANONICAL = "canonical"  # the layout's canonical pose scaled to the heatmap
    MEAN = "mean"  # the mean training pose: the `start_pose` stage's artifact


class InferenceMode(StrEnum):
    """SPEC 5's readings of multi-step inference."""

    STATIC = "static"  # H(t) built once from P_start -> P_pred; each step's UNet call independent
    RECURSIVE = "recursive"  # P(0) = P_start; step t builds H(t) from P_start -> P(t), P(t+1) = decode
    RECURSIVE_FROM_PRED = "recursive_from_pred"  # the same with P(0) = P_pred


class DecodeMode(StrEnum):
    """How final heatmaps become sub-pixel joints (`infer.decode`; `sgpose.data.decoding`)."""

    STANDARD = "standard"  # argmax + quarter-pixel shift toward the higher neighbour (SimpleBaseline/HRNet)
    DARK = "dark"  # Gaussian modulation + Taylor step at the log-heatmap's maximum (Zhang et al., CVPR 2020)


class ColorOrder(StrEnum):
    """The channel order a backbone checkpoint was trained on (its input tensors must match)."""

    RGB = "rgb"  # HRNet's official configs (DATASET.COLOR_RGB: true), mmpose's checkpoints, sgpose's own
    BGR = "bgr"  # the official SimpleBaseline configs (COLOR_RGB: false): OpenCV's order, never converted


def values(mode: type[Enum]) -> tuple[str, ...]:
    """The accepted spellings of a mode, for error messages and params validation."""
    return tuple(m.value for m in mode)
