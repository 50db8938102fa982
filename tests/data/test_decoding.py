"""The decoders' behaviour, pinned from the official HRNet/SimpleBaseline facts (lib/core/inference.py:
get_max_preds masks coordinates where the max is <= 0 and keeps that max; get_final_preds shifts a quarter
pixel only where 1 < px < W-1 and 1 < py < H-1) and DARK's accuracy on known sub-pixel Gaussian peaks."""

import pytest
import torch
from sgpose.core.modes import DecodeMode
from sgpose.data.decoding import argmax_coords, decode, flip_back, kernel_radius, predicted_pose
from sgpose.data.targets import encode_targets
from sgpose.method.guidance import render_gaussians

H, W, SIGMA = 64, 48, 2.0  # heatmap of a 256x192 input, docs/method.md §2's sigma


def gaussians(centres: torch.Tensor, size=(H, W), sigma=SIGMA) -> torch.Tensor:
    """(N, 1, h, w) unit Gaussians at centres (N, 2) (inside the map: what the targets are)."""
    maps, weight = encode_targets(centres[:, None].float(), torch.ones(len(centres), 1), size, sigma)
    assert weight.all()
    return maps


def errors(maps: torch.Tensor, centres: torch.Tensor, mode: str, sigma=SIGMA) -> torch.Tensor:
    coords, _ = decode(maps, mode, sigma)
    return (coords[:, 0] - centres).norm(dim=-1)


def test_standard_roundtrip_moves_a_quarter_pixel_toward_the_higher_neighbour():
    target = gaussians(torch.tensor([[10.3, 20.0], [5.0, 5.7]]))
    coords, maxvals = decode(target.reshape(1, 2, H, W))
    assert coords[0].tolist() == [[10.25, 20.0], [5.0, 5.75]]
    assert maxvals[0, 0] > 0.9


def test_the_quarter_shift_needs_both_axes_more_than_one_pixel_from_the_sides():
    h, w = 8, 6  # a peak at every pixel, both neighbours higher on the +x and +y sides
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack([xs.flatten(), ys.flatten()], dim=-1).float()
    maps = render_gaussians(centres + 0.3, (h, w), SIGMA, torch.ones(len(centres), dtype=torch.bool))
    coords, _ = decode(maps[None])
    moved = (coords[0] - centres).abs()
    interior = (centres[:, 0] > 1) & (centres[:, 0] < w - 1) & (centres[:, 1] > 1) & (centres[:, 1] < h - 1)
    # the argmax stays at the pixel (0.3 px off); shifted by exactly 1/4 on both axes, or on neither
    assert torch.equal(moved[interior], torch.full_like(moved[interior], 0.25))
    assert torch.equal(moved[~interior], torch.zeros_like(moved[~interior]))
    assert int(interior.sum()) == (w - 3) * (h - 3) == 15  # x in 2..w-2, y in 2..h-2
    # an x on the edge stops the y shift too (sgpose tested each axis on its own before)
    at = int(((centres[:, 0] == 1) & (centres[:, 1] == 4)).nonzero())
    assert coords[0, at].tolist() == [1.0, 4.0]


@pytest.mark.parametrize("mode", list(DecodeMode))
def test_a_map_whose_max_is_not_positive_decodes_to_the_origin_and_keeps_its_max(mode):
    maps = torch.full((1, 3, H, W), -0.5)
    maps[0, 0, 30, 20] = -0.1  # every value negative: the argmax is not used
    maps[0, 1] = 0.0  # flat zero
    maps[0, 2] = gaussians(torch.tensor([[20.4, 30.2]]))[0, 0]  # a real peak beside them
    coords, maxvals = decode(maps, mode, SIGMA)
    assert coords[0, :2].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert maxvals[0].tolist()[:2] == pytest.approx([-0.1, 0.0])  # the official score is the max itself
    assert coords[0, 2].tolist() != [0.0, 0.0]


def test_dark_recovers_subpixel_gaussian_centres_far_better_than_the_quarter_rule():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(2000, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])  # the whole map, borders included
    maps = gaussians(centres)
    std, dark = errors(maps, centres, "standard"), errors(maps, centres, "dark")
    assert 0.17 < float(std.mean()) < 0.23  # the quarter rule: ~0.2 px off on average
    assert float(dark.mean()) < 0.005  # 40x better
    assert float((dark < 0.01).float().mean()) > 0.98
    inner = ((centres >= kernel_radius(SIGMA)) & (centres <= torch.tensor([W - 1.0, H - 1.0]) - kernel_radius(SIGMA))).all(-1)
    assert float(dark[inner].max()) < 2e-3  # a Gaussian convolved with a Gaussian: its log is quadratic


