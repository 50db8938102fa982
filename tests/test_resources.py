"""The `resources:` section of params.yaml (sgpose.resources): validated, per-rule defaults, every
rule of the Snakefile covered, and the shipped profiles sized for their scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from sgpose.config import read_params_file
from sgpose.dag.table import STAGES
from sgpose.resources import DEFAULTS, ResourcesParams, read_resources

ROOT = Path(__file__).resolve().parents[1]
GPU_RULES = {"train_backbone", "cache_shard", "train_refiner", "infer", "infer_online"}


def test_every_rule_of_the_snakefile_has_resources():
    rules = {s.name for s in STAGES if "snakemake" in s.engines}  # the Snakefile's rules (sgpose.dag.snakemake)
    assert rules == set(DEFAULTS) == set(ResourcesParams.model_fields)


def test_a_partial_entry_keeps_that_rules_defaults():
    res = read_resources({"resources": {"train_refiner": {"gpu": 0, "runtime": 30}}})
    assert res.of("train_refiner").model_dump() == {"threads": 8, "mem_mb": 64000, "runtime": 30, "gpu": 0}
    assert res.of("infer") == DEFAULTS["infer"] and read_resources({}) == ResourcesParams()


@pytest.mark.parametrize(("section", "named"), [
    ({"inference": {"gpu": 0}}, "inference is no rule"),
    ({"infer": {"gpu": -1}}, "infer.gpu"),
    ({"infer": {"threads": 0}}, "infer.threads"),
    ({"infer": {"memory": 10}}, "infer.memory"),
])
def test_a_bad_entry_is_an_error_naming_it(section, named):
    with pytest.raises(ValueError, match="params.yaml: invalid resources") as err:
        read_resources({"resources": section})
    assert named in str(err.value)


def test_the_sample_asks_for_minutes_and_no_gpu_the_paper_for_gpus_and_days():
    sample = read_params_file(ROOT / "profiles" / "sample.yaml").resources
    assert sample == read_params_file(ROOT / "params.yaml").resources
    for rule in DEFAULTS:
        job = sample.of(rule)
        assert job.gpu == 0 and job.runtime <= 60 and job.mem_mb <= 4000, (rule, job)
    for name in ("coco", "crowdpose", "paper"):
        full = read_params_file(ROOT / "profiles" / f"{name}.yaml")
        assert {r for r in DEFAULTS if full.resources.of(r).gpu} == GPU_RULES, name
        assert full.resources.train_refiner.gpu == full.train_refiner.devices, name
        assert min(full.resources.of(r).runtime for r in ("train_backbone", "train_refiner")) >= 1440, name
