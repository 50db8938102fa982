"""The modes of guidance and refinement, one enum each, defined once: the config schema validates
`params.yaml` against them and the code that acts on each compares with the members, never with a
string. Torch-free, so the schema (read by the DAG generator and both engines) never imports torch.
Each mode's code: `Schedule` and `Missing` in `sgpose.guidance` (alphas, interpolate), `StartPose` in
`sgpose.refine.guidance_spec`, `InferenceMode` in `sgpose.refine.refine` (SPEC 5). The variants'
guidance kind is `sgpose.variants.GuidanceKind`, beside the variants.
"""

from __future__ import annotations

from enum import StrEnum


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
