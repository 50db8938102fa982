"""The registry of official backbone checkpoints: the one place that holds their URLs and checksums.

`backbones.<name>.checkpoint` in params names either a key of `CHECKPOINTS` (fetched into `checkpoints/`
by the download stage, loaded from there by cache) or a local file path.

All five are mmpose 0.x's COCO 256x192 top-down models (SimpleBaseline ResNet-50/101/152 and HRNet-
W32/W48, the same architectures as the official repository; `sgpose.models.checkpoints` renames
their keys). File names as published in mmpose's model zoo (docs/en/papers/backbones/{resnet,hrnet}.md,
configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/{resnet,hrnet}_coco.md). mmpose puts the
first 8 hex digits of each file's sha256 in its name; that prefix is what we verify until a full
sha256 and size are recorded here (fill `sha256`/`size` after a first verified download).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sgpose.config.schema import BackboneParams
from sgpose.core.io import sha256_file
from sgpose.core.modes import ColorOrder

CHECKPOINT_DIR = Path("checkpoints")
_MMPOSE = "https://download.openmmlab.com/mmpose/top_down"
REGISTRY_PREFIXES = ("mmpose:",)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooCheckpoint:
    """One published checkpoint and the backbone params it needs (arch, depth or width, input size, and
    the channel order it was trained on: mmpose 0.x trains every top-down model on RGB)."""

    url: str
    arch: str
    depth: int | None = None
    width: int | None = None
    input_size: tuple[int, int] = (256, 192)
    num_joints: int = 17
    input_color: ColorOrder = ColorOrder.RGB
    sha256: str = ""  # full digest when known
    size: int | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def sha256_prefix(self) -> str:
        """The 8 hex digits mmpose publishes in the file name (`res50_coco_256x192-ec54d7f3_20200709.pth`)."""
        return self.file_name.rsplit("-", 1)[1].split("_", 1)[0]


CHECKPOINTS: dict[str, ZooCheckpoint] = {
    "mmpose:res50_coco_256x192": ZooCheckpoint(
        f"{_MMPOSE}/resnet/res50_coco_256x192-ec54d7f3_20200709.pth", "simple_baseline", depth=50),
    "mmpose:res101_coco_256x192": ZooCheckpoint(
        f"{_MMPOSE}/resnet/res101_coco_256x192-6e6babf0_20200708.pth", "simple_baseline", depth=101),
    "mmpose:res152_coco_256x192": ZooCheckpoint(
        f"{_MMPOSE}/resnet/res152_coco_256x192-f6e307c2_20200709.pth", "simple_baseline", depth=152),
    "mmpose:hrnet_w32_coco_256x192": ZooCheckpoint(
        f"{_MMPOSE}/hrnet/hrnet_w32_coco_256x192-c78dce93_20200708.pth", "hrnet", width=32),
    "mmpose:hrnet_w48_coco_256x192": ZooCheckpoint(
        f"{_MMPOSE}/hrnet/hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth", "hrnet", width=48),
}


def is_registry_key(checkpoint: str | None) -> bool:
    """True for a registry name such as `mmpose:res50_coco_256x192`, False for a path (or None).

    An unknown name with a registry prefix (`mmpose:`) is an error, not a path.
    """
    if not checkpoint:
        return False
    if checkpoint.startswith(REGISTRY_PREFIXES):
        lookup(checkpoint)
        return True
    return False


def lookup(key: str) -> ZooCheckpoint:
    """The registry entry; an unknown `mmpose:` name is an error listing the known ones."""
    if key not in CHECKPOINTS:
        raise ValueError(f"unknown checkpoint {key!r}; known: {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[key]


def published(path: str | Path) -> bool:
    """Whether `path` is a registry checkpoint as published: its name is an entry's and its bytes have
    that entry's checksum (the only files sgpose will unpickle beyond tensors, `models.checkpoints`)."""
    path = Path(path)
    entries = [zc for zc in CHECKPOINTS.values() if zc.file_name == path.name]
    if not entries or not path.is_file():
        return False
    size, digest = path.stat().st_size, sha256_file(path)
    return any((zc.size is None or size == zc.size) and (digest == zc.sha256 if zc.sha256 else
                                                         digest.startswith(zc.sha256_prefix)) for zc in entries)


def checkpoint_path(checkpoint: str, root: str | Path = ".") -> Path:
    """Where a configured checkpoint lives: `checkpoints/<file>` for registry keys, else the path itself."""
    if is_registry_key(checkpoint):
        return Path(root) / CHECKPOINT_DIR / lookup(checkpoint).file_name
    return Path(checkpoint)


def check_compatible(key: str, bp: BackboneParams, num_joints: int) -> None:
    """Refuse params that cannot use this registry checkpoint (saves a confusing shape error later)."""
    zc = lookup(key)
    arch_fields = {"depth": zc.depth, "deconv_channels": 256} if zc.arch == "simple_baseline" else {"width": zc.width}
    want = {"arch": zc.arch, "input_size": zc.input_size, "input_color": zc.input_color.value, **arch_fields}
    wrong = [f"backbones.{bp.name}.{k}={getattr(bp, k)} (needs {v})" for k, v in want.items() if getattr(bp, k) != v]
    if num_joints != zc.num_joints:
        wrong.append(f"{num_joints} joints (needs {zc.num_joints})")
    if wrong:
        raise ValueError(f"backbones.{bp.name}.checkpoint {key}: params do not match the checkpoint: {', '.join(wrong)}")
