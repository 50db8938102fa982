from pathlib import Path

import pytest
import yaml
from sgpose.config.paths import Paths
from sgpose.config.selection import ParamsError, load_params, read_params_file

ROOT = Path(__file__).resolve().parents[2]


def test_repo_params_validate():
    p = load_params(ROOT / "params.yaml")
    assert p.guidance.T == p.guidance.S + 2
    assert p.backbone.heatmap_sigma == pytest.approx(2.0 * p.backbone.heatmap_size[1] / 48)


def test_overrides_and_errors(tmp_path):
    p = load_params(ROOT / "params.yaml", ["guidance.S=5", "refiner.channel_mults=[1,2,2]"])
    assert p.guidance.S == 5 and p.refiner.channel_mults == [1, 2, 2]
    with pytest.raises(ParamsError, match="guidance"):
        load_params(ROOT / "params.yaml", ["guidance.schedule=quadratic"])
    with pytest.raises(ParamsError, match="nope"):
        load_params(ROOT / "params.yaml", ["nope.x=1"])
    with pytest.raises(ParamsError, match="not a parameter section"):
        load_params(ROOT / "params.yaml", ["guidance.S.x=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "params.yaml").read_text() + "\nunknown_key: 1\n")
    with pytest.raises(ParamsError, match=str(bad)):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    with pytest.raises(ParamsError, match="input_size"):
        load_params(ROOT / "params.yaml", ["backbone.heatmap_size=[10,10]"])


@pytest.mark.parametrize("section,old,new", [("datasets", "crowdpose_sample", "metrics"),
                                              ("backbones", "cp_r18", "prepared"), ("backbones", "cp_r18", "cp r18")])
def test_names_that_would_clash_as_directories_are_errors(tmp_path, section, old, new):
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree[section][new] = tree[section].pop(old)
    for bp in tree["backbones"].values():
        bp["dataset"] = new if bp["dataset"] == old else bp["dataset"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    with pytest.raises(ParamsError, match=f"{section}.{new}: a name is letters"):
        read_params_file(tmp_path / "p.yaml")


def test_a_misspelt_selection_is_named_before_overrides_apply():
    names = r"\(sb_r18, sb_r18_perturbed, sb_r18_evidence, cp_r18\)"
    with pytest.raises(ParamsError, match=r"--backbone sb_r81: not in backbones " + names):
        load_params(ROOT / "params.yaml", ["backbone.sigma=3"], backbone="sb_r81")
    with pytest.raises(ParamsError, match="--dataset smaple: not in datasets"):
        load_params(ROOT / "params.yaml", ["data.raw_dir=x"], dataset="smaple")


def test_paths_layout():
    p = load_params(ROOT / "params.yaml")
    paths = Paths(p, root="/x")
    assert paths.cache("val") == Path(f"/x/results/{p.dataset}/{p.backbone.name}/cache/val.h5")
    assert paths.metrics("ours") == Path(f"/x/results/metrics/{p.dataset}/{p.backbone.name}/ours.json")
    assert paths.instances("val_det") == Path(f"/x/results/{p.dataset}/prepared/instances_val_det.parquet")
    assert paths.split_annotations("val_det") == paths.split_annotations("val")  # detector boxes, val's truth
    assert paths.keypoints("A1", "val_det") == Path(f"/x/results/{p.dataset}/{p.backbone.name}/A1/predictions/val_det.json")


def test_selection_of_a_backbone_or_a_dataset():
    f = read_params_file(ROOT / "params.yaml")
    primary = load_params(ROOT / "params.yaml")
    assert primary.backbone.name == f.ablation.backbone and primary.dataset == f.ablation.dataset
    assert primary.variants == ["ours", *((*f.ablation.variants, *f.ablation.seeded_variants())
                                          if f.ablation.backbone in f.ablation.runs_on else [])]
    for name, bp in f.backbones.items():
        p = load_params(ROOT / "params.yaml", backbone=name)
        assert (p.backbone.name, p.dataset) == (name, bp.dataset)
        assert p.layout == f.datasets[bp.dataset].layout and p.splits == ["train", *f.evals_of(name)]
        assert p.variants == (["ours", *f.ablation.variants, *f.ablation.seeded_variants()] if name in f.ablation.runs_on
                              else ["ours"])
        assert load_params(ROOT / "params.yaml", dataset=bp.dataset).dataset == bp.dataset
    with pytest.raises(ParamsError, match="--backbone nope: not in backbones"):
        load_params(ROOT / "params.yaml", backbone="nope")
    with pytest.raises(ParamsError, match="--dataset nope: not in datasets"):
        load_params(ROOT / "params.yaml", dataset="nope")


def test_aliases_address_the_selected_backbone_and_dataset():
    other = next(b for b, bp in read_params_file(ROOT / "params.yaml").backbones.items() if bp.dataset != "sample")
    p = load_params(ROOT / "params.yaml", ["backbone.sigma=3", "prepare.val_fraction=0.5"], backbone=other)
    assert p.backbone.sigma == 3 and p.prepare.val_fraction == 0.5
    f = read_params_file(ROOT / "params.yaml", ["backbone.sigma=3", "prepare.val_fraction=0.5"], backbone=other)
    assert f.backbones["sb_r18"].sigma == 2.0  # the others untouched
    assert f.datasets["sample"].prepare.val_fraction == 0.2


def test_train_overrides_per_backbone():
    p = load_params(ROOT / "params.yaml", ["backbone.train={epochs: 3, augment: {flip_prob: 0.0}}"])
    assert p.train_backbone.epochs == 3 and p.train_backbone.augment.flip_prob == 0.0
    assert p.train_backbone.lr == p.file.train_backbone.lr  # the rest from the shared section
    with pytest.raises(ParamsError, match="backbones.sb_r18.train"):
        load_params(ROOT / "params.yaml", ["backbone.train={epochs: -1}"])


@pytest.mark.parametrize("override, message", [
    ("backbones.sb_r18.dataset=elsewhere", "is not in datasets"),
    ("datasets.sample.prepare.aspect_ratio=1.0", "aspect"),
    ("datasets.sample.prepare.detections=null", "val_det but datasets.sample.prepare.detections"),
    ("ablation.backbone=nope", "ablation.backbone 'nope'"),
    ("ablation.dataset=crowdpose_sample", "ablation.dataset"),
    ("ablation.variants=[A1,A1]", "each once"),
    ("ablation.variants=[ours]", "run for every backbone"),
    ("ablation.variants=[A9]", "unknown refined variant"),
    ("ablation.variants=[ours_S20]", "ablation.variants ours_S20: Input should be less than or equal to 16"),
    ("cache.shards={train: 0}", "at least one shard"),
    ("cache.feature_levels=[1,0]", "increasing"),
    ("evals.sb_r18=[val,val]", "each once"),
    ("evals.sb_r18=[val_det]", "evals.sb_r18 must include val"),
    ("backbone.evals=[val]", "has moved to the top-level section `evals`"),
    ("backbones.cp_r18.dataset=sample", "datasets crowdpose_sample: no backbone"),
    ("online={cp_r18: [val_det]}", r"online.cp_r18 \['val_det'\]: each once, each a split of evals.cp_r18"),
    ("online={nope: [val]}", "online.nope: not in backbones"),
    ("online={sb_r18: [val]}", "online.sb_r18 must not hold val"),
    ("train_refiner.devices=1000", r"batch_size \d+ is the global batch: it must be at least train_refiner.devices"),
])
def test_inconsistent_files_are_errors(override, message):
    with pytest.raises(ParamsError, match=message):
        load_params(ROOT / "params.yaml", [override])


@pytest.mark.parametrize("profile", ["sample", "coco", "crowdpose", "paper"])
def test_every_backbone_of_every_profile_resolves(profile):
    path = ROOT / "profiles" / f"{profile}.yaml"
    for name in read_params_file(path).backbones:
        assert load_params(path, backbone=name).backbone.name == name


def test_online_splits_are_not_cached_and_name_their_variants():
    p = load_params(ROOT / "params.yaml", ["online={sb_r18: [val_det]}"])
    assert p.splits == ["train", "val"] and p.online == ["val_det"]
    assert p.online_variants("val_det") == ["baseline", "baseline_dark", "copy", "ours"]  # the ablation's: val only
    assert p.online_variants("val") == ["baseline", "baseline_dark", "copy", *p.variants]
    assert load_params(ROOT / "params.yaml").splits == ["train", "val", "val_det"]


def test_decode_mode_and_baseline_dark_in_every_backbones_grid():
    p = load_params(ROOT / "params.yaml")
    assert p.infer.decode == "standard"  # as the paper
    assert load_params(ROOT / "params.yaml", ["infer.decode=dark"]).infer.decode == "dark"
    with pytest.raises(ParamsError, match="infer.decode"):
        load_params(ROOT / "params.yaml", ["infer.decode=darker"])
    for name, bp in p.file.backbones.items():
        ceilings = ["copy", *(["oracle"] if bp.controlled else [])]  # the oracle: controlled backbones only
        assert p.file.scored_variants_of(name) == ["baseline", "baseline_dark", *ceilings, *p.file.variants_of(name)]
    assert p.file.evals_of("sb_r18", "copy") == p.evals and p.file.evals_of("sb_r18_perturbed", "oracle") == ["val"]
    assert p.evals_of("baseline_dark") == p.evals_of("baseline") == p.evals
    with pytest.raises(ParamsError, match="baseline_dark, copy, oracle and ours run for every backbone"):
        load_params(ROOT / "params.yaml", ["ablation.variants=[baseline_dark]"])
