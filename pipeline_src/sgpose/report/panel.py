"""`sgpose show`'s picture of one instance: the crop with ground truth, the backbone's and the refined
pose; Y0 and the final heatmap of one joint (or all joints summed); the guidance H(t) the refiner is given
and its output at every step t (docs/method.md's notation); and each joint's pixel error, backbone beside
refined. Readable at a glance: joint names, labelled axes, a legend, one colour scale per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sgpose.core.io import atomic_path  # noqa: E402
from sgpose.core.keypoints import KeypointLayout  # noqa: E402
from sgpose.report.skeleton import COLORS, draw_skeleton, show_crop  # noqa: E402


@dataclass
class InstanceView:
    """What the panel draws of one instance (poses in crop pixels, maps at the heatmap's size)."""

    title: str
    crop: np.ndarray | None
    input_size: tuple[int, int]
    gt: np.ndarray  # (K, 2)
    vis: np.ndarray  # (K,)
    base: np.ndarray  # (K, 2)
    refined: np.ndarray  # (K, 2)
    present_base: np.ndarray  # (K,) bool: above the guidance's threshold
    present_refined: np.ndarray
    y0: np.ndarray  # (K, h, w)
    guidance: np.ndarray  # (T, K, h, w), or (T, 0, h, w) for a variant without guidance
    outputs: np.ndarray  # (T, K, h, w)
    errors: dict[str, np.ndarray]  # label -> (K,) pixel error (NaN: unlabelled)
    oks: dict[str, float]  # variant -> OKS


def _map(maps: np.ndarray, joint: int | None) -> np.ndarray:
    """One joint's map (h, w), or every joint summed."""
    if maps.shape[0] == 0:
        return np.zeros(maps.shape[1:])
    return maps[joint] if joint is not None else maps.sum(0)


def _heat(ax, crop, size, heat: np.ndarray, vmax: float, title: str) -> None:
    h, w = heat.shape
    stride = size[1] / w
    show_crop(ax, None if crop is None else crop.mean(-1).astype(np.uint8)[..., None].repeat(3, -1), size)
    half = stride / 2
    ax.imshow(np.ma.masked_less(heat, 0.05 * vmax), cmap="jet", alpha=0.6, vmin=0.0, vmax=max(vmax, 1e-6),
              extent=(-half, w * stride - half, h * stride - half, -half))
    ax.set_title(f"{title}\npeak {heat.max():.2f}", fontsize=8)


def draw(path: Path, v: InstanceView, layout: KeypointLayout, joint: int | None) -> Path:
    """The panel as a PNG at `path`."""
    T = len(v.outputs)
    cols = max(T, 5)
    fig = plt.figure(figsize=(2.1 * cols + 3.6, 8.6))
    grid = fig.add_gridspec(3, cols + 2, width_ratios=[1.0] * cols + [0.55, 1.6])
    which = layout.names[joint] if joint is not None else "all joints summed"
    top = [fig.add_subplot(grid[0, i]) for i in range(3)]
    show_crop(top[0], v.crop, v.input_size)
    for xy, present, key in ((v.gt, v.vis > 0, "ground truth"), (v.base, v.present_base, "backbone"),
                             (v.refined, v.present_refined, "refined")):
        draw_skeleton(top[0], xy, present, layout, COLORS[key], key)
    top[0].set_title("crop and poses", fontsize=8)
    final = v.outputs[-1]
    vmax = max(float(_map(v.y0, joint).max()), float(_map(final, joint).max()))
    _heat(top[1], v.crop, v.input_size, _map(v.y0, joint), vmax, "backbone Y0")
    _heat(top[2], v.crop, v.input_size, _map(final, joint), vmax, "refined (last step)")
    for row, maps, name in ((1, v.guidance, "guidance H"), (2, v.outputs, "output")):
        shown = [_map(maps[t], joint) for t in range(T)]
        vmax = max([float(m.max()) for m in shown] + [1e-6])
        for t, heat in enumerate(shown):
            _heat(fig.add_subplot(grid[row, t]), v.crop, v.input_size, heat, vmax, f"{name}, step t={t}")
    info = fig.add_subplot(grid[0, 3:cols])
    info.axis("off")
    handles = [plt.Line2D([], [], color=COLORS[k], marker="o", lw=1.6, label=k)
               for k in ("ground truth", "backbone", "refined")]
    info.legend(handles=handles, loc="upper left", fontsize=8, frameon=False, title="skeletons", title_fontsize=8)
    rows = "\n".join(f"{k:>14s}  {s:.3f}" for k, s in v.oks.items())
    info.text(0.48, 1.0, "OKS per variant\n" + rows, va="top", ha="left", fontsize=7.5, family="monospace",
              transform=info.transAxes)
    bars = fig.add_subplot(grid[:, -1])
    y = np.arange(layout.num_joints)
    for i, (label, err) in enumerate(v.errors.items()):
        color = COLORS["backbone"] if i == 0 else COLORS["refined"]
        bars.barh(y + (i - 0.5) * 0.4, np.nan_to_num(err, nan=0.0), height=0.4, color=color, label=label)
    bars.set_yticks(y, [n + ("" if v.vis[k] > 0 else " (unlabelled)") for k, n in enumerate(layout.names)], fontsize=7)
    bars.invert_yaxis()
    bars.set_xlabel("distance to ground truth (image px)", fontsize=8)
    bars.set_title("per-joint error", fontsize=9)
    bars.legend(fontsize=7, loc="lower right")
    bars.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{v.title}\nheatmaps: {which}; rows: the guidance H(t) given at each step, the refiner's output at "
                 "each step (docs/method.md)", fontsize=9.5, x=0.02, ha="left")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.88, bottom=0.06, hspace=0.42, wspace=0.12)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
