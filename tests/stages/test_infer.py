"""`sgpose infer`: flip-test averaging of the two views for the baseline and for refined variants,
on a synthetic cache written with sgpose.cache's writer (docs/architecture.md "Flip test")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import as_trained
from sgpose.cache.reader import features, load_cache
from sgpose.config.selection import load_params
from sgpose.core.keypoints import COCO
from sgpose.data.decoding import flip_back
from sgpose.inference.cached import Refiner, Setting, final_heatmaps
from sgpose.method.refine import guidance_spec, refine
from sgpose.method.refiner import build_unet
from sgpose.models.features import feature_info
from synthetic_cache import write_synthetic_cache

REPO = Path(__file__).resolve().parents[2]
SMALL = ["refiner.base_channels=8", "refiner.time_dim=16", "infer.batch_size=3"]


def _data(tmp_path, flip=True) -> dict[str, torch.Tensor]:
    """A batch as infer reads it from the cache: tensors keyed by dataset name."""
    write_synthetic_cache(tmp_path / "val.h5", n=5, flip=flip)
    return {k: torch.from_numpy(v).float() for k, v in load_cache(tmp_path / "val.h5").items()}


def test_baseline_flip_test_averages_the_mirrored_view(tmp_path):
    data = _data(tmp_path)
    y0, yf = data["heatmaps"], data["flip/heatmaps"]
    params = load_params(REPO / "params.yaml", SMALL)
    want = 0.5 * (y0 + flip_back(yf, COCO.flip_permutation()))
    torch.testing.assert_close(final_heatmaps(data, None, Setting.of(params)), want)
    off = load_params(REPO / "params.yaml", [*SMALL, "infer.flip_test=false"])
    torch.testing.assert_close(final_heatmaps(data, None, Setting.of(off)), y0)


def test_refined_flip_test_refines_each_view_with_its_own_features(tmp_path):
    torch.manual_seed(0)
    data = _data(tmp_path)
    params = load_params(REPO / "params.yaml", SMALL)
    unet, spec = as_trained(build_unet(params.refiner, 17, feature_info([8, 8, 8]))).eval(), guidance_spec(params)
    y0, yf = data["heatmaps"], data["flip/heatmaps"]
    own = refine(unet, spec, features(data), y0)
    mirrored = refine(unet, spec, features(data, prefix="flip/"), yf)
    out = final_heatmaps(data, Refiner(unet, spec), Setting.of(params))
    torch.testing.assert_close(out, 0.5 * (own + flip_back(mirrored, COCO.flip_permutation())))
    data["flip/feat/1"] = data["flip/feat/1"] + 1  # the mirrored view's features matter
    assert not torch.allclose(out, final_heatmaps(data, Refiner(unet, spec), Setting.of(params)))


def test_a_cache_without_flip_views_gives_the_single_view(tmp_path):
    data = _data(tmp_path, flip=False)
    params = load_params(REPO / "params.yaml", SMALL)
    torch.testing.assert_close(final_heatmaps(data, None, Setting.of(params)), data["heatmaps"])


def test_baseline_dark_decodes_the_backbone_heatmaps_with_dark_whatever_infer_decode_says(tmp_path):
    """Y0 with known sub-pixel Gaussian peaks: baseline (infer.decode standard) lands within the quarter
    rule, baseline_dark (and baseline with infer.decode dark) on the peaks."""
    from argparse import Namespace

    import numpy as np
    from sgpose.cache.writer import write_cache
    from sgpose.config import Paths
    from sgpose.core.io import read_json
    from sgpose.data.targets import render_gaussians
    from sgpose.data.transforms import heatmap_to_image
    from sgpose.stages import Run, infer

    over = [*SMALL, f"evals.{load_params(REPO / 'params.yaml').backbone.name}=[val]", "infer.flip_test=false"]
    params = load_params(REPO / "params.yaml", over)
    paths = Paths(params, root=tmp_path)
    write_synthetic_cache(tmp_path / "synthetic.h5", n=4)
    arrays = load_cache(tmp_path / "synthetic.h5")
    n, k, h, w = arrays["heatmaps"].shape
    assert (h, w) == tuple(params.backbone.heatmap_size)
    peaks = 4 + np.random.default_rng(1).random((n, k, 2)) * [w - 9, h - 9]  # heatmap px
    arrays["heatmaps"] = render_gaussians(torch.from_numpy(peaks), (h, w), params.backbone.heatmap_sigma).numpy()
    write_cache(paths.cache("val"), arrays, {"layout": "coco"}, dtype="float32")
    truth = heatmap_to_image(peaks, arrays["meta/center"], arrays["meta/scale"], (h, w))

    def error(variant: str, p=params) -> float:
        infer.main(Run(Namespace(variant=variant), (p, Paths(p, root=tmp_path))))
        got = np.array([r["keypoints"] for r in read_json(paths.keypoints(variant, "val"))]).reshape(n, k, 3)
        px = arrays["meta/scale"][:, None] / [w, h]  # image px per heatmap px, (N, 1, 2)
        return float((np.abs(got[..., :2] - truth) / px).max())  # heatmap px

    assert 0.1 < error("baseline") <= 0.25 + 1e-4  # the quarter rule: up to 1/4 px per axis
    assert error("baseline_dark") < 0.01
    dark = load_params(REPO / "params.yaml", [*over, "infer.decode=dark"])
    assert error("baseline", dark) < 0.01



def test_the_stage_keeps_the_form_parity_py_calls(tmp_path):
    """`sgpose.stages.infer.final_heatmaps(params, batch)` with a bare namespace (infer.flip_test, layout):
    ../shared/reference/official_parity/parity.py checks the flip test end to end through it."""
    from types import SimpleNamespace

    from sgpose.stages import infer

    data = _data(tmp_path)
    params = SimpleNamespace(infer=SimpleNamespace(flip_test=True), layout="coco")
    want = 0.5 * (data["heatmaps"] + flip_back(data["flip/heatmaps"], COCO.flip_permutation()))
    torch.testing.assert_close(infer.final_heatmaps(params, data), want)


def _ceiling_predictions(tmp_path, variant: str, *more: str) -> tuple[list[dict], dict, object]:
    """`sgpose infer --variant copy|oracle` on a synthetic val cache (a single view): its results, the cache's
    arrays and the params."""
    from argparse import Namespace

    from sgpose.config import Paths
    from sgpose.core.io import read_json
    from sgpose.stages import Run, infer

    params = load_params(REPO / "params.yaml", [*SMALL, f"evals.{load_params(REPO / 'params.yaml').backbone.name}=[val]",
                                                 "infer.flip_test=false", *more])
    paths = Paths(params, root=tmp_path)
    arrays = write_synthetic_cache(paths.cache("val"), n=4)
    infer.main(Run(Namespace(variant=variant), (params, paths)))
    return read_json(paths.keypoints(variant, "val")), arrays, params


@pytest.mark.parametrize("pred_decode", ["argmax", "subpixel", "dark"])
def test_the_copy_score_is_the_last_guidance_map_decoded(tmp_path, pred_decode):
    """copy = H(T-1) of `ours`' guidance (the Gaussian of P_pred at the targets' sigma), decoded as infer
    decodes: computed here from the formulas, without the stages' code path."""
    import numpy as np
    from sgpose.data.decoding import decode, predicted_pose
    from sgpose.data.targets import render_gaussians
    from sgpose.data.transforms import heatmap_to_image

    got, arrays, params = _ceiling_predictions(tmp_path, "copy", f"guidance.pred_decode={pred_decode}")
    y0 = torch.from_numpy(arrays["heatmaps"]).float()
    sigma = params.backbone.heatmap_sigma
    pred = predicted_pose(y0, params.guidance.pred_threshold, pred_decode, sigma)
    last = render_gaussians(pred, tuple(y0.shape[-2:]), sigma)  # G^{S-1}: alpha = 1, the prediction itself
    coords, scores = decode(last, "standard")
    want = heatmap_to_image(coords.numpy(), arrays["meta/center"], arrays["meta/scale"], tuple(y0.shape[-2:]))
    kp = np.array([r["keypoints"] for r in got]).reshape(4, 17, 3)
    np.testing.assert_allclose(kp[..., :2], want, atol=1e-3)
    np.testing.assert_allclose(kp[..., 2], scores.numpy(), atol=1e-6)


def test_the_oracle_decodes_the_targets(tmp_path):
    import numpy as np
    from sgpose.data.decoding import decode
    from sgpose.data.transforms import heatmap_to_image

    got, arrays, _ = _ceiling_predictions(tmp_path, "oracle")
    target = torch.from_numpy(arrays["target"]).float()
    coords, _ = decode(target, "standard")
    want = heatmap_to_image(coords.numpy(), arrays["meta/center"], arrays["meta/scale"], tuple(target.shape[-2:]))
    np.testing.assert_allclose(np.array([r["keypoints"] for r in got]).reshape(4, 17, 3)[..., :2], want, atol=1e-3)
