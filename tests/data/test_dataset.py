"""CropDataset on the real COCO fixture images: targets where keypoints map, flips, errors."""


import numpy as np
import pytest
import torch
from conftest import FIXTURE_COCO as FIXTURE
from conftest import fixture_instances
from sgpose.config.schema import AugmentParams
from sgpose.core.keypoints import COCO
from sgpose.data.dataset import CropDataset, ImageNorm
from sgpose.data.decoding import argmax_coords
from sgpose.data.transforms import image_to_heatmap

INPUT, HEATMAP = (256, 192), (64, 48)


@pytest.fixture(scope="module")
def table():
    return fixture_instances(INPUT)


def make(table, **kw):
    return CropDataset(table, FIXTURE, INPUT, HEATMAP, sigma=2.0, layout=COCO, **kw)


def test_item_shapes_and_normalisation(table):
    item = make(table)[0]
    assert item["image"].shape == (3, 256, 192) and item["image"].dtype == torch.float32
    assert item["target"].shape == (17, 64, 48) and item["target_weight"].shape == (17,)
    assert item["joints"].shape == (17, 3)
    assert item["center"].shape == (2,) and item["scale"].shape == (2,) and item["bbox"].shape == (4,)
    assert int(item["ann_id"]) == int(table.ann_id[0]) and float(item["score"]) == 1.0
    # normalised: roughly zero-mean, values within the ImageNet-normalised range of [0, 1] pixels
    lo = (0 - ImageNorm.MEAN) / ImageNorm.STD
    hi = (1 - ImageNorm.MEAN) / ImageNorm.STD
    img = item["image"].numpy()
    assert (img >= lo[:, None, None] - 1e-5).all() and (img <= hi[:, None, None] + 1e-5).all()


def test_a_bgr_checkpoint_gets_its_channels_in_bgr_order(table):
    """The official SimpleBaseline input (COLOR_RGB false): the BGR image, MEAN/STD by channel position."""
    rgb, bgr = make(table)[0]["image"], make(table, input_color="bgr")[0]["image"]
    crop = np.random.default_rng(0).integers(0, 256, (4, 3, 3), dtype=np.uint8)  # an RGB crop
    want = (crop[..., ::-1].astype(np.float32) / 255 - ImageNorm.MEAN) / ImageNorm.STD
    np.testing.assert_allclose(ImageNorm.to_tensor(crop, "bgr").numpy(), want.transpose(2, 0, 1), atol=1e-6)
    for c in range(3):  # the same pixels, channels reversed and renormalised by position
        raw = rgb[2 - c] * ImageNorm.STD[2 - c] + ImageNorm.MEAN[2 - c]
        torch.testing.assert_close(bgr[c], (raw - ImageNorm.MEAN[c]) / ImageNorm.STD[c], atol=1e-5, rtol=0)
    assert not torch.allclose(rgb, bgr)


def test_the_normalisation_table_gives_the_formulas_floats_for_every_level_and_order():
    """to_tensor looks each pixel up in ImageNorm.TABLE: bit for bit the per-pixel formula it replaces,
    (x / 255 - MEAN) / STD in float32, for each of the 256 levels in each channel, in both orders."""
    levels = np.arange(256, dtype=np.uint8)
    rng = np.random.default_rng(0)
    crop = np.stack([levels, rng.permutation(levels), levels[::-1]], axis=-1).reshape(16, 16, 3)
    for order, view in (("rgb", crop), ("bgr", crop[..., ::-1])):
        formula = ((view.astype(np.float32) / 255.0 - ImageNorm.MEAN) / ImageNorm.STD).transpose(2, 0, 1)
        got = ImageNorm.to_tensor(crop, order)
        assert got.dtype == torch.float32 and got.is_contiguous() and got.shape == (3, 16, 16)
        np.testing.assert_array_equal(got.numpy(), formula)
    strided = np.ascontiguousarray(np.concatenate([crop, crop], axis=1))[:, ::2]  # a non-contiguous view
    np.testing.assert_array_equal(ImageNorm.to_tensor(strided).numpy(), ImageNorm.to_tensor(np.ascontiguousarray(strided)).numpy())
    with pytest.raises(ValueError, match="uint8"):
        ImageNorm.to_tensor(crop.astype(np.float32))


def test_target_peaks_where_keypoints_map(table):
    ds = make(table)
    for i in range(len(ds)):
        item, row = ds[i], table.iloc[i]
        kps = np.asarray(row.keypoints).reshape(17, 3)
        expected = image_to_heatmap(kps[None, :, :2], np.array([[row.center_x, row.center_y]]),
                                    np.array([[row.scale_w, row.scale_h]]), HEATMAP)[0]
        np.testing.assert_allclose(item["joints"][:, :2].numpy(), expected, atol=1e-3)
        peaks, maxvals = argmax_coords(item["target"][None])
        on = item["target_weight"] > 0
        assert on.sum() > 0
        assert ((peaks[0][on] - torch.from_numpy(expected).float()[on]).abs() <= 0.5 + 1e-4).all()
        assert (maxvals[0][on] > 0.9).all() and (item["target"][~on] == 0).all()
        assert torch.equal(on, (torch.from_numpy(kps[:, 2]) > 0) & (maxvals[0] > 0.9))