@pytest.mark.parametrize("sigma, size", [(1.5, (64, 48)), (3.0, (96, 72))])
def test_dark_uses_the_targets_sigma(sigma, size):
    g = torch.Generator().manual_seed(1)
    centres = 8 + torch.rand(300, 2, generator=g) * torch.tensor([size[1] - 17.0, size[0] - 17.0])
    maps = gaussians(centres, size, sigma)
    assert float(errors(maps, centres, "dark", sigma).max()) < 1e-2 < float(errors(maps, centres, "standard").mean())


def test_dark_near_the_border_is_not_pulled_inward():
    centres = torch.tensor([[0.0, 30.3], [0.4, 10.0], [1.3, 62.6], [47.0, 0.2], [46.7, 63.0], [0.3, 0.4], [2.6, 3.3],
                            [0.0, 63.0], [47.0, 0.0]])  # sides and corners
    dark = errors(gaussians(centres), centres, "dark")
    std = errors(gaussians(centres), centres, "standard")
    assert float(dark.max()) < 0.01 and bool((dark <= std + 1e-6).all())


def test_dark_beats_the_quarter_rule_on_noisy_offset_maps():
    g = torch.Generator().manual_seed(2)
    centres = 3 + torch.rand(500, 2, generator=g) * torch.tensor([W - 7.0, H - 7.0])
    maps = 0.8 * gaussians(centres) - 0.05 + 0.05 * torch.rand(500, 1, H, W, generator=g)  # network-like
    std, dark = errors(maps, centres, "standard"), errors(maps, centres, "dark")
    assert float(dark.mean()) < 0.6 * float(std.mean())


def test_dark_keeps_the_standard_decode_where_no_maximum_is_defined():
    maps = torch.full((1, 3, H, W), 0.3)  # a flat map: no information
    maps[0, 1, 10:20, 5:25] = 0.7  # a plateau: the modulated map peaks at its centre
    maps[0, 2] = -maps[0, 2]  # nothing positive
    dark, std = decode(maps, "dark", SIGMA), decode(maps, "standard")
    torch.testing.assert_close(dark[1], std[1])
    assert dark[0][0, 0].tolist() == std[0][0, 0].tolist() == [0.0, 0.0]
    assert dark[0][0, 2].tolist() == std[0][0, 2].tolist() == [0.0, 0.0]
    x, y = dark[0][0, 1].tolist()
    assert 5 <= x <= 24 and 10 <= y <= 19 and std[0][0, 1].tolist() == [5.25, 10.25]  # on the plateau


def test_dark_is_batched_per_map():
    g = torch.Generator().manual_seed(3)
    centres = 6 + torch.rand(6, 2, generator=g) * 30
    maps = gaussians(centres).reshape(2, 3, H, W)
    coords, _ = decode(maps, "dark", SIGMA)
    one = torch.stack([decode(maps[i:i + 1, j:j + 1], "dark", SIGMA)[0][0, 0] for i in range(2) for j in range(3)])
    torch.testing.assert_close(coords.reshape(6, 2), one)


def test_dark_needs_sigma_and_modes_are_named():
    maps = gaussians(torch.tensor([[10.0, 10.0]]))
    with pytest.raises(ValueError, match="sigma"):
        decode(maps, "dark")
    with pytest.raises(ValueError, match="standard, dark"):
        decode(maps, "darker", SIGMA)


def test_predicted_pose_threshold_marks_missing():
    hm = torch.zeros(1, 2, 8, 6)
    hm[0, 0, 3, 4] = 0.9
    hm[0, 1, 5, 2] = 0.1
    coords, _ = argmax_coords(hm)
    assert coords[0, 0].tolist() == [4, 3]
    assert predicted_pose(hm, 0.2)[0].tolist() == [[4, 3], [0, 0]]


def test_flip_back_undoes_a_flip_and_swaps_joints():
    hm = torch.zeros(1, 2, 4, 6)
    hm[0, 0, 1, 1] = 1.0  # joint 0 at x=1
    flipped = hm.flip(-1)[:, [1, 0]]  # what the network would see for the mirrored crop, joints swapped
    back = flip_back(flipped, [1, 0], shift=False)
    assert torch.equal(back, hm)
    shifted = flip_back(flipped, [1, 0])
    assert shifted[0, 0, 1, 2] == 1.0  # moved one pixel right
