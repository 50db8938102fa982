"""Figs. 7-8 (heatmap evolution over the refinement steps: a corrected joint, a recovered joint) and
Figs. 9-16 (baseline / refined / ground truth on the hardest val instances), drawn on the crops.

Drawn for the primary backbone, as the paper's; where its refiner corrects no joint (a backbone trained
at a smoke budget, AP ~0) they follow the ablation's backbone (`ablation.figures_on`, labelled controlled
where it is), as Figs. 4-6 do. Every figure writes its PNG and a CSV of what it shows; a figure with nothing
to draw says why in words that are true: "no runs yet" only where a file it reads is missing.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sgpose.cache.reader import open_cache  # noqa: E402
from sgpose.config.paths import Paths  # noqa: E402
from sgpose.config.selection import Params  # noqa: E402
from sgpose.core.io import read_json  # noqa: E402
from sgpose.core.keypoints import get_layout  # noqa: E402
from sgpose.data.transforms import heatmap_to_image  # noqa: E402
from sgpose.method.refine import guidance_spec  # noqa: E402
from sgpose.report import controlled  # noqa: E402
from sgpose.report import evolution as ev  # noqa: E402
from sgpose.report.charts import no_runs, save  # noqa: E402
from sgpose.report.skeleton import COLORS, draw_skeleton, load_crops, show_crop  # noqa: E402

log = logging.getLogger(__name__)
VARIANT = "ours"
NUM_HARDEST = 6
MIN_LABELLED = 5  # the grid prefers instances with this many labelled joints (whole people, as the paper's)
FIGURES = {"fig7_corrected": False, "fig8_recovered": True}  # name -> recovered?


def placeholder(path: Path, title: str, why: str, columns: list[str]) -> str:
    """A one-panel figure saying why there is nothing to draw (wrapped inside the frame); returns that message."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    no_runs(ax, textwrap.fill(why, 60))
    ax.set_title(title, fontsize=10)
    save(fig, path, pd.DataFrame(columns=columns))
    return f"{why}."


def _overlay(ax, crop, input_size, heat: np.ndarray, vmax: float, stride: float) -> None:
    h, w = heat.shape
    show_crop(ax, None if crop is None else crop.mean(-1).astype(np.uint8)[..., None].repeat(3, -1), input_size)
    half = stride / 2
    heat = np.ma.masked_less(heat, 0.05 * vmax)  # the crop stays visible where the map is ~0
    ax.imshow(heat, cmap="jet", alpha=0.6, vmin=0.0, vmax=vmax, extent=(-half, w * stride - half, h * stride - half, -half))


