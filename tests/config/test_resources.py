"""The `resources:` section of params.yaml (sgpose.config.resources) over the rules' defaults (the stage
table): a partial entry keeps the rule's other defaults, a bad entry or an unknown rule is an error naming
it, and the shipped profiles are sized for their scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from sgpose.config.selection import ParamsError, read_params_file
from sgpose.dag.table import STAGES, check_resources, resources_of, rule_names, stage

ROOT = Path(__file__).resolve().parents[2]
GPU_RULES = {"train_backbone", "cache", "cache_shard", "train_refiner", "infer", "infer_online"}


def _file(tmp_path: Path, section: dict):
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text()) | {"resources": section}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return read_params_file(path)


def test_every_rule_of_either_engine_has_its_defaults_in_the_table():
    assert rule_names() == [s.name for s in STAGES] and len(set(rule_names())) == len(STAGES)
    assert {s.name for s in STAGES if "snakemake" in s.engines} <= set(rule_names())
    assert stage("train_refiner").resources.gpu == 1 and stage("evaluate").resources.gpu == 0


def test_a_partial_entry_keeps_that_rules_defaults(tmp_path):
    file = _file(tmp_path, {"train_refiner": {"gpu": 0, "runtime": 30}})
    assert resources_of(file, "train_refiner").model_dump() == {"threads": 8, "mem_mb": 64000, "runtime": 30, "gpu": 0}
    assert resources_of(file, "infer") == stage("infer").resources


@pytest.mark.parametrize(("section", "named"), [
    ({"infer": {"gpu": -1}}, "infer.gpu"),
    ({"infer": {"threads": 0}}, "infer.threads"),
    ({"infer": {"memory": 10}}, "infer.memory"),
])
def test_a_bad_entry_is_an_error_naming_it(tmp_path, section, named):
    with pytest.raises(ParamsError, match="invalid parameters") as err:
        _file(tmp_path, section)
    assert named in str(err.value)


def test_an_entry_for_no_rule_is_an_error_naming_the_rules(tmp_path):
    with pytest.raises(ValueError, match="inference is no rule of the DAG") as err:
        check_resources(_file(tmp_path, {"inference": {"gpu": 0}}))
    assert "train_refiner" in str(err.value)


def test_the_sample_asks_for_minutes_and_no_gpu_the_paper_for_gpus_and_days():
    sample = read_params_file(ROOT / "profiles" / "sample.yaml")
    assert sample.resources == read_params_file(ROOT / "params.yaml").resources
    for rule in rule_names():
        job = resources_of(sample, rule)
        assert job.gpu == 0 and job.runtime <= 60 and job.mem_mb <= 4000, (rule, job)
    for name in ("coco", "crowdpose", "paper"):
        full = read_params_file(ROOT / "profiles" / f"{name}.yaml")
        check_resources(full)
        assert {r for r in rule_names() if resources_of(full, r).gpu} == GPU_RULES, name
        assert resources_of(full, "train_refiner").gpu == full.train_refiner.devices, name
        assert min(resources_of(full, r).runtime for r in ("train_backbone", "train_refiner")) >= 1440, name
