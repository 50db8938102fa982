"""Strict checkpoint loading for every backbone and naming, against the official layout fixtures.

The fixtures (names and shapes of the official state dicts, ../shared/fixtures/checkpoint_layouts)
come in three namings: the official repository's, mmpose 0.x's and mmpose 1.x's.
"""

import functools
import json
from pathlib import Path

import pytest
import torch
from sgpose.config.schema import BackboneParams
from sgpose.models.backbones import build_backbone
from sgpose.models.checkpoints import CheckpointError, detect_naming, load_backbone, load_strict, to_official_names
from sgpose.models.hrnet import PoseHighResolutionNet
from sgpose.models.simple_baseline import PoseResNet

LAYOUTS = Path("/work/shared/fixtures/checkpoint_layouts")
MODELS = ("pose_resnet_50", "pose_resnet_101", "pose_resnet_152", "pose_hrnet_w32", "pose_hrnet_w48")
NAMINGS = {"hrnet_repo": "official", "mmpose_0x": "mmpose_0x", "mmpose_1x": "mmpose_1x"}
FIXTURES = [(prefix, model) for prefix in NAMINGS for model in MODELS]


@functools.cache
def model_for(name: str) -> torch.nn.Module:
    """One instance per architecture, shared by the parametrized tests (building R152 takes a while)."""
    kind, _, size = name.rpartition("_")
    return PoseResNet(int(size), 17) if kind == "pose_resnet" else PoseHighResolutionNet(int(size[1:]), 17)


def fixture(prefix: str, model: str) -> dict:
    path = LAYOUTS / f"{prefix}_{model}_256x192.json"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return json.loads(path.read_text())


