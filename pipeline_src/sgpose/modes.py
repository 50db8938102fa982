"""Modes chosen by a parameter, each defined once (STYLE.md pattern 5): params, variants and the
code that acts on them import these. No torch here: `sgpose.config` and `sgpose.variants` use them."""

from __future__ import annotations

from enum import Enum


class DecodeMode(str, Enum):
    """How final heatmaps become sub-pixel joints (`infer.decode`; `sgpose.data.decoding`)."""

    STANDARD = "standard"  # argmax + quarter-pixel shift toward the higher neighbour (SimpleBaseline/HRNet)
    DARK = "dark"  # Gaussian modulation + Taylor step at the log-heatmap's maximum (Zhang et al., CVPR 2020)


class ColorOrder(str, Enum):
    """The channel order a backbone checkpoint was trained on (its input tensors must match)."""

    RGB = "rgb"  # HRNet's official configs (DATASET.COLOR_RGB: true), mmpose's checkpoints, sgpose's own
    BGR = "bgr"  # the official SimpleBaseline configs (COLOR_RGB: false): OpenCV's order, never converted


def values(mode: type[Enum]) -> tuple[str, ...]:
    """The accepted spellings of a mode, for error messages and params validation."""
    return tuple(m.value for m in mode)
