"""The variants of docs/method.md §6 as declarative descriptions, the sweep variants of Figs. 5-6, and the step
weights each guidance kind implies."""

import argparse
from pathlib import Path

import pytest
import torch
from sgpose.config.selection import load_params
from sgpose.core.variants import (
    ALL,
    REFINED,
    UNREFINED,
    VARIANTS,
    check_name,
    decode_mode,
    get_variant,
    refined_argument,
    unrefined_of,
)
from sgpose.method.guidance import fusion_weights, step_weights
from sgpose.method.refine import guidance_spec

ROOT = Path(__file__).resolve().parents[2]


def test_variant_names_and_descriptions():
    assert ALL == ("baseline", "baseline_dark", "copy", "oracle", "A1", "A2", "A3", "A4", "ours")
    assert REFINED == tuple(VARIANTS)
    a1, a2, a4, ours = (get_variant(n) for n in ("A1", "A2", "A4", "ours"))
    assert (a1.guidance, a1.step_embedding) == ("none", False)
    assert (a2.guidance, a2.step_embedding) == ("prediction", False)
    assert get_variant("A3").guidance == "interpolated"
    assert (a4.guidance, a4.train_path) == ("graduated", "gt")
    assert (ours.guidance, ours.train_path, ours.step_embedding) == ("graduated", "pred", True)
    with pytest.raises(ValueError, match="unknown refined variant 'baseline'"):
        get_variant("baseline")


def test_sweep_variants_are_ours_with_one_guidance_value_changed():
    s5, linear = get_variant("ours_S5"), get_variant("ours_linear")
    assert (s5.S, s5.schedule, s5.guidance, s5.train_path) == (5, None, "graduated", "pred")
    assert (linear.S, linear.schedule) == (None, "linear")
    params = load_params(ROOT / "params.yaml", ["guidance.S=3", "guidance.schedule=cosine"])
    assert guidance_spec(params, "ours_S5").T == 7 and guidance_spec(params, "ours_S5").params.S == 5
    assert guidance_spec(params, "ours_linear").params.schedule == "linear"
    assert guidance_spec(params, "ours").params == params.guidance
    assert check_name("baseline") == "baseline" and check_name("ours_S12") == "ours_S12"
    for bad in ("ours_S0", "ours_quadratic", "A5", "ours_s5"):
        with pytest.raises(ValueError, match="unknown refined variant"):
            check_name(bad)


def test_step_weights_for_each_kind():
    assert step_weights("none", 3).tolist() == [[0, 0, 0]]
    assert step_weights("prediction", 4).tolist() == [[0, 0, 0, 1]]
    # A3, clamp: T = S + 2, H(t) = G^clamp(t-1): G0, G0, G1, G2, G2
    assert step_weights("interpolated", 3, "clamp").tolist() == [
        [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
    torch.testing.assert_close(step_weights("interpolated", 4, "per_map"), torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(step_weights("graduated", 5), fusion_weights(5))
    with pytest.raises(ValueError, match="a3_steps"):
        step_weights("interpolated", 3, "nearest")


def test_unrefined_variants_decode_the_backbone_heatmaps_baseline_dark_always_with_dark():
    assert tuple(UNREFINED) == ("baseline", "baseline_dark", "copy", "oracle")
    assert [u.readout for u in UNREFINED.values()] == ["backbone", "backbone", "guidance", "target"]
    assert unrefined_of(controlled=False) == ["baseline", "baseline_dark", "copy"]
    assert unrefined_of(controlled=True) == [*unrefined_of(controlled=False), "oracle"]
    assert decode_mode("baseline", "standard") == "standard" and decode_mode("baseline", "dark") == "dark"
    assert decode_mode("baseline_dark", "standard") == decode_mode("baseline_dark", "dark") == "dark"
    assert decode_mode("ours", "dark") == "dark" and decode_mode("A1", "standard") == "standard"
    assert check_name("baseline_dark") == "baseline_dark"
    for name in UNREFINED:
        with pytest.raises(argparse.ArgumentTypeError, match=f"{name} has no refiner"):
            refined_argument(name)
