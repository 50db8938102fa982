"""Skeleton overlays for the qualitative figures and `sgpose predict`: backbone blue, refined green,
ground truth red (the paper's Figs. 7-16 colours), limbs from `sgpose.core.keypoints`; and the person
crops the overlays are drawn on."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from sgpose.core.keypoints import KeypointLayout
from sgpose.data.dataset import read_rgb
from sgpose.data.transforms import warp_crop

log = logging.getLogger(__name__)
COLORS = {"backbone": "#1f4fe0", "refined": "#10a030", "ground truth": "#e02020"}


def draw_skeleton(ax: Axes, joints: np.ndarray, present: np.ndarray, layout: KeypointLayout, color: str,
                  label: str | None = None, size: float = 12.0) -> None:
    """Limbs (both ends present) and joints of one pose (K, 2) in the axis' pixel coordinates."""
    joints = np.asarray(joints, dtype=float)
    present = np.asarray(present, dtype=bool)
    limbs = np.asarray(layout.skeleton)
    keep = present[limbs[:, 0]] & present[limbs[:, 1]]
    ax.add_collection(LineCollection(joints[limbs[keep]], colors=color, linewidths=1.6, alpha=0.9))
    ax.scatter(joints[present, 0], joints[present, 1], s=size, c=color, label=label, zorder=3,
               edgecolors="white", linewidths=0.4)


def show_crop(ax: Axes, crop: np.ndarray | None, size: tuple[int, int]) -> None:
    """The crop image (h, w, 3), or a grey placeholder of that size when the image is unavailable."""
    h, w = size
    ax.imshow(crop if crop is not None else np.full((h, w, 3), 200, dtype=np.uint8))
    if crop is None:
        ax.text(w / 2, h / 2, "image not available", ha="center", va="center", fontsize=7, color="#555")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def load_crops(instances: pd.DataFrame | None, images_dir: str | Path, ann_ids: np.ndarray,
               centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int]) -> list[np.ndarray | None]:
    """The input crops (h, w, 3 uint8) of a few cached samples, found by annotation id in the instance
    table; None for any whose row or image is unavailable (the figure then says so)."""
    files = {} if instances is None else dict(zip(instances["ann_id"].astype(int), instances["file_name"]))
    crops: list[np.ndarray | None] = []
    for ann, center, scale in zip(np.asarray(ann_ids).astype(int), centers, scales):
        name = files.get(int(ann))
        try:
            image = read_rgb(Path(images_dir) / name) if name else None
        except (FileNotFoundError, ValueError) as err:
            log.warning("qualitative figures: %s", err)
            image = None
        crops.append(None if image is None else warp_crop(image, center, scale, 0.0, tuple(input_size)))
    return crops
