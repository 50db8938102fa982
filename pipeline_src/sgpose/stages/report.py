"""`sgpose report`: Table 1 (this run beside the paper), Fig. 2 and a static index.html.

Reads only results/: every `<variant>/metrics.json` under the backbone's directory and, for
Fig. 2's predicted pose, the val cache when it exists.
"""

from __future__ import annotations

import argparse
import html
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sgpose.config import Params, Paths
from sgpose.io import atomic_path, read_json
from sgpose.keypoints import get_layout
from sgpose.report import paper
from sgpose.report.figures import fig_guidance_sequence
from sgpose.report.tables import table1, write_table

log = logging.getLogger(__name__)
FALLBACK_SHIFT = np.array([3.0, -2.0], dtype=np.float32)  # canonical pose moved a few pixels


def collect_metrics(paths: Paths) -> dict[str, dict]:
    """variant -> metrics for every `results/<ds>/<bb>/<variant>/metrics.json` that exists."""
    found = sorted(paths.backbone_dir.glob("*/metrics.json"))
    return {p.parent.name: read_json(p) for p in found}


def fig2_poses(params: Params, paths: Paths) -> tuple[np.ndarray, np.ndarray, str]:
    """(start, pred, where pred came from): canonical start; the first cached val sample's
    predicted pose if the val cache exists, else the canonical pose shifted a few pixels."""
    size = tuple(params.backbone.heatmap_size)
    start = get_layout(params.layout).canonical_pose(size)
    cache = paths.cache("val")
    if cache.exists():
        try:
            return start, _cached_pose(cache, params.guidance.pred_threshold), str(cache)
        except (OSError, KeyError) as err:
            log.warning("%s: cannot read heatmaps (%s); Fig. 2 uses a shifted canonical pose", cache, err)
    return start, start + FALLBACK_SHIFT, "canonical pose shifted by (3, -2) px (no val cache)"


def _cached_pose(cache: Path, threshold: float) -> np.ndarray:
    import h5py
    import torch

    from sgpose.data.heatmaps import predicted_pose

    with h5py.File(cache, "r") as f:
        heatmaps = np.asarray(f["heatmaps"][:1], dtype=np.float32)
    return predicted_pose(torch.from_numpy(heatmaps), threshold)[0].numpy()


def write_index(path: Path, df: pd.DataFrame, params: Params, fig_source: str) -> None:
    """A static page: the table, Fig. 2 (relative link) and the parameters used."""
    table_html = df.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:g}", border=0)
    params_yaml = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sgpose report: {html.escape(params.dataset)}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}} td,th{{padding:.2em .6em;text-align:right}}</style>
</head><body>
<h1>sgpose report: {html.escape(params.dataset)} / {html.escape(params.backbone.name)}</h1>
<h2>Table 1: ablation</h2>
<p>AP columns are this run's (OKS AP, %, split {html.escape(params.evaluate.split)}); the last column is
{html.escape(paper.SOURCE)} for {html.escape(paper.TABLE1_BACKBONE)}, not computed here.
Data: <a href="table1.csv">table1.csv</a>, <a href="table1.md">table1.md</a>.</p>
{table_html}
<h2>Fig. 2: graduated guidance of one joint</h2>
<p>Joint {html.escape(params.report.fig2_joint)}; predicted pose from {html.escape(fig_source)}.
Data: <a href="fig2_guidance.csv">fig2_guidance.csv</a>.</p>
<img src="fig2_guidance.png" alt="Fig. 2 guidance sequence">
<h2>Parameters</h2>
<pre>{html.escape(params_yaml)}</pre>
</body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(page)


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    """Write table1.{csv,md}, fig2_guidance.{png,csv} and index.html under results/report."""
    out = paths.report
    metrics = collect_metrics(paths)
    if not metrics:
        log.warning("no metrics.json under %s: Table 1 is empty", paths.backbone_dir)
    df = table1(metrics)
    caption = (f"Table 1 ({params.dataset}, {params.backbone.name}): this run's AP in %; "
               f"'paper AP (quoted)' is {paper.SOURCE} ({paper.TABLE1_BACKBONE}).")
    write_table(df, out / "table1.csv", out / "table1.md", caption)
    try:
        joint = get_layout(params.layout).index(params.report.fig2_joint)
    except KeyError as err:
        raise ValueError(f"report.fig2_joint: {err.args[0]}") from None
    start, pred, source = fig2_poses(params, paths)
    g = params.guidance
    fig_guidance_sequence(start, pred, joint, g.S, g.schedule, params.backbone.heatmap_sigma,
                          tuple(params.backbone.heatmap_size), out / "fig2_guidance.png",
                          joint_name=params.report.fig2_joint, missing=g.missing)
    write_index(out / "index.html", df, params, source)
    log.info("report: %d variants -> %s", len(df), out)
