"""The schema of controlled backbones (arch oracle | perturbed) and of an ablation on several backbones."""

from pathlib import Path

import pytest
import yaml
from sgpose.config import ParamsError, Paths, load_params, read_params_file
from sgpose.config.controlled import PERTURBED

ROOT = Path(__file__).resolve().parents[2]


def with_controlled(tmp_path: Path, extra: dict | None = None, ablation: list[str] | None = None) -> Path:
    """The repo's params.yaml with sb_r18_perturbed, a perturbed copy of sb_r18 (with `extra` fields), in
    the ablation's `backbones` as given."""
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    real = tree["backbones"]["sb_r18"]
    extra = dict(extra or {})
    for section in ("evals", "online"):  # top-level sections, keyed by backbone
        if section in extra:
            tree.setdefault(section, {})["sb_r18_perturbed"] = extra.pop(section)
    tree["backbones"]["sb_r18_perturbed"] = {"dataset": "sample", "arch": "perturbed", "features_from": "sb_r18",
                                             "input_size": real["input_size"],
                                             "heatmap_size": real["heatmap_size"]} | extra
    tree["ablation"]["backbones"] = ablation  # None: the primary only
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    return tmp_path / "p.yaml"


def test_a_controlled_backbone_borrows_the_weights_of_features_from(tmp_path):
    p = load_params(with_controlled(tmp_path), backbone="sb_r18_perturbed")
    assert p.backbone.controlled and p.backbone.perturb is None and p.variants == ["ours"]
    bp, path = p.features_backbone, Paths(p, tmp_path).weights(p.backbone)
    assert bp.name == "sb_r18" and path == tmp_path / "results" / "sample" / "sb_r18" / "backbone.pt"
    real = load_params(with_controlled(tmp_path))
    assert not real.backbone.controlled and real.features_backbone is real.backbone
    assert Paths(real).weights(real.backbone) == Paths(real).backbone
    custom = load_params(with_controlled(tmp_path, {"perturb": {"miss": 0.2, "seed": 3}}), backbone="sb_r18_perturbed")
    assert custom.backbone.perturb.miss == 0.2 and custom.backbone.perturb.seed == 3
    assert PERTURBED.miss != 0.2


@pytest.mark.parametrize("extra, message", [
    ({"features_from": None}, "features_from None: must name a real"),
    ({"features_from": "cp_r18"}, "must name a real .* backbone of dataset 'sample'"),
    ({"features_from": "sb_r18_perturbed"}, "must name a real"),
    ({"input_size": [256, 192], "heatmap_size": [64, 48]}, "must be those of sb_r18"),
    ({"checkpoint": "x.pth"}, "no weights"),
    ({"train": {"epochs": 2}}, "no weights"),
    ({"evals": ["val", "val_det"]}, "only val"),
    ({"online": ["val"]}, "scored from its cache"),
    ({"arch": "oracle", "perturb": {"miss": 0.1}}, "only for arch perturbed"),
    ({"perturb": {"miss": 0.9, "absent": 0.9}}, "sum to 1.8"),
])
def test_inconsistent_controlled_backbones_are_errors(tmp_path, extra, message):
    with pytest.raises(ParamsError, match=message):
        read_params_file(with_controlled(tmp_path, extra))


def test_features_from_on_a_real_backbone_is_an_error(tmp_path):
    with pytest.raises(ParamsError, match="features_from, perturb and evidence are for arch oracle"):
        read_params_file(with_controlled(tmp_path), ["backbones.sb_r18.features_from=cp_r18"])


def test_a_primary_left_out_of_ablation_backbones_runs_ours_only(tmp_path):
    f = read_params_file(with_controlled(tmp_path, ablation=["sb_r18_perturbed"]))
    assert f.ablation.runs_on == ["sb_r18_perturbed"] and f.ablation.figures_on == "sb_r18_perturbed"
    assert f.primary() == "sb_r18" and f.variants_of("sb_r18") == ["ours"]
    assert f.variants_of("sb_r18_perturbed") == ["ours", *f.ablation.variants, *f.ablation.seeded_variants()]
    assert f.ablation.seeded_variants() == ["ours_seed1", "A2_seed1", "A3_seed1"]  # the sample's: 2 seeds of 3


def test_seeds_name_refined_variants(tmp_path):
    with pytest.raises(ParamsError, match=r"ablation.seeded.*unknown refined variant 'A9'"):
        read_params_file(with_controlled(tmp_path), ["ablation.seeded=[ours,A9]"])
    with pytest.raises(ParamsError, match="ablation.seeded: baseline is computed, not trained: it has no seed"):
        read_params_file(with_controlled(tmp_path), ["ablation.seeded=[baseline]"])
    f = read_params_file(with_controlled(tmp_path), ["ablation.variants=[A1]"])  # A2, A3 seeded but not run
    assert f.ablation.seeded_variants() == ["ours_seed1"]
    with pytest.raises(ParamsError, match="ours_seed1 is a seed of a variant; set ablation.seeds instead"):
        read_params_file(with_controlled(tmp_path), ["ablation.variants=[A1,ours_seed1]"])


def test_the_ablation_runs_on_every_listed_backbone_the_primary_first(tmp_path):
    path = with_controlled(tmp_path, ablation=["sb_r18_perturbed", "sb_r18"])
    f = read_params_file(path)
    assert f.ablation.runs_on == ["sb_r18", "sb_r18_perturbed"] and f.primary() == "sb_r18"
    assert f.ablation.figures_on == "sb_r18"
    for bb in ("sb_r18", "sb_r18_perturbed"):
        assert f.variants_of(bb) == ["ours", *f.ablation.variants, *f.ablation.seeded_variants()]
        assert load_params(path, backbone=bb).evals_of("A1") == ["val"]
    assert f.variants_of("cp_r18") == ["ours"]
    assert read_params_file(with_controlled(tmp_path)).ablation.runs_on == ["sb_r18"]  # default: the primary only


@pytest.mark.parametrize("backbones, message", [
    (["sb_r18", "sb_r18"], "each once"),
    ([], "at least 1 item"),
    (["sb_r18", "nope"], "ablation.backbones 'nope' is not in backbones"),
    (["sb_r18", "cp_r18"], "ablation.backbones cp_r18 runs on 'crowdpose_sample'"),
])
def test_inconsistent_ablation_backbones_are_errors(tmp_path, backbones, message):
    with pytest.raises(ParamsError, match=message):
        read_params_file(with_controlled(tmp_path, ablation=backbones))
