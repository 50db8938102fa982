"""sgpose.controlled.perturb: the oracle is the ground truth, each error kind lands where it says, draws are
seeded per instance (fixed for evaluation, fresh per training epoch), the flip view maps back."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from sgpose.config.controlled import ORACLE, PERTURBED, PerturbParams
from sgpose.controlled.perturb import (
    KINDS,
    UNLABELLED,
    CropContext,
    displacement,
    instance_uniforms,
    perturb,
    perturb_params,
    render_y0,
    synthesise,
)
from sgpose.core.keypoints import COCO
from sgpose.data.decoding import decode, flip_back
from sgpose.data.transforms import image_to_heatmap

SIZE, SIGMA = (32, 24), 1.0
PERM, SIGMAS = COCO.flip_permutation(), torch.tensor(COCO.sigmas, dtype=torch.float32)


def gt(batch: int = 64, seed: int = 0) -> torch.Tensor:
    """Labelled joints well inside a 32x24 map, a few unlabelled."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, 17, 2, generator=gen) * torch.tensor([16.0, 24.0]) + torch.tensor([4.0, 4.0])
    vis = torch.full((batch, 17, 1), 2.0)
    vis[::7, 3] = 0
    return torch.cat([xy, vis], dim=-1)


def ks_of(pos: torch.Tensor, target: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    d2 = ((pos - target) ** 2).sum(-1)
    return torch.exp(-d2 / (2 * area[:, None] * (2 * SIGMAS) ** 2))


def test_the_oracle_is_the_ground_truth_and_decodes_to_it_within_quantisation():
    joints = gt()
    u = instance_uniforms(np.arange(64), 0, 17)
    pos, drawn, kind = perturb(joints, torch.zeros(64, 0, 17, 3), torch.full((64,), 200.0), u, ORACLE, COCO.sigmas,
                               PERM, SIZE)
    labelled = joints[..., 2] > 0
    assert torch.equal(pos, joints[..., :2]) and torch.equal(drawn, labelled)
    assert torch.equal(kind, torch.where(labelled, KINDS.index("good"), UNLABELLED))
    coords, scores = decode(render_y0(pos, drawn, SIZE, SIGMA))
    assert (coords - joints[..., :2])[labelled].abs().max() <= 0.5  # argmax + quarter-pixel shift
    assert torch.all(scores[labelled] > 0.6) and torch.all(scores[~labelled] == 0)  # unlabelled: no peak


def test_each_error_kind_lands_where_it_says():
    joints, area = gt(400), torch.full((400,), 150.0)
    others = gt(400, seed=1)[:, None]  # one other person per crop, every joint labelled inside the map
    others[..., 2] = 2
    p = PerturbParams(jitter=0.2, inversion=0.2, swap=0.2, miss=0.15, absent=0.15, good_ks=(1.0, 1.0))
    u = instance_uniforms(np.arange(400), 3, 17)
    pos, drawn, kind = perturb(joints, others, area, u, p, COCO.sigmas, PERM, SIZE)
    ks = ks_of(pos, joints[..., :2], area)
    is_ = {k: kind == i for i, k in enumerate(KINDS)}
    assert torch.all((ks[is_["jitter"]] >= 0.5 - 1e-4) & (ks[is_["jitter"]] <= 0.85 + 1e-4))
    assert torch.all((ks[is_["miss"]] >= 0.05 - 1e-4) & (ks[is_["miss"]] <= 0.5 + 1e-4))
    assert torch.allclose(pos[is_["inversion"]], joints[:, PERM, :2][is_["inversion"]])
    assert torch.allclose(pos[is_["swap"]], others[:, 0, :, :2][is_["swap"]])
    assert not drawn[is_["absent"]].any() and drawn[is_["good"]].all()
    assert torch.equal(pos[is_["good"]], joints[..., :2][is_["good"]])
    labelled = kind != UNLABELLED
    nose = torch.zeros(17, dtype=torch.bool)
    nose[COCO.index("nose")] = True  # no counterpart: an inversion drawn there stays good
    assert not is_["inversion"][:, nose].any()
    shares = {k: float(is_[k][labelled].float().mean()) for k in KINDS}
    for k, rate in zip(KINDS, p.rates):
        expected = rate * (16 / 17 if k == "inversion" else 1)
        assert abs(shares[k] - expected) < 0.03, (k, shares[k], expected)


def test_a_swap_without_another_person_in_the_map_stays_good():
    joints = gt(50)
    others = gt(50, seed=1)[:, None]
    others[..., 0] += 100  # outside the heatmap
    p = PerturbParams(swap=1.0, good_ks=(1.0, 1.0))
    pos, _, kind = perturb(joints, others, torch.full((50,), 100.0), instance_uniforms(np.arange(50), 0, 17), p,
                           COCO.sigmas, PERM, SIZE)
    assert not (kind == KINDS.index("swap")).any() and torch.equal(pos, joints[..., :2])


def test_displacement_inverts_keypoint_similarity():
    area = torch.tensor([50.0, 400.0])
    ks = torch.tensor([[0.9] * 17, [0.3] * 17])
    d = displacement(ks, SIGMAS, area)
    assert torch.allclose(torch.exp(-d ** 2 / (2 * area[:, None] * (2 * SIGMAS) ** 2)), ks, atol=1e-6)


def test_draws_are_seeded_per_instance_fixed_for_evaluation_and_fresh_per_epoch():
    a = instance_uniforms([11, 22, 33], 5, 17)
    assert torch.equal(a[1], instance_uniforms([22], 5, 17)[0])  # independent of the batch it is in
    assert not torch.equal(a, instance_uniforms([11, 22, 33], 6, 17))  # the seed matters
    e0, e1 = instance_uniforms([11, 22], 5, 17, epoch=0), instance_uniforms([11, 22], 5, 17, epoch=1)
    assert torch.equal(e0, instance_uniforms([11, 22], 5, 17, epoch=0))
    assert not torch.equal(e0, e1) and not torch.equal(e0, a[:2])


def test_the_mirrored_view_maps_back_onto_the_plain_view():
    joints = gt(8)
    pos, drawn, _ = perturb(joints, torch.zeros(8, 0, 17, 3), torch.full((8,), 200.0),
                            instance_uniforms(np.arange(8), 0, 17), PERTURBED, COCO.sigmas, PERM, SIZE)
    plain, mirrored = render_y0(pos, drawn, SIZE, SIGMA), render_y0(pos, drawn, SIZE, SIGMA, PERM)
    back = flip_back(mirrored, PERM)
    assert torch.allclose(back[..., 1:], plain[..., 1:], atol=1e-6)  # column 0 is flip_back's duplicated edge


def test_perturb_params_validate():
    assert perturb_params("oracle", None) == ORACLE and perturb_params("perturbed", None) == PERTURBED
    with pytest.raises(ValidationError, match="sum to"):
        PerturbParams(jitter=0.6, miss=0.6)
    with pytest.raises(ValidationError, match="keypoint-similarity range"):
        PerturbParams(miss_ks=(0.0, 0.5))
    with pytest.raises(ValueError, match="not a controlled arch"):
        perturb_params("hrnet", None)


def two_person_table() -> pd.DataFrame:
    kp_a = np.zeros((17, 3))
    kp_a[:, :2], kp_a[:, 2] = np.linspace([100, 50], [140, 250], 17), 2
    kp_b = kp_a + [[60, 10, 0]]
    rows = []
    for ann, kp, cx in ((1, kp_a, 120.0), (2, kp_b, 180.0)):
        rows.append({"image_id": 7, "ann_id": ann, "width": 400, "center_x": cx, "center_y": 150.0,
                     "scale_w": 180.0, "scale_h": 240.0, "area": 5000.0, "keypoints": kp.reshape(-1).tolist()})
    rows.append({**rows[0], "image_id": 8, "ann_id": 3})  # alone in its image
    return pd.DataFrame(rows)


def test_crop_context_maps_the_other_persons_of_the_image_into_the_crop():
    rows = two_person_table()
    centers, scales = rows[["center_x", "center_y"]].to_numpy(), rows[["scale_w", "scale_h"]].to_numpy()
    others, area = CropContext(rows, PERM)(rows["ann_id"].to_numpy(), centers, scales, SIZE)
    assert others.shape == (3, 1, 17, 3)
    kp_b = np.asarray(rows.keypoints[1]).reshape(17, 3)
    expected = image_to_heatmap(kp_b[None, :, :2], centers[:1], scales[:1], SIZE)[0]
    np.testing.assert_allclose(others[0, 0, :, :2].numpy(), expected, rtol=1e-5)
    assert torch.all(others[2, :, :, 2] == 0)  # nobody else in image 8
    np.testing.assert_allclose(area.numpy(), 5000.0 * (24 / 180) * (32 / 240), rtol=1e-6)
    with pytest.raises(KeyError, match="ann_id 99"):
        CropContext(rows, PERM)([99], centers[:1], scales[:1], SIZE)


def test_synthesise_renders_fixed_draws_and_the_flip_view():
    rows = two_person_table()
    kps = np.stack([np.asarray(k).reshape(17, 3) for k in rows.keypoints])
    centers, scales = rows[["center_x", "center_y"]].to_numpy(), rows[["scale_w", "scale_h"]].to_numpy()
    joints = torch.from_numpy(np.concatenate([image_to_heatmap(kps[..., :2], centers, scales, SIZE), kps[..., 2:]], -1))
    ctx = CropContext(rows, PERM)
    args = (joints.float(), rows.ann_id.to_numpy(), centers, scales, ctx, PERTURBED, COCO.sigmas, PERM, SIZE, SIGMA)
    a, b = synthesise(*args, flip=True), synthesise(*args)
    assert set(a) == {"heatmaps", "flip/heatmaps"} and torch.equal(a["heatmaps"], b["heatmaps"])
    assert not torch.equal(synthesise(*args, epoch=0)["heatmaps"], a["heatmaps"])
    oracle = synthesise(*args[:5], ORACLE, *args[6:])["heatmaps"]
    coords, _ = decode(oracle)
    assert (coords - joints[..., :2]).abs().max() <= 0.5 and not math.isnan(float(coords.sum()))
