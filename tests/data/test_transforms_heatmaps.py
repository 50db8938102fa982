import numpy as np
import pytest
import torch
from sgpose.data.heatmaps import argmax_coords, decode, encode_targets, predicted_pose
from sgpose.data.transforms import (
    affine_matrix,
    apply_affine,
    box_to_center_scale,
    flip_joints,
    heatmap_to_image,
    image_to_heatmap,
    warp_crop,
)


def test_box_to_center_scale_fixes_aspect_and_pads():
    c, s = box_to_center_scale(np.array([[10, 20, 30, 80], [0, 0, 100, 10]]), aspect=0.75, padding=1.25)
    np.testing.assert_allclose(c, [[25, 60], [50, 5]])
    np.testing.assert_allclose(s, [[75, 100], [125, 125 / 0.75]])


@pytest.mark.parametrize("rot", [0.0, 30.0])
def test_affine_roundtrip_and_heatmap_mapping(rot):
    c, s = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    pts = np.array([[90.0, 70.0], [130.0, 50.0]])
    m, mi = affine_matrix(c, s, rot, (64, 48)), affine_matrix(c, s, rot, (64, 48), inverse=True)
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), mi), pts, atol=1e-9)
    np.testing.assert_allclose(apply_affine(c, m), [24, 32])
    if rot == 0:
        hm = image_to_heatmap(pts[None], c[None], s[None], (64, 48))
        np.testing.assert_allclose(hm[0], apply_affine(pts, m))
        np.testing.assert_allclose(heatmap_to_image(hm, c[None], s[None], (64, 48))[0], pts)


def test_warp_crop_moves_a_pixel_where_the_matrix_says():
    img = np.zeros((200, 300, 3), np.uint8)
    img[90:111, 140:161] = 255  # a bright square centred at (150, 100)
    crop = warp_crop(img, np.array([150.0, 100.0]), np.array([120.0, 160.0]), 0, (64, 48))
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - 24) < 1 and abs(ys.mean() - 32) < 1


def test_flip_joints_mirrors_and_swaps():
    j = np.array([[[1.0, 2.0, 1], [5.0, 6.0, 2]]])
    out = flip_joints(j, width=10, flip_perm=np.array([1, 0]))
    np.testing.assert_allclose(out, [[[4.0, 6.0, 2], [8.0, 2.0, 1]]])


def test_encode_decode_roundtrip_subpixel():
    joints = torch.tensor([[[10.3, 20.0], [5.0, 5.7], [30.0, 60.0]]])
    vis = torch.tensor([[1, 1, 0]])
    target, weight = encode_targets(joints, vis, (64, 48), 2.0)
    assert weight.tolist() == [[1, 1, 0]] and torch.all(target[0, 2] == 0)
    coords, maxvals = decode(target)
    assert coords[0, 0].tolist() == [10.25, 20.0]
    assert coords[0, 1].tolist() == [5.0, 5.75]
    assert maxvals[0, 0] > 0.9


def test_predicted_pose_threshold_marks_missing():
    hm = torch.zeros(1, 2, 8, 6)
    hm[0, 0, 3, 4] = 0.9
    hm[0, 1, 5, 2] = 0.1
    coords, _ = argmax_coords(hm)
    assert coords[0, 0].tolist() == [4, 3]
    assert predicted_pose(hm, 0.2)[0].tolist() == [[4, 3], [0, 0]]


def test_flip_back_undoes_a_flip_and_swaps_joints():
    from sgpose.data.heatmaps import flip_back
    hm = torch.zeros(1, 2, 4, 6)
    hm[0, 0, 1, 1] = 1.0  # joint 0 at x=1
    flipped = hm.flip(-1)[:, [1, 0]]  # what the network would see for the mirrored crop, joints swapped
    back = flip_back(flipped, [1, 0], shift=False)
    assert torch.equal(back, hm)
    shifted = flip_back(flipped, [1, 0])
    assert shifted[0, 0, 1, 2] == 1.0  # moved one pixel right
