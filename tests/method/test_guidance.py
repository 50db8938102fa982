"""docs/method.md §2, pinned: fusion weights, schedules, missing joints, the S = 4 check values."""

import math

import pytest
import torch
from sgpose.method.guidance import alphas, fusion_weights, guidance_sequence, interpolate, mean_pose, render_gaussians


def test_fusion_weights_s4_match_spec_check_values():
    w = fusion_weights(4)
    assert w.shape == (6, 4)
    expected = torch.tensor([
        [1, 0, 0, 0],          # H(0) = G0
        [2 / 3, 1 / 3, 0, 0],  # H(1) = max(2/3 G0, 1/3 G1) (the paper's "t=2" label slip)
        [1 / 3, 2 / 3, 1 / 3, 0],
        [0, 1 / 3, 2 / 3, 1 / 3],
        [0, 0, 1 / 3, 2 / 3],  # H(4) = max(1/3 G2, 2/3 G3)
        [0, 0, 0, 1],          # H(5) = G3
    ], dtype=torch.float64)
    torch.testing.assert_close(w, expected)


@pytest.mark.parametrize("S", [1, 2, 3, 4, 5, 8])
def test_fusion_weights_formula(S):
    w = fusion_weights(S)
    T = S + 2
    assert w.shape == (T, S)
    assert w[0, 0] == 1 and w[-1, -1] == 1
    if S == 1:  # division by zero in the formula: every step sees the prediction
        assert torch.all(w == 1)
        return
    for t in range(1, T - 1):
        for s in range(S):
            d = abs(s - (t - 1))
            want = (S - 2 - d) / (S - 1) if d <= S - 2 else 0.0
            assert w[t, s].item() == pytest.approx(want)


def test_s2_interior_maps_are_zero_and_s3_interior_is_half():
    start = torch.tensor([[10.0, 20.0]])
    pred = torch.tensor([[[30.0, 40.0]]])
    H2 = guidance_sequence(start, pred, S=2)
    assert H2.shape == (1, 4, 1, 64, 48)
    assert torch.all(H2[:, 1:3] == 0)
    H3 = guidance_sequence(start, pred, S=3, schedule="linear")
    G = render_gaussians(torch.tensor([[[10.0, 20.0]], [[20.0, 30.0]], [[30.0, 40.0]]]), (64, 48), 2.0)
    for t in (1, 2, 3):
        torch.testing.assert_close(H3[0, t], 0.5 * G[t - 1])
    torch.testing.assert_close(H3[0, 0], G[0])
    torch.testing.assert_close(H3[0, 4], G[2])


def test_schedules():
    torch.testing.assert_close(alphas(5, "linear"), torch.tensor([0, .25, .5, .75, 1], dtype=torch.float64))
    a = alphas(5, "cosine")
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for s, u in enumerate([0, .25, .5, .75, 1]):
        assert a[s].item() == pytest.approx(1 - f(u) / f(0), abs=1e-12)
    assert a[0] == 0 and a[-1] == 1 and torch.all(a.diff() > 0)
    assert alphas(1).tolist() == [1.0]


def test_gaussian_peak_and_missing_joint_is_all_zero():
    maps = render_gaussians(torch.tensor([[5.0, 7.0], [0.0, 0.0]]), (64, 48), 2.0)
    assert maps[0, 7, 5] == 1.0 and maps[0].argmax().item() == 7 * 48 + 5
    assert maps[0, 7, 7].item() == pytest.approx(math.exp(-4 / 8))
    assert torch.all(maps[1] == 0)


def test_missing_joint_readings():
    start = torch.tensor([[10.0, 20.0], [12.0, 22.0]])
    pred = torch.tensor([[[30.0, 40.0], [0.0, 0.0]]])
    a = alphas(3, "linear")
    poses, present = interpolate(start, pred, a, "literal")
    torch.testing.assert_close(poses[0, 1, 1], torch.tensor([6.0, 11.0]))  # drifts toward the corner
    assert present[0, :, 1].tolist() == [True, True, False]
    poses, present = interpolate(start, pred, a, "keep_start")
    torch.testing.assert_close(poses[0, :, 1], start[1].expand(3, 2))
    assert present[0, :, 1].tolist() == [True, True, False]
    _, present = interpolate(start, pred, a, "blank")
    assert present[0, :, 1].tolist() == [False, False, False]
    assert present[0, :, 0].all()


def test_guidance_sequence_batched_start_shapes():
    start = torch.rand(17, 2) * 40 + 1
    pred = torch.rand(3, 17, 2) * 40 + 1
    H = guidance_sequence(start, pred, S=4, size=(64, 48))
    Hb = guidance_sequence(start.expand(3, 17, 2), pred, S=4, size=(64, 48))
    assert H.shape == (3, 6, 17, 64, 48)
    torch.testing.assert_close(H, Hb)
    # the last map is the prediction's own Gaussian, the first the start pose's
    torch.testing.assert_close(H[:, -1], render_gaussians(pred, (64, 48), 2.0))
    torch.testing.assert_close(H[:, 0], render_gaussians(start.expand(3, 17, 2), (64, 48), 2.0))


@pytest.mark.parametrize("S, cosine, linear", [
    (2, [0.0, 1.0], [0.0, 1.0]),
    (3, [0.0, 0.506156, 1.0], [0.0, 0.5, 1.0]),
    (4, [0.0, 0.257116, 0.753552, 1.0], [0.0, 1 / 3, 2 / 3, 1.0]),
    (5, [0.0, 0.152988, 0.506156, 0.855728, 1.0], [0.0, 0.25, 0.5, 0.75, 1.0]),
    (8, [0.0, 0.054107, 0.195141, 0.395602, 0.616403, 0.814493, 0.951247, 1.0], [s / 7 for s in range(8)]),
])
def test_alphas_pinned_for_several_S(S, cosine, linear):
    torch.testing.assert_close(alphas(S, "cosine"), torch.tensor(cosine, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(alphas(S, "linear"), torch.tensor(linear, dtype=torch.float64), atol=1e-12, rtol=0)


def test_missing_joint_gives_zero_maps_in_the_sequence():
    start = torch.tensor([[10.0, 20.0], [12.0, 22.0]])
    pred = torch.tensor([[[30.0, 40.0], [0.0, 0.0]]])
    for missing in ("literal", "keep_start"):
        H = guidance_sequence(start, pred, S=3, missing=missing)
        assert torch.all(H[0, -1, 1] == 0) and H[0, -1, 0].max() == 1  # the prediction's map: blank
        assert H[0, 0, 1].max() == 1  # the start map still has the joint
    H = guidance_sequence(start, pred, S=3, missing="blank")
    assert torch.all(H[0, :, 1] == 0) and torch.all(H[0, :, 0].amax(dim=(-1, -2)) > 0)


def test_mean_pose_uses_weighted_samples_and_falls_back():
    joints = torch.tensor([[[2.0, 4.0, 2], [9.0, 9.0, 0]], [[4.0, 8.0, 2], [1.0, 1.0, 1]]])
    weight = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    fallback = torch.tensor([[0.5, 0.5], [7.0, 3.0]])
    pose, count = mean_pose(joints, weight, fallback)
    torch.testing.assert_close(pose, torch.tensor([[3.0, 6.0], [7.0, 3.0]]))
    assert count.tolist() == [2, 0]
