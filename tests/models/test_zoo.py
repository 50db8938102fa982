"""The checkpoint registry: published names, prefixes, paths and compatibility checks."""

import pytest
from sgpose.config.schema import BackboneParams
from sgpose.models import fetch as zoo_fetch
from sgpose.models import zoo


def test_registry_holds_the_five_published_checkpoints():
    assert {k: (v.arch, v.depth or v.width) for k, v in zoo.CHECKPOINTS.items()} == {
        "mmpose:res50_coco_256x192": ("simple_baseline", 50), "mmpose:res101_coco_256x192": ("simple_baseline", 101),
        "mmpose:res152_coco_256x192": ("simple_baseline", 152), "mmpose:hrnet_w32_coco_256x192": ("hrnet", 32),
        "mmpose:hrnet_w48_coco_256x192": ("hrnet", 48)}
    r50 = zoo_fetch.download_entry("mmpose:res50_coco_256x192")
    assert r50.url == "https://download.openmmlab.com/mmpose/top_down/resnet/res50_coco_256x192-ec54d7f3_20200709.pth"
    assert (r50.path, r50.sha256_prefix, r50.sha256, r50.size) == (
        "res50_coco_256x192-ec54d7f3_20200709.pth", "ec54d7f3", "", None)
    assert zoo_fetch.download_entry("mmpose:hrnet_w48_coco_256x192").sha256_prefix == "b9e0b3ab"
    for key, zc in zoo.CHECKPOINTS.items():
        assert zc.url.startswith("https://download.openmmlab.com/mmpose/top_down/")
        assert len(zc.sha256_prefix) == 8 and int(zc.sha256_prefix, 16) >= 0, key


def test_checkpoint_path_and_unknown_keys(tmp_path):
    assert zoo.checkpoint_path("mmpose:hrnet_w32_coco_256x192", tmp_path) == (
        tmp_path / "checkpoints" / "hrnet_w32_coco_256x192-c78dce93_20200708.pth")
    assert str(zoo.checkpoint_path("weights/my.pth")) == "weights/my.pth"
    assert not zoo.is_registry_key(None) and not zoo.is_registry_key("weights/my.pth")
    with pytest.raises(ValueError, match=r"unknown checkpoint 'mmpose:res18'; known: mmpose:res50_coco_256x192"):
        zoo.checkpoint_path("mmpose:res18")


def test_check_compatible_names_the_mismatches():
    ok = BackboneParams(name="b", arch="hrnet", width=48)
    zoo.check_compatible("mmpose:hrnet_w48_coco_256x192", ok, 17)
    bad = BackboneParams(name="b", arch="simple_baseline", depth=50, deconv_channels=64,
                         input_size=(128, 96), heatmap_size=(32, 24))
    with pytest.raises(ValueError, match=r"mmpose:res50_coco_256x192: .*backbones\.b\.input_size=\(128, 96\) "
                       r"\(needs \(256, 192\)\), "
                       r"backbones\.b\.deconv_channels=64 \(needs 256\), 14 joints \(needs 17\)"):
        zoo.check_compatible("mmpose:res50_coco_256x192", bad, 14)


def test_the_colour_order_belongs_to_the_checkpoint():
    assert {zc.input_color for zc in zoo.CHECKPOINTS.values()} == {"rgb"}  # mmpose trains on RGB
    bgr = BackboneParams(name="b", arch="simple_baseline", depth=50, input_color="bgr")
    assert bgr.input_color == "bgr"  # a local official SimpleBaseline .pth: COLOR_RGB false
    with pytest.raises(ValueError, match=r"backbones\.b\.input_color=bgr \(needs rgb\)"):
        zoo.check_compatible("mmpose:res50_coco_256x192", bgr, 17)
    with pytest.raises(ValueError, match="input_color"):
        BackboneParams(name="b", input_color="grb")