def fig_evolution(path: Path, title: str, d: ev.Decoded, n: int, k: int, y0: np.ndarray, steps: np.ndarray,
                  crop, input_size, threshold: float, layout) -> pd.DataFrame:
    """Panels: the crop with the three skeletons, then joint k's heatmap in Y0 and at each step t."""
    stride = input_size[1] / y0.shape[-1]
    maps = np.concatenate([y0[k][None], steps[:, k]])
    names = ["backbone Y0"] + [f"step t={t}" for t in range(len(steps))]
    vmax = max(float(maps.max()), 1e-6)
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(1.9 * (len(maps) + 1), 3.9))
    show_crop(axes[0], crop, input_size)
    for xy, present, key in ((d.gt[n], d.vis[n] > 0, "ground truth"), (d.base_xy[n], d.base_score[n] > threshold, "backbone"),
                             (d.ref_xy[n], d.ref_score[n] > threshold, "refined")):
        draw_skeleton(axes[0], xy * stride, present, layout, COLORS[key], key)
    axes[0].legend(fontsize=6, loc="lower center", bbox_to_anchor=(0.5, -0.25), ncol=3, handletextpad=0.1)
    for ax, name, heat in zip(axes[1:], names, maps):
        _overlay(ax, crop, input_size, heat, vmax, stride)
        marks = ((d.gt[n, k], "ground truth", "X"), (d.base_xy[n, k], "backbone", "o"), (d.ref_xy[n, k], "refined", "o"))
        for xy, key, marker in marks:
            ax.scatter([xy[0] * stride], [xy[1] * stride], c=COLORS[key], marker=marker, s=22, edgecolors="white", linewidths=0.5)
        ax.set_title(f"{name}\npeak {heat.max():.2f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    flat = maps.reshape(len(maps), -1)
    return save(fig, path, pd.DataFrame({
        "panel": names, "peak_value": flat.max(1), "peak_x": flat.argmax(1) % maps.shape[-1],
        "peak_y": flat.argmax(1) // maps.shape[-1], "sample": n, "joint": layout.names[k],
        "image_id": int(d.meta["image_id"][n]), "ann_id": int(d.meta["ann_id"][n]),
        "gt_x": d.gt[n, k, 0], "gt_y": d.gt[n, k, 1], "backbone_x": d.base_xy[n, k, 0], "backbone_y": d.base_xy[n, k, 1],
        "refined_x": d.ref_xy[n, k, 0], "refined_y": d.ref_xy[n, k, 1]}))


def fig_hardest(path: Path, d: ev.Decoded, idx: np.ndarray, scores: dict[str, np.ndarray], crops, input_size,
                stride: float, threshold: float, layout, label: str = "") -> pd.DataFrame:
    """Rows: the hardest instances; columns: backbone, refined, ground truth skeletons on the crop
    (`stride`: crop pixels per heatmap pixel)."""
    fig, axes = plt.subplots(len(idx), 3, figsize=(6.6, 2.9 * len(idx)), squeeze=False)
    for row, (n, crop) in enumerate(zip(idx, crops)):
        for ax, key, xy, present in ((axes[row, 0], "backbone", d.base_xy[n], d.base_score[n] > threshold),
                                     (axes[row, 1], "refined", d.ref_xy[n], d.ref_score[n] > threshold),
                                     (axes[row, 2], "ground truth", d.gt[n], d.vis[n] > 0)):
            show_crop(ax, crop, input_size)
            draw_skeleton(ax, xy * stride, present, layout, COLORS[key])
            score = "" if key == "ground truth" else f" OKS {scores[key][n]:.2f}"
            ax.set_title(f"{key}{score}", fontsize=8)
        axes[row, 0].set_ylabel(f"image {int(d.meta['image_id'][n])}", fontsize=7)
    fig.suptitle(f"Figs. 9-16 style: hardest val instances\n{label}\n(lowest backbone OKS, >= {MIN_LABELLED} labelled "
                 "joints first)", fontsize=10)
    return save(fig, path, pd.DataFrame({
        "rank": np.arange(len(idx)), "sample": idx, "image_id": d.meta["image_id"][idx].astype(int),
        "ann_id": d.meta["ann_id"][idx].astype(int), "oks_backbone": scores["backbone"][idx],
        "oks_refined": scores["refined"][idx]}))


def instance_scores(d: ev.Decoded, heatmap_size, sigmas) -> dict[str, np.ndarray]:
    """Ranking OKS of the backbone and of the refiner per instance, in image pixels."""
    to_img = lambda xy: heatmap_to_image(xy, d.meta["center"], d.meta["scale"], heatmap_size)  # noqa: E731
    bbox = np.asarray(d.meta["bbox"], dtype=np.float64)
    area, gt = bbox[:, 2] * bbox[:, 3], to_img(d.gt)
    return {"backbone": ev.oks(to_img(d.base_xy), gt, d.vis, area, sigmas),
            "refined": ev.oks(to_img(d.ref_xy), gt, d.vis, area, sigmas)}


def write_qualitative(params: Params, paths: Paths, out: Path) -> dict[str, str]:
    """Figs. 7, 8 and the hardest-instances grid under `out` for the primary backbone, or for the ablation's
    (`ablation.figures_on`) where the primary's refiner corrects no joint; returns figure -> a note for the page."""
    notes, corrected = _write_for(params, paths, out)
    on = params.file.ablation.figures_on
    if corrected or on == params.backbone.name:
        return notes
    other = Params(params.file, on)
    other_paths = Paths(other, paths.root)
    if not all(p.is_file() for p in (other_paths.cache("val"), other_paths.refiner(VARIANT))):
        return notes
    why = f"the primary backbone {params.backbone.name} corrects no joint ({_ap_note(paths)})"
    label = f"{params.dataset}/{on}" + (f" ({controlled.LABEL})" if other.backbone.controlled else "")
    notes, _ = _write_for(other, other_paths, out, label)
    return {k: f"Drawn for {label}: {why}. {v}" for k, v in notes.items()}


def _ap_note(paths: Paths) -> str:
    """`its ours AP is 0.3 on val at this budget`, from the evaluation's metrics (or that there is none yet)."""
    metrics = paths.metrics(VARIANT)
    ap = read_json(metrics).get("val", {}).get("AP") if metrics.is_file() else None
    return f"its {VARIANT} AP is {100 * ap:.1f} on val at this budget" if ap is not None else "no AP yet"


def _write_for(params: Params, paths: Paths, out: Path, label: str | None = None) -> tuple[dict[str, str], bool]:
    """The three figures of one backbone; (notes, whether its refiner corrected a joint)."""
    names = [*FIGURES, "fig9_hardest"]
    cache, ckpt = paths.cache("val"), paths.refiner(VARIANT)
    missing = [str(p) for p in (cache, ckpt) if not p.is_file()]
    if missing:
        notes = {n: placeholder(out / f"{n}.png", n, f"no runs yet: {', '.join(missing)} missing", ["sample"])
                 for n in names}
        return notes, False
    from sgpose.method.refiner import load_refiner

    unet = load_refiner(ckpt, params.refiner, get_layout(params.layout).num_joints, VARIANT)
    spec = guidance_spec(params, VARIANT, paths.start_pose)
    with open_cache(cache) as h5:
        return _draw_all(params, paths, out, h5, unet, spec, label or f"{params.dataset}/{params.backbone.name}")


def _draw_all(params: Params, paths: Paths, out: Path, h5, unet, spec, label: str) -> tuple[dict[str, str], bool]:
    layout, bp, mode, thr = get_layout(params.layout), params.backbone, params.infer.mode, params.guidance.pred_threshold
    d = ev.decode_val(h5, unet, spec, mode, params.infer.batch_size, params.infer.decode, bp.heatmap_sigma)
    table = paths.instances("val")
    instances = pd.read_parquet(table) if table.is_file() else None
    crop = lambda idx: load_crops(instances, params.data.images_dir, d.meta["ann_id"][idx], d.meta["center"][idx],  # noqa: E731
                                  d.meta["scale"][idx], bp.input_size)
    notes, corrected = {}, ev.select_joint(d, thr, False) is not None
    for name, recovered in FIGURES.items():
        pick = ev.select_joint(d, thr, recovered)
        what = "recovered (missed by the backbone, found by the refiner)" if recovered else "corrected"
        if pick is None:
            why = f"no joint was {what.split(' ')[0]} on {label}'s val split" + (
                "" if corrected else f" ({_ap_note(paths)})")
            notes[name] = placeholder(out / f"{name}.png", name, why, ["sample"])
            continue
        n, k = pick
        y0, steps = ev.steps_for(h5, n, unet, spec, mode)
        err = np.linalg.norm(np.stack([d.base_xy[n, k], d.ref_xy[n, k]]) - d.gt[n, k], axis=-1)
        title = (f"{name}: {what} joint {layout.names[k]}\n{label}, val sample {n}, image {int(d.meta['image_id'][n])};\n"
                 f"distance to ground truth {err[0]:.1f} -> {err[1]:.1f} heatmap px")
        fig_evolution(out / f"{name}.png", title, d, n, k, y0, steps, crop([n])[0], bp.input_size, thr, layout)
        notes[name] = title
    scores = instance_scores(d, tuple(bp.heatmap_size), layout.sigmas)
    idx = ev.hardest(scores["backbone"], NUM_HARDEST, (d.vis > 0).sum(1), MIN_LABELLED)
    if len(idx) == 0:
        notes["fig9_hardest"] = placeholder(out / "fig9_hardest.png", "fig9_hardest", "no labelled val instance", ["sample"])
    else:
        fig_hardest(out / "fig9_hardest.png", d, idx, scores, crop(idx), bp.input_size,
                    bp.input_size[1] / bp.heatmap_size[1], thr, layout, label)
        notes["fig9_hardest"] = f"{len(idx)} lowest-OKS val instances of {len(scores['backbone'])} on {label}"
    return notes, corrected