def numbered_state_dict(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """A state dict with the fixture's names and shapes; tensor i is filled with i so every move is traceable."""
    return {k: torch.full(shape, i, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
            for i, (k, shape) in enumerate(layout.items())}


@pytest.mark.parametrize("prefix, model", FIXTURES)
def test_model_layout_equals_fixture_after_renaming(prefix, model):
    fx = fixture(prefix, model)
    renamed, naming = to_official_names(dict.fromkeys(fx["keys"], torch.empty(0)))
    assert naming == NAMINGS[prefix]
    ours = {k: list(v.shape) for k, v in model_for(model).state_dict().items()}
    official = dict(zip(renamed, fx["keys"].values()))
    assert list(official) == list(ours) and official == ours
    assert sum(p.numel() for p in model_for(model).parameters()) == fx["num_parameters"]


@pytest.mark.parametrize("prefix, model", FIXTURES)
def test_state_dict_loads_strictly_through_each_naming(prefix, model):
    fx = fixture(prefix, model)
    sd = numbered_state_dict(fx["keys"])
    net = model_for(model)
    assert load_strict(net, sd, "x.pth") == NAMINGS[prefix]
    loaded = net.state_dict()
    for i, key in enumerate(loaded):  # the i-th official key received the i-th fixture tensor
        assert loaded[key].flatten()[:1].tolist() in ([i], [float(i)]), key
    assert load_strict(net, {"module." + k: v for k, v in sd.items()}, "x.pth") == NAMINGS[prefix]


@pytest.mark.parametrize("prefix, model", FIXTURES)
def test_corrupted_state_dict_names_the_keys(prefix, model):
    sd = numbered_state_dict(fixture(prefix, model)["keys"])
    keys = list(sd)
    dropped, reshaped = keys[3], keys[-2]
    bad = {k: v for k, v in sd.items() if k != dropped}
    bad[keys[0].rsplit(".", 1)[0] + ".extra"] = torch.zeros(2)
    bad[reshaped] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as err:
        load_strict(model_for(model), bad, "corrupt.pth")
    msg = str(err.value)
    assert msg.startswith(f"corrupt.pth ({NAMINGS[prefix]} naming): missing keys: ")
    assert f"missing keys: {next(iter(to_official_names({dropped: None})[0]))} (1)" in msg
    assert "unexpected keys: " in msg and ".extra (1)" in msg
    assert "wrong shapes: " in msg and "(3, 3) != " in msg


def test_error_lists_first_few_keys_and_the_count():
    net = model_for("pose_resnet_50")
    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointError, match=r"missing keys: layer4\.0\.conv1\.weight, .*, \.\.\. \(\d+ in all\)"):
        load_strict(net, sd, "short.pth")


def test_detect_naming():
    assert detect_naming(["conv1.weight", "final_layer.bias"]) == "official"
    assert detect_naming(["backbone.conv1.weight", "keypoint_head.final_layer.bias"]) == "mmpose_0x"
    assert detect_naming(["backbone.conv1.weight", "head.final_layer.bias"]) == "mmpose_1x"


@pytest.mark.parametrize("arch", ["simple_baseline", "hrnet"])
def test_load_backbone_from_files_with_wrappers(tmp_path, arch):
    bp = BackboneParams(name="t", arch=arch, depth=18, deconv_channels=16, width=32, input_size=(64, 64),
                        heatmap_size=(16, 16))
    model = build_backbone(bp, 17)
    head = ("deconv", "final")
    variants = {
        "official_dp.pth": {"module." + k: v for k, v in model.state_dict().items()},
        "mmpose0.pth": {"meta": {"epoch": 210}, "state_dict": {
            ("keypoint_head." if k.startswith(head) else "backbone.") + k: v for k, v in model.state_dict().items()}},
        "mmpose1.pth": {"state_dict": {
            ("head." if k.startswith(head) else "backbone.") + k: v for k, v in model.state_dict().items()}},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        loaded = load_backbone(tmp_path / name, bp, 17)
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
        got = loaded.state_dict()
        assert all(torch.equal(v, got[k]) for k, v in model.state_dict().items()), name


def test_load_backbone_wrong_arch_names_file_and_model(tmp_path):
    hr = BackboneParams(name="t", arch="hrnet", width=32, input_size=(64, 64), heatmap_size=(16, 16))
    path = tmp_path / "hrnet_w32.pth"
    torch.save(build_backbone(hr, 17).state_dict(), path)
    r50 = BackboneParams(name="t", arch="simple_baseline", depth=50, input_size=(64, 64), heatmap_size=(16, 16))
    with pytest.raises(CheckpointError, match=r"hrnet_w32\.pth \(official naming\): missing keys: .*unexpected keys: "
                       r"conv2\.weight.*expected a ResNet-50 SimpleBaseline"):
        load_backbone(path, r50, 17)
    with pytest.raises(CheckpointError, match=r"hrnet_w32\.pth.*wrong shapes: final_layer\.weight.*HRNet-W32 with 14"):
        load_backbone(path, hr, 14)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: not a readable torch checkpoint .*; rewrite it with the stage"):
        load_backbone(tmp_path / "junk.pth", hr, 17)
    # the file params name (backbones.t.checkpoint) is the user's, not a stage's: replace it
    with pytest.raises(CheckpointError, match=r"junk.pth: not a readable torch checkpoint \(not a torch file: .*\); it is "
                       r"the file backbones\.t\.checkpoint names: replace it with the published checkpoint$"):
        load_backbone(tmp_path / "junk.pth", hr, 17, configured=True)
    torch.save({"state_dict": build_backbone(hr, 17).state_dict(), "backbone": {**hr.model_dump(mode="json"), "width": 48}},
               tmp_path / "ours.pt")
    with pytest.raises(CheckpointError, match=r"ours.pt: trained with backbone.width=48, params say 32"):
        load_backbone(tmp_path / "ours.pt", hr, 17)


def test_a_backbone_file_of_unknown_origin_is_never_unpickled(tmp_path):
    """A backbone.pt holding more than tensors (here an object whose unpickling writes a file) is refused,
    not loaded with full unpickling: only a registry checkpoint with its published checksum is."""
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    bp = BackboneParams(name="t", arch="simple_baseline", depth=18, deconv_channels=16, input_size=(64, 64),
                        heatmap_size=(16, 16))
    torch.save({"state_dict": build_backbone(bp, 17).state_dict(), "meta": Payload()}, tmp_path / "backbone.pt")
    with pytest.raises(CheckpointError, match=r"backbone\.pt: not a readable torch checkpoint \(UnpicklingError: the "
                                              r"safe loader refused it: "):
        load_backbone(tmp_path / "backbone.pt", bp, 17)
    assert not (tmp_path / "ran").exists()


def test_a_backbone_with_non_finite_weights_is_refused(tmp_path):
    """A backbone.pt a diverged training wrote before sgpose refused to write one: an error naming it."""
    bp = BackboneParams(name="t", arch="simple_baseline", depth=18, deconv_channels=16, input_size=(64, 64),
                        heatmap_size=(16, 16))
    weights = build_backbone(bp, 17).state_dict()
    weights["final_layer.bias"][3] = float("nan")
    torch.save({"state_dict": weights}, tmp_path / "backbone.pt")
    with pytest.raises(ValueError, match=r"backbone\.pt: 1 of \d+ values not finite \(NaN or inf\), first in "
                                         r"final_layer\.bias: written by a diverged training; delete it and retrain"):
        load_backbone(tmp_path / "backbone.pt", bp, 17)
