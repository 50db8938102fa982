"""Algorithm 1 (training draw) and the static inference reading of docs/method.md §5."""

from pathlib import Path

import pytest
import torch
from conftest import as_trained
from sgpose.config.selection import load_params
from sgpose.method import guidance
from sgpose.method.refine import draw_steps, guidance_spec, refine, refine_static, training_loss
from sgpose.method.refine import gt_pose as refine_gt_pose
from sgpose.method.refiner import build_unet
from sgpose.models.features import feature_info

ROOT = Path(__file__).resolve().parents[2]


def _setup():
    params = load_params(ROOT / "params.yaml", ["refiner.base_channels=8", "refiner.time_dim=16"])
    h, w = params.backbone.heatmap_size
    feats = [torch.randn(3, 8, h, w), torch.randn(3, 8, h // 2, w // 2), torch.randn(3, 8, h // 4, w // 4)]
    y0 = torch.rand(3, 17, h, w)
    return params, build_unet(params.refiner, 17, feature_info([8, 8, 8])), guidance_spec(params), feats, y0


def test_training_loss_learns_on_a_fixed_batch():
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _setup()
    target, weight = torch.rand_like(y0), torch.ones(3, 17)
    opt = torch.optim.Adam(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = training_loss(unet, spec, feats, y0, target, weight, draw_steps(spec, 3, torch.Generator().manual_seed(1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_static_inference_equals_the_last_step_of_the_full_sequence():
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _setup()
    unet.eval()
    out = refine_static(unet, spec, feats, y0)
    from sgpose.data.decoding import predicted_pose
    pred = predicted_pose(y0, params.guidance.pred_threshold)
    H = guidance.guidance_sequence(spec.start, pred, params.guidance.S, params.guidance.schedule, spec.sigma,
                                   spec.size, params.guidance.missing)
    T = params.guidance.T
    with torch.no_grad():
        full = [unet(feats, H[:, t], torch.full((3,), t)) for t in range(T)]
    torch.testing.assert_close(out, full[-1])


class Recorder(torch.nn.Module):
    """The real UNet, recording the maps and steps of every call."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, feats, maps, t):
        out = self.unet(feats, maps, t)
        self.calls.append((maps.clone(), t.clone(), out.clone()))
        return out


def _variant_setup(variant: str, *overrides: str):
    params = load_params(ROOT / "params.yaml", ["refiner.base_channels=8", "refiner.time_dim=16", *overrides])
    _, _, _, feats, y0 = _setup()
    unet = as_trained(build_unet(params.refiner, 17, feature_info([8, 8, 8]), variant)).eval()
    return params, unet, guidance_spec(params, variant), feats, y0


def _pred(params, y0):
    from sgpose.data.decoding import predicted_pose
    return predicted_pose(y0, params.guidance.pred_threshold)


def test_each_variant_builds_its_own_guidance():
    torch.manual_seed(0)
    t = torch.tensor([0, 2, 4])
    params, _, spec, _, y0 = _variant_setup("ours")
    pred = _pred(params, y0)
    G = spec.maps(pred)  # (3, S, K, h, w)
    torch.testing.assert_close(spec.at(pred, y0, t), guidance.fuse_at(G, guidance.fusion_weights(3), t))
    *_, a1, _, _ = _variant_setup("A1")
    assert a1.at(pred, y0, t).shape == (3, 0, *y0.shape[-2:]) and a1.T == 1 and a1.in_channels == 0
    *_, a2, _, _ = _variant_setup("A2")
    torch.testing.assert_close(a2.at(pred, y0, t[:1].expand(3) * 0), G[:, -1])  # rendered P_pred
    *_, a2raw, _, _ = _variant_setup("A2", "guidance.a2_map=raw")
    assert a2raw.at(pred, y0, t) is y0
    *_, a3, _, _ = _variant_setup("A3")
    torch.testing.assert_close(a3.at(pred, y0, t), torch.stack([G[0, 0], G[1, 1], G[2, 2]]))  # G^clamp(t-1)
    *_, a3p, _, _ = _variant_setup("A3", "guidance.a3_steps=per_map")
    assert a3p.T == 3
    *_, prev, _, _ = _variant_setup("ours", "refiner.prev_heatmap=true")
    assert prev.in_channels == 34 and prev.inputs(pred, y0, t).shape[1] == 34


def test_a4_trains_on_the_ground_truth_path_and_ours_on_the_prediction():
    torch.manual_seed(0)
    joints = torch.cat([torch.rand(3, 17, 2) * 20 + 2, torch.ones(3, 17, 1)], dim=-1)
    joints[0, 5, 2] = 0  # unlabelled: missing on the ground-truth path
    for variant, want in (("A4", refine_gt_pose(joints)), ("ours", None)):
        params, unet, spec, feats, y0 = _variant_setup(variant)
        rec = Recorder(unet)
        training_loss(rec, spec, feats, y0, torch.rand_like(y0), torch.ones(3, 17),
                      draw_steps(spec, 3, torch.Generator().manual_seed(1)), joints=joints)
        maps, t, _ = rec.calls[0]
        pose = want if want is not None else _pred(params, y0)
        torch.testing.assert_close(maps, spec.at(pose, y0, t))
    with pytest.raises(ValueError, match="ground-truth paths"):
        a4 = _variant_setup("A4")
        training_loss(a4[1], a4[2], a4[3], a4[4], torch.rand_like(a4[4]), torch.ones(3, 17), draw_steps(a4[2], 3))


def test_prev_heatmap_training_teacher_forces_y0():
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _variant_setup("ours", "refiner.prev_heatmap=true")
    rec = Recorder(unet)
    training_loss(rec, spec, feats, y0, torch.rand_like(y0), torch.ones(3, 17), draw_steps(spec, 3))
    torch.testing.assert_close(rec.calls[0][0][:, 17:], y0)


@pytest.mark.parametrize("mode", ["recursive", "recursive_from_pred"])
def test_recursive_calls_the_unet_T_times_and_feeds_decoded_poses_forward(mode):
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _variant_setup("ours")
    rec = Recorder(unet)
    out = refine(rec, spec, feats, y0, mode)
    assert len(rec.calls) == spec.T == 5
    assert [c[1].tolist() for c in rec.calls] == [[t] * 3 for t in range(5)]
    start = spec.start.expand(3, 17, 2)
    p0 = start if mode == "recursive" else _pred(params, y0)
    torch.testing.assert_close(rec.calls[0][0], spec.at(p0, y0, rec.calls[0][1]))
    for step in range(1, 5):  # H(t) is built on the path P_start -> P(t) = decode(previous output)
        pose = _pred(params, rec.calls[step - 1][2])
        torch.testing.assert_close(rec.calls[step][0], spec.at(pose, y0, rec.calls[step][1]))
    torch.testing.assert_close(out, rec.calls[-1][2])


def test_recursive_from_pred_starts_from_the_prediction():
    """For A2 (H(0) is the map of P(0)) the two recursive readings differ by their start; for the
    graduated sequence H(0) = G^0 is the start pose whatever P(0) is, so they coincide."""
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _variant_setup("A2")
    rec = Recorder(unet)
    refine(rec, spec, feats, y0, "recursive_from_pred")
    torch.testing.assert_close(rec.calls[0][0], spec.maps(_pred(params, y0))[:, -1])
    from_start = refine(unet, spec, feats, y0, "recursive")
    assert not torch.allclose(from_start, rec.calls[0][2])
    params, unet, spec, feats, y0 = _variant_setup("ours")
    torch.testing.assert_close(refine(unet, spec, feats, y0, "recursive"),
                               refine(unet, spec, feats, y0, "recursive_from_pred"))


@pytest.mark.parametrize("prev", [False, True], ids=["guidance", "guidance+prev_heatmap"])
@pytest.mark.parametrize("mode", ["static", "recursive", "recursive_from_pred"])
def test_every_reading_feeds_the_unet_what_training_fed(mode, prev):
    """Each inference call of each reading gets exactly the input training builds for a sample whose path
    ends at the pose that call uses (P_pred, or the reading's P(t)) at the call's step: the guidance map H(t)
    and, with the previous-heatmap input, the backbone's Y0 (never a previous UNet output)."""
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _variant_setup("ours", f"refiner.prev_heatmap={str(prev).lower()}")
    rec = Recorder(unet)
    refine(rec, spec, feats, y0, mode)
    poses = {"static": [_pred(params, y0)], "recursive_from_pred": [_pred(params, y0)],
             "recursive": [spec.start.expand(3, 17, 2)]}[mode]
    poses += [_pred(params, c[2]) for c in rec.calls[:-1]]  # recursive: P(t+1) = decode(step t's output)
    assert len(rec.calls) == (1 if mode == "static" else spec.T)
    for (maps, t, _), pose in zip(rec.calls, poses):  # inference: the training builder at the call's pose
        torch.testing.assert_close(maps, spec.inputs(pose, y0, t))
        if prev:
            torch.testing.assert_close(maps[:, 17:], y0)
    t0 = rec.calls[0][1]
    trained = Recorder(unet)  # training, at the first call's steps: the same builder at P_pred
    training_loss(trained, spec, feats, y0, torch.rand_like(y0), torch.ones(3, 17), t0)
    torch.testing.assert_close(trained.calls[0][0], spec.inputs(_pred(params, y0), y0, t0))
    if mode != "recursive":  # the path starts at P_pred: the very input training built
        torch.testing.assert_close(rec.calls[0][0], trained.calls[0][0])


def test_static_reading_with_the_previous_heatmap_is_one_call_at_the_last_step():
    """Training teacher-forces Y0 as the previous heatmap, so the static reading's steps do not feed each
    other: its output is the single call at t = T-1 with (H(T-1), Y0), as trained."""
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _variant_setup("ours", "refiner.prev_heatmap=true")
    rec = Recorder(unet)
    out = refine(rec, spec, feats, y0, "static")
    assert len(rec.calls) == 1 and rec.calls[0][1].tolist() == [spec.T - 1] * 3
    torch.testing.assert_close(rec.calls[0][0], torch.cat([spec.at(_pred(params, y0), y0, rec.calls[0][1]), y0], 1))
    torch.testing.assert_close(out, rec.calls[0][2])


def test_every_variant_trains_and_refines_in_every_mode():
    torch.manual_seed(0)
    joints = torch.cat([torch.rand(3, 17, 2) * 20, torch.ones(3, 17, 1)], dim=-1)
    for variant in ("A1", "A2", "A3", "A4", "ours", "ours_S5", "ours_linear"):
        params, unet, spec, feats, y0 = _variant_setup(variant)
        loss = training_loss(unet, spec, feats, y0, torch.rand_like(y0), torch.ones(3, 17), draw_steps(spec, 3),
                             joints=joints)
        assert loss.item() > 0
        loss.backward()
        for mode in ("static", "recursive", "recursive_from_pred"):
            assert refine(unet, spec, feats, y0, mode).shape == y0.shape
    with pytest.raises(ValueError, match="unknown inference mode"):
        refine(unet, spec, feats, y0, "greedy")
