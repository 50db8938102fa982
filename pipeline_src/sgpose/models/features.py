"""The feature contract between a backbone, the cache and the refiner (timm's `feature_info`).

A backbone returns its features highest resolution first: level 0 at the heatmap resolution, each next
level half of the one before (SimpleBaseline: the 3 deconv outputs; HRNet: the 4 branches of stage4).
The cache may keep a subset of the levels (`cache.feature_levels`); what was kept travels as one list of
`FeatureInfo` records (level and channels of each stored feature) from the backbone through the cache,
the training sources and the refiner's checkpoint to the UNet, which fuses each at its level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FeatureInfo:
    """One stored backbone feature: its level (0 = the heatmap resolution) and its channels."""

    level: int
    channels: int

    @property
    def reduction(self) -> int:
        """How many times smaller than the heatmap this feature is on each side."""
        return 2**self.level


def feature_info(channels: list[int], levels: list[int] | None = None) -> list[FeatureInfo]:
    """The records of features with these channels at these levels (default 0, 1, 2, ...)."""
    levels = list(range(len(channels))) if levels is None else list(levels)
    if len(levels) != len(channels):
        raise ValueError(f"feature levels {levels} and channels {channels} differ in length")
    if levels != sorted(set(levels)) or (levels and levels[0] < 0):
        raise ValueError(f"feature levels {levels}: distinct levels >= 0 in increasing order")
    return [FeatureInfo(level, c) for level, c in zip(levels, channels)]


def select(info: list[FeatureInfo], levels: list[int] | None) -> list[FeatureInfo]:
    """The records of `levels` (all when None); a level the backbone lacks is an error naming both."""
    if levels is None:
        return list(info)
    have = {f.level: f for f in info}
    missing = [lv for lv in levels if lv not in have]
    if missing:
        raise ValueError(f"cache.feature_levels {levels}: this backbone has feature levels 0..{len(info) - 1}")
    return [have[lv] for lv in levels]


def to_json(info: list[FeatureInfo]) -> list[dict]:
    """The records as plain data (checkpoints, cache attributes)."""
    return [asdict(f) for f in info]


def from_json(data: list[dict]) -> list[FeatureInfo]:
    """Records written by `to_json`."""
    return [FeatureInfo(int(d["level"]), int(d["channels"])) for d in data]