def test_flip_mirrors_image_and_swaps_joints(table):
    plain = make(table)[0]
    flipped = make(table, augment=AugmentParams(flip_prob=1.0, scale_factor=0.0, rotation_factor=0.0))[0]
    # crops map x -> (x - c) w / s + w / 2, so the flipped crop (pixel u = original w - u) is the mirror shifted by one
    mirror = plain["image"].flip(-1)
    assert (flipped["image"][..., 1:] - mirror[..., :-1]).abs().max() < 0.05  # uint8 rounding
    perm = COCO.flip_permutation()
    w = HEATMAP[1]
    j0, j1 = plain["joints"].numpy(), flipped["joints"].numpy()
    np.testing.assert_allclose(j1[:, 2], j0[perm, 2])
    # left joints of the flip are the mirrored right joints of the original (same convention: x -> w - x)
    np.testing.assert_allclose(j1[:, 1], j0[perm, 1], atol=1e-3)
    np.testing.assert_allclose(j1[:, 0], w - j0[perm, 0], atol=1e-3)


def test_augmentation_reproducible_and_varies_by_epoch(table):
    ds = make(table, augment=AugmentParams(), seed=3)
    a, b = ds[1], ds[1]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["joints"], b["joints"])
    ds.set_epoch(1)
    assert not torch.equal(a["joints"], ds[1]["joints"])
    assert torch.equal(ds.item(1, 0)["joints"], a["joints"])  # item(index, epoch): the same draws
    assert torch.equal(make(table)[1]["joints"], make(table).item(1, 7)["joints"])  # no augment: plain


def test_missing_image_names_file(table, tmp_path):
    broken = table.copy()
    broken.loc[0, "file_name"] = "no_such_image.jpg"
    with pytest.raises(FileNotFoundError, match="no_such_image.jpg"):
        make(broken)[0]
    (tmp_path / "garbage.jpg").write_bytes(b"not a jpeg")
    bad = table.copy()
    bad.loc[0, "file_name"] = "garbage.jpg"
    ds = CropDataset(bad, tmp_path, INPUT, HEATMAP, 2.0, COCO)
    with pytest.raises(ValueError, match="garbage.jpg"):
        ds[0]


def _with_image(table, tmp_path, data: bytes | None, name: str = "x.jpg"):
    """The fixture table's first person pointing at an image file in tmp_path (absent if data is None)."""
    if data is not None:
        (tmp_path / name).write_bytes(data)
    rows = table.iloc[:1].assign(file_name=name)
    return CropDataset(rows, tmp_path, INPUT, HEATMAP, sigma=2.0, layout=COCO)


def test_bad_images_are_errors_naming_the_file(table, tmp_path):
    jpeg = (FIXTURE / table.iloc[0].file_name).read_bytes()
    with pytest.raises(FileNotFoundError, match=r"x.jpg: image not found"):
        _with_image(table, tmp_path, None)[0]
    with pytest.raises(ValueError, match=r"x.jpg: truncated JPEG"):
        _with_image(table, tmp_path, jpeg[: len(jpeg) // 2])[0]
    with pytest.raises(ValueError, match=r"x.jpg: not a JPEG \(or PNG\) image \(starts with 47494638\)"):
        _with_image(table, tmp_path, b"GIF89a" + b"\0" * 100)[0]
    other = next(f for f in sorted(FIXTURE.glob("*.jpg")) if f.name != table.iloc[0].file_name)
    assert table.iloc[0].file_name == "000000000785.jpg" and other.name == "000000040083.jpg"
    with pytest.raises(ValueError, match=r"x.jpg: image is 500x333, the annotations say 640x425"):
        _with_image(table, tmp_path, other.read_bytes())[0]
    assert _with_image(table, tmp_path, jpeg)[0]["image"].shape == (3, 256, 192)


def test_a_pass_in_row_order_decodes_each_image_once(table, monkeypatch):
    """Rows sorted by image (prepare): the crops of one image's persons reuse its decoded pixels, read-only,
    and equal what a fresh decode per person gives, with and without augmentation."""
    import sgpose.data.dataset as dataset

    decoded = []
    real = dataset.read_rgb
    monkeypatch.setattr(dataset, "read_rgb", lambda path, formats=None: (decoded.append(path), real(path, formats))[1])
    for augment in (None, AugmentParams(flip_prob=1.0)):
        decoded.clear()
        ds = make(table, augment=augment, seed=1)
        items = [ds[i] for i in range(len(table))]
        assert len(decoded) == table.file_name.nunique() == 4 < len(table)
        assert not ds.image(table.file_name.iloc[-1]).flags.writeable
        for i in (0, 3, 11):  # each alone in a fresh dataset: its own decode
            fresh = make(table, augment=augment, seed=1)[i]
            assert all(torch.equal(items[i][k], fresh[k]) for k in fresh), i
    decoded.clear()
    ds = make(table)
    for i in (0, 5, 0):  # back to an image decoded before: decoded again (only the last one is kept)
        ds[i]
    assert len(decoded) == 3
