"""`sgpose infer`: flip-test averaging of the two views for the baseline and for refined variants,
on a synthetic cache written with sgpose.cache's writer (docs/architecture.md "Flip test")."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import as_trained
from sgpose.cache.reader import features, load_cache
from sgpose.config.selection import load_params
from sgpose.data.heatmaps import flip_back
from sgpose.inference import final_heatmaps
from sgpose.keypoints import COCO
from sgpose.refine import guidance_spec, refine
from sgpose.refiner import build_unet
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
    torch.testing.assert_close(final_heatmaps(params, data), want)
    off = load_params(REPO / "params.yaml", [*SMALL, "infer.flip_test=false"])
    torch.testing.assert_close(final_heatmaps(off, data), y0)


def test_refined_flip_test_refines_each_view_with_its_own_features(tmp_path):
    torch.manual_seed(0)
    data = _data(tmp_path)
    params = load_params(REPO / "params.yaml", SMALL)
    unet, spec = as_trained(build_unet(params, [8, 8, 8])).eval(), guidance_spec(params)
    y0, yf = data["heatmaps"], data["flip/heatmaps"]
    own = refine(unet, spec, features(data), y0)
    mirrored = refine(unet, spec, features(data, prefix="flip/"), yf)
    out = final_heatmaps(params, data, unet, spec)
    torch.testing.assert_close(out, 0.5 * (own + flip_back(mirrored, COCO.flip_permutation())))
    data["flip/feat/1"] = data["flip/feat/1"] + 1  # the mirrored view's features matter
    assert not torch.allclose(out, final_heatmaps(params, data, unet, spec))


def test_a_cache_without_flip_views_gives_the_single_view(tmp_path):
    data = _data(tmp_path, flip=False)
    params = load_params(REPO / "params.yaml", SMALL)
    torch.testing.assert_close(final_heatmaps(params, data), data["heatmaps"])
