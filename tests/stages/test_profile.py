"""Profiles: each validates, `sample` is the shipped params.yaml, `sgpose profile NAME` activates one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sgpose.cli import main as cli
from sgpose.config.selection import load_params, read_params_file

REPO = Path(__file__).resolve().parents[2]


def test_sample_profile_is_the_shipped_params():
    assert (REPO / "profiles/sample.yaml").read_bytes() == (REPO / "params.yaml").read_bytes()


@pytest.mark.parametrize("name", ["sample", "claims", "coco", "crowdpose", "paper"])
def test_profiles_validate(name):
    f = read_params_file(REPO / "profiles" / f"{name}.yaml")
    for ds in f.datasets.values():
        assert Path(REPO / ds.data.manifest).is_file()
    if name not in ("sample", "claims"):
        for bb in f.backbones:
            params = load_params(REPO / "profiles" / f"{name}.yaml", backbone=bb)
            assert params.backbone.input_size == (256, 192) and params.backbone.deconv_channels == 256
            assert (params.train_refiner.epochs, params.train_refiner.batch_size) == (130, 48)
            assert params.data.val_annotations and params.refiner.channel_mults == [1, 2, 4, 8]


def test_the_claims_profile_is_the_sample_grid_with_three_seeds_of_every_variant():
    """Issue 38: the sample's grid, every refined variant of the ablation under 3 seeds, the longer recipe; the
    sample itself seeds the contested comparisons (ours, A2, A3) twice."""
    claims, sample = (read_params_file(REPO / "profiles" / f"{n}.yaml") for n in ("claims", "sample"))
    assert claims.datasets == sample.datasets and claims.backbones == sample.backbones
    on = claims.ablation.figures_on
    base = ["ours", *claims.ablation.variants]
    assert claims.variants_of(on) == [*base, *(f"{v}_seed{k}" for v in base for k in (1, 2))]
    assert (claims.refiner.base_channels, claims.train_refiner.epochs) == (32, 6)
    assert sample.variants_of(on) == [*base, "ours_seed1", "A2_seed1", "A3_seed1"]


def test_paper_profile_is_every_experiment_of_the_paper():
    """Table 1 and Figs. 5-6 on R50 (official weights), Table 2's five backbones, Table 4's val_det on
    R152 and HRNet-W48, Table 3's two CrowdPose backbones trained here; coco + crowdpose = paper."""
    f = read_params_file(REPO / "profiles/paper.yaml")
    coco, crowd = (read_params_file(REPO / f"profiles/{n}.yaml") for n in ("coco", "crowdpose"))
    assert f.backbones == coco.backbones | crowd.backbones and f.datasets == coco.datasets | crowd.datasets
    assert f.ablation == coco.ablation and (f.ablation.dataset, f.ablation.backbone) == ("coco", "sb_r50")
    assert f.ablation.variants == ["A1", "A2", "A3", "A4", *(f"ours_S{k}" for k in range(4, 9)), "ours_linear"]
    on_coco = {b: bp for b, bp in f.backbones.items() if bp.dataset == "coco"}
    assert [bp.checkpoint for bp in on_coco.values()] == [
        "mmpose:res50_coco_256x192", "mmpose:res101_coco_256x192", "mmpose:res152_coco_256x192",
        "mmpose:hrnet_w32_coco_256x192", "mmpose:hrnet_w48_coco_256x192"]
    assert sorted(b for b in on_coco if "val_det" in f.evals_of(b)) == ["hrnet_w48", "sb_r152"]
    assert f.datasets["coco"].prepare.detections.endswith("COCO_val2017_detections_AP_H_56_person.json")
    assert f.datasets["coco"].data.image_subdirs == {"train": "train2017", "val": "val2017"}
    cp = {b: bp for b, bp in f.backbones.items() if bp.dataset == "crowdpose"}
    assert [(bp.arch, bp.depth if bp.arch == "simple_baseline" else bp.width, bp.checkpoint) for bp in cp.values()] == [
        ("simple_baseline", 152, None), ("hrnet", 48, None)]
    assert f.datasets["crowdpose"].layout == "crowdpose"
    assert f.train_backbone_of("cp_hrnet_w48").epochs == 210 and f.train_backbone_of("cp_r152").epochs == 140


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_profile_command_activates(workdir):
    assert cli(["profile", "coco"]) == 0
    assert (workdir / "params.yaml").read_bytes() == (workdir / "profiles/coco.yaml").read_bytes()
    assert cli(["profile", "sample"]) == 0
    assert load_params("params.yaml").dataset == "sample"
    assert not list(workdir.glob("*.tmp-*"))


def test_a_broken_params_file_is_replaced_not_read(workdir):
    (workdir / "params.yaml").write_text("datasets: [this is not a grid\n")
    assert cli(["profile", "sample"]) == 0
    assert (workdir / "params.yaml").read_bytes() == (workdir / "profiles/sample.yaml").read_bytes()


def test_bad_or_unknown_profile_leaves_params(workdir, capsys):
    before = (workdir / "params.yaml").read_bytes()
    (workdir / "profiles/broken.yaml").write_text("datasets: {}\nbogus: 1\n")
    assert cli(["profile", "broken"]) == 1
    assert "profiles/broken.yaml: invalid parameters" in capsys.readouterr().err
    assert cli(["profile", "nope"]) == 1
    assert ("profiles/nope.yaml: no such profile; available: broken, claims, coco, crowdpose, paper, sample"
            in capsys.readouterr().err)
    assert (workdir / "params.yaml").read_bytes() == before
