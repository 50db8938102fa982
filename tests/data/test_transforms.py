import numpy as np
import pytest
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
