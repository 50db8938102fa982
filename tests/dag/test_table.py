"""The stage table, and dvc.yaml generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sgpose.config.paths import Paths
from sgpose.config.selection import read_params_file
from sgpose.dag import dvc, table
from sgpose.dag.dvc import stale
from sgpose.dag.snakemake import lookup, rules

ROOT = Path(__file__).resolve().parents[2]
FILE = read_params_file(ROOT / "params.yaml")
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_checked_in_dvc_yaml_is_current():
    assert not stale(ROOT / "params.yaml", ROOT / "dvc.yaml"), "dvc.yaml is stale: run `sgpose dag`"


def test_every_declared_params_key_exists_in_the_schema_and_in_params_yaml():
    tree = FILE.model_dump(mode="json")
    for job in table.jobs(FILE, "dvc") + table.jobs(FILE, "snakemake"):
        for key in (k for k in job.params if k != table.WHOLE_FILE):
            parent, leaf = (key.rsplit(".", 1) + [""])[:2] if "." in key else ("", key)
            assert leaf in (lookup(tree, parent) if parent else tree), (job.name, key)
            assert dvc.present_key(RAW, key) == key, f"params.yaml lacks {key} ({job.name}): DVC tracks its section"


def test_every_command_that_runs_a_network_names_its_batch_size_and_it_is_a_params_key():
    """What an out-of-memory error tells the user to lower (sgpose.cli): a real key, in params.yaml."""
    named = {c.name: c.batch_param for c in table.COMMANDS if c.batch_param}
    assert set(named) == {"train_backbone", "cache", "train_refiner", "infer", "infer_online"}
    for param in named.values():
        section, key = param.split(".")
        assert key in RAW[section] and isinstance(getattr(getattr(FILE, section), key), int), param


def test_every_job_has_code_outputs_and_a_unique_name():
    jobs = table.jobs(FILE, "dvc")
    assert len({j.name for j in jobs}) == len(jobs)
    outs = [o.path for j in jobs for o in j.outs]
    assert len(set(outs)) == len(outs), "two jobs write the same file"
    for j in jobs:
        assert j.outs and any(c.endswith(f"stages/{j.stage.split('_')[0]}.py") or "stages/" in c for c in j.code)


def test_every_dependency_is_made_by_a_job_or_shipped():
    """Dependencies are outputs of other jobs (or inside an output directory) or files in the repo."""
    jobs = table.jobs(FILE, "dvc")
    made = {o.path for j in jobs for o in j.outs}
    for j in jobs:
        for dep in j.deps:
            assert dep in made or any(dep.startswith(m + "/") for m in made) or (ROOT / dep).exists(), (j.name, dep)


def test_snakemake_rules_cover_the_same_jobs():
    dvc_jobs = {j.name for j in table.jobs(FILE, "dvc")}
    snake = {j.name for j in table.jobs(FILE, "snakemake")}
    # the engines differ in the cache (DVC: a job per split; Snakemake: per shard) and in DVC's code digests
    assert {n for n in dvc_jobs if not n.startswith("cache.") and n != table.CODE_STAGE} == \
        {n for n in snake if not n.startswith("cache_")}
    assert [r.name for r in rules(FILE)] == [s.name for s in table.STAGES if "snakemake" in s.engines
                                                 and list(s.jobs(FILE))]


def test_dvc_jobs_depend_on_their_entry_digest_and_the_code_stage_writes_every_one():
    """Under DVC a job's code is one file, its entry's digest (sgpose.dag.digests), which the code stage
    writes from the package directory; no job lists a source file (that made dvc.lock 16k lines)."""
    raw_stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    code = raw_stages[table.CODE_STAGE]
    assert code["deps"] == ["pipeline_src/sgpose"]
    digests_made = set(code["outs"])
    for job in table.jobs(FILE, "dvc"):
        if job.stage == table.CODE_STAGE:
            continue
        deps, digest = raw_stages[job.name]["deps"], str(Paths.of("-", "-").code_digest(job.entry))
        assert [d for d in deps if d.startswith("results/code/")] == [digest], job.name
        assert digest in digests_made
        assert not any(d.startswith("pipeline_src/") for d in deps), job.name


def test_cache_params_follow_the_split():
    """A training-only cache setting is no dependency of an evaluation split's cache, and vice versa."""
    by_split = {j.keys["split"]: set(j.params) for j in table.jobs(FILE, "dvc") if j.stage == "cache"}
    assert "cache.train_views" in by_split["train"] and "cache.train_views" not in by_split["val"]
    assert "cache.flip_test" in by_split["val"] and "cache.flip_test" not in by_split["train"]
    assert not any("cache.batch_size" in p or "cache.shards" in p for p in by_split.values())


def test_present_key_is_the_deepest_prefix_in_the_file():
    raw = {"a": {"b": {"c": 1}}, "s": {}}
    assert dvc.present_key(raw, "a.b.c") == "a.b.c" and dvc.present_key(raw, "a.b.x") == "a.b"
    assert dvc.present_key(raw, "z.y") is None


def test_old_params_with_evals_in_the_backbone_is_a_clear_error(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["backbones"]["sb_r18"]["evals"] = raw.pop("evals")["sb_r18"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"backbones\.sb_r18\.evals has moved to the top-level section `evals`"):
        read_params_file(tmp_path / "params.yaml")
