"""Selection of the joints and instances that Figs. 7-16 show; per-step refinement; OKS ranking."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import as_trained
from sgpose.config.selection import load_params
from sgpose.method.refine import guidance_spec, refine
from sgpose.method.refiner import build_unet
from sgpose.models.features import feature_info
from sgpose.report import evolution as ev
from sgpose.report.charts import fig5_steps, training_curves

REPO = Path(__file__).resolve().parents[2]


def decoded(gt, vis, base, base_score, ref, ref_score) -> ev.Decoded:
    a = lambda x: np.asarray(x, dtype=float)  # noqa: E731
    return ev.Decoded(a(gt), a(vis), a(base), a(base_score), a(ref), a(ref_score), {})


def test_select_corrected_and_recovered():
    gt = [[[5, 5], [10, 10], [3, 3]], [[8, 8], [1, 1], [4, 4]]]
    vis = [[1, 1, 1], [1, 1, 0]]
    base = [[[5, 5], [20, 10], [3, 3]], [[8, 14], [0, 0], [30, 30]]]
    base_score = [[0.9, 0.9, 0.1], [0.9, 0.1, 0.9]]
    ref = [[[5, 6], [11, 10], [3, 4]], [[8, 9], [1, 2], [4, 4]]]
    ref_score = [[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]]
    d = decoded(gt, vis, base, base_score, ref, ref_score)
    # corrected: (0, 1) improves 10 -> 1 (gain 9); (1, 0) 6 -> 1 (gain 5); (1, 2) is unlabelled (gain 26)
    assert ev.select_joint(d, 0.2, recovered=False) == (0, 1)
    # recovered: missed by the backbone (0, 2) at 1 px and (1, 1) at 1 px from gt -> first of the closest
    assert ev.select_joint(d, 0.2, recovered=True) == (0, 2)
    d.ref_score[0, 2] = 0.1  # the refiner misses it too: no longer recovered
    assert ev.select_joint(d, 0.2, recovered=True) == (1, 1)
    d.ref_xy[:] = d.base_xy + 50  # nothing improves
    assert ev.select_joint(d, 0.2, recovered=False) is None


def test_oks_and_hardest():
    gt = np.zeros((3, 2, 2))
    pred = np.array([[[0, 0], [0, 0]], [[3, 4], [0, 0]], [[30, 40], [30, 40]]], dtype=float)
    vis = np.array([[1, 1], [1, 0], [0, 0]])
    area = np.array([100.0, 100.0, 100.0])
    sig = [0.1, 0.1]
    scores = ev.oks(pred, gt, vis, area, sig)
    # instance 1: one labelled joint at distance 5: exp(-25 / (2 * 100 * 0.04))
    assert scores[0] == pytest.approx(1.0) and scores[1] == pytest.approx(np.exp(-25 / 8)) and np.isnan(scores[2])
    assert ev.hardest(scores, 5).tolist() == [1, 0]
    assert ev.hardest(scores, 5, labelled=np.array([2, 1, 0]), min_labelled=2).tolist() == [0, 1]


def test_refine_steps_matches_refine():
    torch.manual_seed(0)
    params = load_params(REPO / "params.yaml", ["refiner.base_channels=8", "refiner.time_dim=16"])
    h, w = params.backbone.heatmap_size
    feats = [torch.randn(2, 8, h >> i, w >> i) for i in range(3)]
    y0 = torch.rand(2, 17, h, w)
    unet = as_trained(build_unet(params.refiner, 17, feature_info([8, 8, 8]))).eval()
    spec = guidance_spec(params)
    for mode in ("static", "recursive", "recursive_from_pred"):
        steps = ev.refine_steps(unet, spec, feats, y0, mode)
        assert steps.shape == (2, params.guidance.T, 17, h, w)
        torch.testing.assert_close(steps[:, -1], refine(unet, spec, feats, y0, mode))
    assert not torch.allclose(steps[:, 0], steps[:, -1])


def test_charts_without_and_with_runs(tmp_path):
    data = fig5_steps({}, tmp_path / "f5.png", "x")
    assert data["AP (this run)"].isna().all() and data["paper AP (quoted)"].dropna().tolist() == [73.7, 73.7, 73.3]
    assert mpimg.imread(tmp_path / "f5.png")[..., :3].std() > 0.03
    logs = {"backbone": pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0]})}
    curves = training_curves(logs, tmp_path / "c.png")
    assert curves.values.tolist() == [["backbone", 1, 2.0], ["backbone", 2, 1.0]]
    assert pd.read_csv(tmp_path / "c.csv").shape == (2, 3)
