"""Figures rebuilt from results/ alone; each also writes the numbers it draws as CSV."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sgpose.core.io import atomic_path  # noqa: E402
from sgpose.core.modes import Missing  # noqa: E402
from sgpose.method.guidance import guidance_sequence  # noqa: E402

log = logging.getLogger(__name__)


def joint_sequence(start: np.ndarray, pred: np.ndarray, joint_index: int, S: int, schedule: str,
                   sigma: float, size: tuple[int, int], missing: Missing = Missing.LITERAL) -> np.ndarray:
    """H(t)[joint] for t = 0..T-1 as (T, h, w), from start (K, 2) to pred (K, 2) in heatmap pixels."""
    start_t = torch.as_tensor(np.asarray(start, dtype=np.float32))
    pred_t = torch.as_tensor(np.asarray(pred, dtype=np.float32))[None]
    H = guidance_sequence(start_t, pred_t, S, schedule, sigma, tuple(size), missing)
    return H[0, :, joint_index].numpy()


def sequence_peaks(maps: np.ndarray) -> pd.DataFrame:
    """Per step: t, the peak value and its (x, y) location (first argmax)."""
    T, h, w = maps.shape
    flat = maps.reshape(T, -1)
    idx = flat.argmax(axis=1)
    return pd.DataFrame({"t": np.arange(T), "peak_value": flat.max(axis=1).astype(float),
                         "peak_x": idx % w, "peak_y": idx // w})


def fig_guidance_sequence(start: np.ndarray, pred: np.ndarray, joint_index: int, S: int, schedule: str,
                          sigma: float, size: tuple[int, int], path: str | Path,
                          joint_name: str | None = None, missing: Missing = Missing.LITERAL) -> pd.DataFrame:
    """The paper's Fig. 2: one joint's graduated maps H(t), t = 0..T-1, in a row of panels.

    Writes the PNG at `path` and the data behind it (t, peak value, peak x, peak y) beside it as
    `<stem>.csv`; returns that table.
    """
    path = Path(path)
    maps = joint_sequence(start, pred, joint_index, S, schedule, sigma, size, missing)
    T = len(maps)
    fig, axes = plt.subplots(1, T, figsize=(1.8 * T, 2.6), squeeze=False)
    for t, ax in enumerate(axes[0]):
        ax.imshow(maps[t], cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"H({t})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    label = joint_name or f"joint {joint_index}"
    fig.suptitle(f"Graduated guidance, {label}: S={S}, T={T}, {schedule}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    peaks = sequence_peaks(maps)
    with atomic_path(path.with_suffix(".csv")) as tmp:
        peaks.to_csv(tmp, index=False)
    return peaks


FALLBACK_SHIFT = np.array([3.0, -2.0], dtype=np.float32)  # canonical pose moved a few pixels


def fig2_poses(start: np.ndarray, caches: list[Path], threshold: float, joint: int = 0, pred_decode: str = "argmax",
               sigma: float | None = None) -> tuple[np.ndarray, int, str]:
    """(pred, the joint to draw, where they came from): the predicted pose of the first val sample of the
    first readable cache of `caches` whose `joint` the backbone detects; where no sample of any cache detects
    it, the first joint (in layout order) some sample detects, so that the figure always draws a joint that
    is present; without any readable cache, the start pose shifted a few pixels (the figure still shows a
    path). P_pred is read as the guidance reads it (`pred_decode`, `sigma`)."""
    read = (threshold, pred_decode, sigma)
    readable = []
    for cache in caches:
        if not cache.exists():
            continue
        try:
            found = _cached_pose(cache, read, [joint])
        except (OSError, KeyError, ValueError) as err:
            log.warning("%s: cannot read heatmaps (%s); not used for Fig. 2", cache, err)
            continue
        if found is not None:
            pose, n, _ = found
            return pose, joint, f"val sample {n} of {cache}"
        readable.append(cache)
    for cache in readable:  # the configured joint is missed everywhere: another joint, present
        found = _cached_pose(cache, read, range(len(start)))
        if found is not None:
            pose, n, k = found
            return pose, k, f"val sample {n} of {cache} (joint {joint} is missed in every sample; joint {k} drawn)"
    return start + FALLBACK_SHIFT, joint, "canonical pose shifted by (3, -2) px (no val cache detects any joint)"


SCAN_BLOCK = 256  # samples read at a time while looking for Fig. 2's sample


def _cached_pose(cache: Path, read: tuple, joints) -> tuple[np.ndarray, int, int] | None:
    """(predicted pose, sample, joint) of the first sample whose joint (of `joints`, in that order of
    preference per block) responds above the threshold, or None when none does; `read`: (threshold,
    pred_decode, sigma) of `predicted_pose`."""
    threshold = read[0]
    from sgpose.cache.reader import open_cache
    from sgpose.data.decoding import predicted_pose

    with open_cache(cache) as f:
        maps = f["heatmaps"]
        for a in range(0, len(maps), SCAN_BLOCK):  # stop at the first hit: a full val cache is GBs
            block = np.asarray(maps[a:a + SCAN_BLOCK], dtype=np.float32)
            peak = block.reshape(*block.shape[:2], -1).max(axis=2)  # (n, K)
            for k in joints:
                hits = np.flatnonzero(peak[:, k] > threshold)
                if len(hits):
                    n = a + int(hits[0])
                    heatmaps = torch.from_numpy(np.asarray(maps[n:n + 1], dtype=np.float32))
                    return predicted_pose(heatmaps, *read)[0].numpy(), n, int(k)
    return None
