"""Results shared through a DVC remote: the tiny DAG run by Snakemake becomes DVC's (`dvc commit`),
is pushed with its run-cache to a local remote directory, and a fresh `git clone` pulls it back:
`dvc repro --allow-missing` then runs no stage and the report is byte for byte the one pushed.

DVC caches (and pushes, and keeps a run-cache for) a stage only when every output is cached:
CACHE_DECISIONS is the cache setting of each output dvc.yaml declares `cache: false` today, applied
here to the test repository's copy of dvc.yaml (docs/cluster.md, "Share results")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import digests

pytestmark = pytest.mark.e2e

# the cache setting of each output the stage table (sgpose.dag.table) declares `cache: false` today, by
# path: True pushes and pulls it, and lets DVC keep a run-cache entry for its stage
CACHE_DECISIONS = [
    (r"results/[^/]+/download\.json", True),  # bytes; prepare's dependency
    (r"results/[^/]+/[^/]+/cache/[^/]+\.(h5|shards)", False),  # persist; hundreds of GB at full scale: not shared
    (r"results/metrics/.+\.json", True),  # results/ is git-ignored: uncached metrics reach no colleague
    (r"results/report", True),  # what a colleague pulls to read the tables
]
GIT = ["git", "-c", "user.name=sgpose test", "-c", "user.email=test@sgpose.invalid"]


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def outputs(stage: dict) -> list[tuple[str, dict]]:
    """(path, options) of each output of a stage (outs, metrics, plots); options {} when none are given."""
    found = []
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            found += list(entry.items()) if isinstance(entry, dict) else [(entry, {})]
    return found


def decide(path: str) -> bool:
    for pattern, cache in CACHE_DECISIONS:
        if re.fullmatch(pattern, path):
            return cache
    raise AssertionError(f"dvc.yaml: no cache decision for {path} (declared cache: false)")


def apply_decisions(dvc_yaml: Path) -> set[str]:
    """Set each `cache: false` output's cache per CACHE_DECISIONS; the stages DVC can then keep a
    run-cache for (every output cached, none persistent)."""
    tree = yaml.safe_load(dvc_yaml.read_text())
    run_cached = set()
    for name, stage in tree["stages"].items():
        for path, options in outputs(stage):
            if options.get("cache") is False:
                options["cache"] = decide(path)
        if all(o.get("cache", True) and not o.get("persist") for _, o in outputs(stage)) and outputs(stage):
            run_cached.add(name)
    dvc_yaml.write_text(yaml.safe_dump(tree, sort_keys=False))
    return run_cached


@pytest.fixture(scope="module")
def pushed(snakemake_tiny_run, tmp_path_factory) -> dict:
    """The tiny DAG run by Snakemake, committed to DVC, pushed with its run-cache to a local remote."""
    repo = snakemake_tiny_run[0]
    (repo / "dvc.lock").unlink(missing_ok=True)  # the sample run's: record only the tiny grid's stages
    run_cached = apply_decisions(repo / "dvc.yaml")
    remote = tmp_path_factory.mktemp("share") / "remote"
    run(["dvc", "remote", "modify", "--local", "storage", "url", str(remote)], repo)
    run(["sgpose", "code"], repo)  # the digests DVC's jobs depend on for their code (Snakemake needs none)
    out = run(["dvc", "commit", "--force"], repo)
    out += run(["dvc", "repro"], repo)  # DVC now holds Snakemake's outputs as its own: nothing to run
    out += run(["dvc", "push", "--run-cache"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", "tiny grid, results in DVC"], repo)
    return {"repo": repo, "remote": remote, "out": out, "run_cached": run_cached}


def test_dvc_takes_snakemakes_outputs_and_pushes_them_with_the_run_cache(pushed):
    assert "Running stage" not in pushed["out"]
    lock = yaml.safe_load((pushed["repo"] / "dvc.lock").read_text())["stages"]
    not_cached = {name.split(".")[0] for name in set(lock) - pushed["run_cached"]}
    assert not_cached == {"cache"}, not_cached  # every stage but the feature cache is restorable
    runs = [p for p in (pushed["remote"] / "runs").rglob("*") if p.is_file()]
    assert len(runs) == len(pushed["run_cached"]) > 0
    print(f"\n{len(lock)} stages committed from Snakemake's outputs; run-cache entries pushed: {len(runs)}")


def test_a_fresh_clone_pulls_the_results_and_reruns_nothing(pushed, tmp_path):
    repo, remote = pushed["repo"], pushed["remote"]
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "storage", "url", str(remote)], clone)
    run(["dvc", "pull", "--run-cache"], clone)
    assert digests(clone / "results" / "report") == digests(repo / "results" / "report")
    assert not (clone / "results/tiny/r18/cache").exists()  # never pushed (CACHE_DECISIONS)
    again = run(["dvc", "repro", "--allow-missing"], clone)
    ran = re.findall(r"Running stage '([^']+)'", again)
    assert not ran, again[-3000:]
    assert digests(clone / "results" / "report") == digests(repo / "results" / "report")
    print(f"\nafter git clone + dvc pull --run-cache: dvc repro --allow-missing ran {len(ran)} stages; "
          f"report byte-identical ({len(digests(clone / 'results' / 'report'))} files)")
