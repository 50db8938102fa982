"""The whole DAG, end to end, through both engines (DVC and Snakemake) on a tiny real config: the
four COCO val2017 images of the mirror's fixtures (ground-truth and detection boxes) and the two
CrowdPose fixture images, one backbone each, the ablation with one paper variant and one sweep, a
sharded training split; one epoch everywhere, CPU."""

from __future__ import annotations

import copy
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml
from sgpose.config.selection import read_params_file
from sgpose.core.variants import is_refined
from sgpose.dag import table
from workflow_helpers import EVALUATIONS, OTHER_MACHINE, REFINER_AND_AFTER, THREADED, digests, make_repo, metrics_of, run

pytestmark = pytest.mark.e2e


FIRST_REPRO: dict[str, str] = {}  # dvc_repo's results/ after its first `dvc repro`: file -> sha256
SNAKEMAKE_MARK = (".snakemake_timestamp",)  # Snakemake's mark on a directory output


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("dvc"), {"resources": THREADED})
    (repo / "dvc_repro.log").write_text(run(["dvc", "repro"], repo, interleaved=True))
    FIRST_REPRO.update(digests(repo / "results"))  # later tests change params here; compare against the first run
    return repo


# the modules that shape no feature: editing them must leave every cache shard and cache job as it is
CACHE_INDEPENDENT = ("data/download.py", "data/archives.py", "dag/table.py", "dag/digests.py", "runtime/threads.py",
                     "runtime/locks.py", "runtime/imports.py", "method/guidance.py", "cli.py")
THREADS_LINE = re.compile(r"sgpose (\w+): (\d+) threads? \(from ([^)]*)\)")


def first_threads_line(text: str) -> tuple[str, int, str]:
    """(command, threads, source) of the first thread-count line in a stage's log."""
    found = THREADS_LINE.search(text)
    assert found, text[-2000:]
    return found.group(1), int(found.group(2)), found.group(3)


def test_every_dvc_stage_reports_the_threads_of_its_rule(dvc_repo):
    """Under DVC each stage takes its rule's `resources.<rule>.threads` (DVC's `sgpose cache` is rule cache)."""
    file = read_params_file(dvc_repo / "params.yaml")
    blocks = re.split(r"Running stage '([^']+)':", (dvc_repo / "dvc_repro.log").read_text())[1:]
    seen = set()
    for name, text in zip(blocks[::2], blocks[1::2]):
        rule = name.split(".")[0]
        if rule == table.CODE_STAGE:  # reads no params file: no thread set-up
            continue
        want = table.resources_of(file, rule).threads
        assert first_threads_line(text)[1:] == (want, f"resources.{rule}.threads"), name
        seen.add(rule)
    assert seen == {j.stage for j in table.jobs(file, "dvc")} - {table.CODE_STAGE}


def test_dvc_repro_runs_the_whole_dag(dvc_repo):
    metrics = metrics_of(dvc_repo)
    assert set(metrics) == EVALUATIONS
    for (ds, bb, variant), m in metrics.items():
        # baseline and ours on the backbone's evals, the ablation's variants on val (Params.evals_of)
        assert set(m) == ({"val", "val_det"} if bb == "r18" and variant in ("baseline", "baseline_dark", "copy", "ours")
                          else {"val"}), \
            (bb, variant)
        for split in m.values():
            assert 0.0 <= split["AP"] <= 1.0 and split["num_instances"] > 0
    assert "AP_hard" in metrics[("tiny_crowd", "cp", "ours")]["val"]  # CrowdPose metrics
    assert len(list((dvc_repo / "results/tiny/r18/cache/train.shards").iterdir())) == 2
    report = dvc_repo / "results" / "report"
    tables = {n: pd.read_csv(report / f"{n}.csv") for n in ("table1", "table2", "table3", "table4")}
    # the ceiling this run has (copy; the tiny grid has no oracle) after the baseline
    assert tables["table1"].variant.tolist() == ["baseline", "copy", "A1", "A2", "A3", "A4", "ours"]
    assert tables["table1"]["AP (this run)"].notna().tolist() == [True, True, True, False, False, False, True]
    assert tables["table2"].directory.tolist()[-1] == "tiny/r18"  # after the paper's five backbones
    this_run = {n: t[t.source.str.startswith("this run")].method.tolist() for n, t in tables.items() if "source" in t}
    assert this_run == {"table3": ["cp baseline", "cp baseline_dark", "cp copy", "cp ours"],
                        "table4": ["r18 baseline", "r18 baseline_dark", "r18 copy", "r18 ours"]}
    for png in ("fig2_guidance", "fig4_ablation", "fig5_steps", "fig6_schedule", "fig7_corrected", "fig8_recovered",
                "fig9_hardest", "training_curves"):
        img = mpimg.imread(report / f"{png}.png")
        assert img.shape[0] > 100 and img[..., :3].std() > 0.03, f"{png}.png is blank"
        assert (report / f"{png}.csv").is_file(), png
    assert (report / "index.html").stat().st_size > 0 and (report / "provenance.json").is_file()
    assert not list(dvc_repo.rglob("*.tmp-*")), "a temporary file was left behind"


def test_dvc_repro_again_changes_nothing_and_a_refiner_param_reruns_only_the_refiners(dvc_repo):
    again = run(["dvc", "repro"], dvc_repo)
    assert "Running stage" not in again
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["train_refiner"]["epochs"] = 2
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = set(re.findall(r"Running stage '([^']+)'", run(["dvc", "repro"], dvc_repo)))
    assert {f"train_refiner.{ds}.{bb}.{v}" for ds, bb, v in EVALUATIONS if is_refined(v)} <= ran
    upstream = {s for s in ran if not REFINER_AND_AFTER.match(s) or "baseline" in s}
    assert not upstream, f"stages upstream of the refiners re-ran: {upstream}"


@pytest.fixture(scope="module")
def snake_repo(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("snakemake"), {"resources": THREADED})
    run(["snakemake", "--profile", "workflow/profiles/local"], repo, machine=OTHER_MACHINE)
    return repo


def test_every_snakemake_job_reports_the_threads_of_its_rule(snake_repo):
    """Under Snakemake each job is given its rule's threads (`--threads {threads}`) and reports them."""
    file = read_params_file(snake_repo / "params.yaml")
    logs = sorted((snake_repo / "logs").glob("*/*.log"))
    assert {p.parent.name for p in logs} == {j.stage for j in table.jobs(file, "snakemake")}
    for log in logs:
        rule = log.parent.name
        assert first_threads_line(log.read_text())[1:] == (table.resources_of(file, rule).threads, "--threads"), log


def test_both_engines_on_two_emulated_machines_write_the_same_bytes(dvc_repo, snake_repo):
    """Issue 28: DVC here, Snakemake on an emulated other machine (sgpose.runtime.numerics.OTHER_MACHINE): every
    file of results/ is the same to the byte under `portable` (the tiny grid's default): weights, shards and
    manifests, predictions, metrics, figures, the report and its provenance. DVC's side is its first run's
    (FIRST_REPRO): a test before this one changes dvc_repo's params."""
    dvc, snake = FIRST_REPRO, digests(snake_repo / "results", skip=SNAKEMAKE_MARK)
    assert dvc, "dvc_repo's first run was not recorded"
    assert {f for f in set(dvc) ^ set(snake) if not f.startswith("code/")} == set()  # DVC's code stage
    differ = [f for f in sorted(set(dvc) & set(snake)) if dvc[f] != snake[f]]
    assert differ == [], differ
    assert len(set(dvc) & set(snake)) > 100


def test_snakemake_runs_the_same_dag(dvc_repo, snake_repo):
    repo = snake_repo
    snake, dvc = metrics_of(repo), metrics_of(dvc_repo)
    assert set(snake) == set(dvc) == EVALUATIONS
    for key in snake:
        assert set(snake[key]) == set(dvc[key]) and all(set(snake[key][s]) == set(dvc[key][s]) for s in snake[key])
    assert (repo / "results" / "report" / "index.html").is_file()
    assert len(list((repo / "results/tiny/r18/cache/train.shards").iterdir())) == 2  # scattered, gathered
    assert "Nothing to be done" in run(["snakemake", "--profile", "workflow/profiles/local", "-n"], repo)


# ------------------------------------------------------------------ the engines follow the stage table
# Touch every module of the package and change every params key: each engine must plan to re-run exactly
# the jobs the stage table says read it (its entry point imports the module; it declares the key), no more,
# no fewer. Modules are touched all at once: DVC's status names every changed dependency of every stage
# (a job's code dependency is its entry's digest, whose per-file hashes say which module moved it);
# Snakemake checks an input's mtime only for a job that nothing upstream re-runs, so it plans one rule at a
# time (`--allowed-rules`: the other rules' files count as sources), and names each job's updated inputs.
TOUCHED = b"\n# touched by test_workflow_e2e\n"


def package_modules(repo: Path) -> list[str]:
    return sorted(p.relative_to(repo).as_posix() for p in (repo / "pipeline_src" / "sgpose").rglob("*.py"))


def table_jobs(repo: Path, engine: str) -> list[table.Job]:
    return table.jobs(read_params_file(repo / "params.yaml"), engine)


def dvc_changes(repo: Path) -> dict[str, dict[str, set[str]]]:
    """stage -> {"deps": changed dependency paths, "params": changed params keys} (`dvc status`)."""
    status = json.loads(run(["dvc", "status", "--json"], repo).strip().splitlines()[-1] or "{}")
    out: dict[str, dict[str, set[str]]] = {}
    for stage, entries in status.items():
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            found = out.setdefault(stage, {"deps": set(), "params": set()})
            found["deps"] |= set(entry.get("changed deps", {}))
            for changed in entry.get("changed deps", {}).values():
                if isinstance(changed, dict):  # params.yaml: {key: modified}
                    found["params"] |= set(changed)
    return out


def snakemake_plan(repo: Path, trigger: str, extra: list[str] | None = None) -> dict[tuple, str]:
    """(rule, wildcards) -> the reason of every job a dry run plans, with only `trigger` enabled."""
    out = run(["snakemake", "-n", "--cores", "1", "--rerun-triggers", trigger, *(extra or [])], repo)
    plan = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|^(?:local)?rule |^Job stats|\Z)", out,
                                 flags=re.M | re.S):
        reason = re.search(r"^\s+reason: (.*)$", body, flags=re.M)
        wildcards = re.search(r"^\s+wildcards: (.*)$", body, flags=re.M)
        keys = frozenset(tuple(kv.split("=", 1)) for kv in wildcards.group(1).split(", ")) if wildcards else frozenset()
        plan[(rule, keys)] = reason.group(1) if reason else ""
    return plan


def job_id(job: table.Job) -> tuple:
    return (job.stage, frozenset(job.keys.items()))


def code_digests(repo: Path) -> dict[str, dict[str, str]]:
    """results/code/<entry>.json (DVC's code dependency, sgpose.dag.digests) -> {source: sha256}."""
    return {p.relative_to(repo).as_posix(): json.loads(p.read_text())["files"]
            for p in sorted((repo / "results" / "code").glob("*.json"))}


def test_every_module_reruns_exactly_its_importers_under_dvc(dvc_repo):
    """Under DVC a job's code is its entry's digest: an edit re-runs the code stage (the package directory
    changed), whose digests then differ for exactly the entries importing the module, and `dvc status`
    names the jobs whose digest changed. So: module m re-runs the jobs with a changed digest in which m's
    hash changed, and that must be the table's importers of m."""
    assert dvc_changes(dvc_repo) == {}, "dvc status is not clean after dvc repro"
    modules = package_modules(dvc_repo)
    originals = {m: (dvc_repo / m).read_bytes() for m in modules}
    before = code_digests(dvc_repo)
    try:
        for m in modules:
            (dvc_repo / m).write_bytes(originals[m] + TOUCHED)
        direct = dvc_changes(dvc_repo)
        run(["dvc", "repro", "--single-item", table.CODE_STAGE], dvc_repo)
        after, changes = code_digests(dvc_repo), dvc_changes(dvc_repo)
    finally:
        for m in modules:
            (dvc_repo / m).write_bytes(originals[m])
        run(["dvc", "repro", "--single-item", table.CODE_STAGE], dvc_repo)
    assert direct == {table.CODE_STAGE: {"deps": {"pipeline_src/sgpose"}, "params": set()}}, direct
    assert set(before) == set(after) and before != after
    jobs = [j for j in table_jobs(dvc_repo, "dvc") if j.stage != table.CODE_STAGE]  # it re-ran: `direct`
    wrong = {}
    for m in modules:
        digests = {d for d in before if before[d].get(m) != after[d].get(m)}
        expected = {j.name for j in jobs if m in j.code}
        actual = {s for s, c in changes.items() if c["deps"] & digests}
        if expected != actual:
            wrong[m] = {"missing": expected - actual, "extra": actual - expected}
    assert not wrong, wrong
    for m in CACHE_INDEPENDENT:  # nothing re-runs the cache: its digest lacks these modules
        digests = {d for d in before if before[d].get(f"pipeline_src/sgpose/{m}") != after[d].get(f"pipeline_src/sgpose/{m}")}
        assert not {s for s, c in changes.items() if c["deps"] & digests and s.startswith("cache.")}, m
    assert any(m.endswith("stages/infer.py") for m in modules) and dvc_changes(dvc_repo) == {}
    assert code_digests(dvc_repo) == before


def test_every_module_reruns_exactly_its_importers_under_snakemake(snake_repo):
    modules = package_modules(snake_repo)
    originals = {m: ((snake_repo / m).read_bytes(), (snake_repo / m).stat().st_mtime) for m in modules}
    later = max(p.stat().st_mtime for p in (snake_repo / "results").rglob("*") if p.is_file()) + 60
    jobs = table_jobs(snake_repo, "snakemake")
    updated: dict[tuple, set[str]] = {}
    try:
        for m in modules:  # newer and different (Snakemake also compares a recorded checksum)
            (snake_repo / m).write_bytes(originals[m][0] + TOUCHED)
            os.utime(snake_repo / m, (later, later))
        for rule in sorted({j.stage for j in jobs}):
            targets = [o.path for j in jobs if j.stage == rule for o in j.outs]
            plan = snakemake_plan(snake_repo, "mtime", ["--allowed-rules", rule, "--", *targets])
            updated |= {job: set(re.search(r"Updated input files: ([^;]*)", reason).group(1).split(", "))
                        for job, reason in plan.items() if job[0] == rule and "Updated input files" in reason}
    finally:
        for m, (data, mtime) in originals.items():
            (snake_repo / m).write_bytes(data)
            os.utime(snake_repo / m, (mtime, mtime))
    wrong = {}
    for m in modules:
        expected = {job_id(j) for j in jobs if m in j.code}
        actual = {job for job, files in updated.items() if m in files}
        if expected != actual:
            wrong[m] = {"missing": expected - actual, "extra": actual - expected}
    assert not wrong, wrong
    for m in CACHE_INDEPENDENT:  # no shard job re-runs: their inputs lack these modules
        assert not {job for job, files in updated.items() if f"pipeline_src/sgpose/{m}" in files
                    and job[0].startswith("cache")}, m
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "1"], snake_repo)


def leaf_keys(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out += leaf_keys(value, path + ".") if isinstance(value, dict) and value else [(path, value)]
    return out


OTHER = {"cosine": "linear", "linear": "cosine", "static": "recursive", "canonical": "mean", "literal": "keep_start",
         "rendered": "raw", "clamp": "per_map", "pycocotools": "faster_coco_eval", "lz4": "gzip", "float16": "float32",
         "bf16": "fp16", "auto": "cpu", "left_wrist": "right_wrist", "standard": "dark"}


def changed(value):
    """Another valid-looking value of the same type (None where there is no obvious one)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.125
    return OTHER.get(value) if isinstance(value, str) else None


def with_changes(tree: dict, changes: dict[str, object]) -> dict:
    """A copy of a params tree with the given leaf keys set to new values."""
    variant = copy.deepcopy(tree)
    for key, new in changes.items():
        node = variant
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = new
    return variant


def keeps_shape(repo: Path, variant: dict) -> bool:
    """Whether a params tree is valid and keeps the DAG's shape (the grid's keys change dvc.yaml itself:
    `sgpose dag --check` covers them; a shard count changes only Snakemake's jobs, the scatter's)."""
    from sgpose.dag.dvc import stale

    probe = repo / "params.probe.yaml"
    probe.write_text(yaml.safe_dump(variant, sort_keys=False))
    try:
        return not stale(probe, repo / "dvc.yaml") and table.jobs(read_params_file(probe), "snakemake") == \
            table_jobs(repo, "snakemake")
    except ValueError:  # invalid with this value
        return False
    finally:
        probe.unlink(missing_ok=True)


def params_changes(repo: Path) -> dict[str, object]:
    """key -> another value, for every leaf key whose change alone keeps the file valid and the DAG's shape."""
    tree = yaml.safe_load((repo / "params.yaml").read_text())
    out = {}
    for key, value in leaf_keys(tree):
        new = changed(value)
        if new is not None and keeps_shape(repo, with_changes(tree, {key: new})):
            out[key] = new
    return out


def readers(jobs: list[table.Job], key: str) -> set:
    return {job_id(j) for j in jobs if any(p == table.WHOLE_FILE or key == p or key.startswith(p + ".")
                                          for p in j.params)}


# ------------------------------------------------------------------- every params key, its readers only
# Each repository's own file is changed one key at a time (an earlier test changed dvc_repo's epochs: writing
# dvc_repo's file into snake_repo changes every train_refiner's epochs there). DVC: `dvc status` names each
# stage's changed params. Snakemake: `--summary` is its own comparison of each job's recorded and current
# params, made for every job (a dry run's reason names a params change only for the jobs that no upstream
# re-run masks: a reader downstream of another reader is planned as "Input files updated by another job"),
# and its plan: the readers and everything downstream of them. One call per key per engine, the two at once.
def snakemake_summary(repo: Path) -> dict[str, tuple[str, bool]]:
    """output file -> (its status, whether its job is planned), for every output of the DAG, with only the
    params trigger (`snakemake --summary`)."""
    out = run(["snakemake", "--summary", "--cores", "1", "--rerun-triggers", "params"], repo)
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 5]
    return {f: (status, plan == "update pending") for f, _, _, _, status, plan in rows if f != "output_file"}


def downstream(jobs: list[table.Job], start: set) -> set:
    """The jobs that read, directly or through other jobs, an output of a job in `start` (job ids)."""
    producer = {o.path: job_id(j) for j in jobs for o in j.outs}
    reads = {job_id(j): {producer[d] for d in j.deps if d in producer} for j in jobs}
    found: set = set()
    frontier = set(start)
    while frontier:
        frontier = {j for j, up in reads.items() if up & frontier} - found
        found |= frontier
    return found


def own_readers(jobs: list[table.Job], key: str) -> set:
    """The jobs that declare `key` itself (its section or the key), the whole-file params check aside."""
    return {job_id(j) for j in jobs if table.WHOLE_FILE not in j.params
            and any(key == p or key.startswith(p + ".") for p in j.params)}


def key_batches(keys: list[str], jobs: list[table.Job], fits) -> list[list[str]]:
    """The keys in groups whose own readers (`own_readers`) are disjoint, first fit in the given order;
    `fits(group)`: the group's changes together keep the file valid and the DAG's shape."""
    batches: list[tuple[list[str], set]] = []
    for key in keys:
        mine = own_readers(jobs, key)
        for group, taken in batches:
            if not mine & taken and fits([*group, key]):
                group.append(key)
                taken |= mine
                break
        else:
            batches.append(([key], set(mine)))
    return [group for group, _ in batches]


def dvc_reactions(status: dict[str, dict[str, set[str]]], keys: list[str]) -> dict[str, set[str]]:
    """key -> the DVC stages whose changed params name it (its section or itself): `dvc status` names
    the tracked entry that changed, so each stage's change is the key's whose name it prefixes."""
    return {key: {stage for stage, c in status.items() if any(key == p or key.startswith(p + ".") for p in c["params"])}
            for key in keys}


def test_every_params_key_reruns_exactly_its_readers(dvc_repo, snake_repo):
    """Keys are changed a batch at a time, to make ~20 engine calls instead of ~110. In a batch no two
    keys share a reader (the params check, which reads the whole file, aside), so:
    - DVC names each stage's changed entry: every key's own reacting stages, exactly;
    - Snakemake says "params changed" per job: the union over the batch, in which a job that reacted to
      a key of another reader would show as extra;
    - a batch that disagrees is run again one key at a time, so the failure names the key."""
    repos = (dvc_repo, snake_repo)
    changes = {repo: params_changes(repo) for repo in repos}
    keys = sorted(set(changes[dvc_repo]) & set(changes[snake_repo]))
    assert len(keys) > 40, keys
    original = {r: (r / "params.yaml").read_text() for r in repos}
    trees = {r: yaml.safe_load(text) for r, text in original.items()}
    jobs = {r: table_jobs(r, e) for r, e in ((dvc_repo, "dvc"), (snake_repo, "snakemake"))}
    names = {job_id(j): j.name for j in jobs[dvc_repo]}
    snake_job = {o.path: job_id(j) for j in jobs[snake_repo] for o in j.outs}
    assert snakemake_summary(snake_repo) == {f: ("ok", False) for f in snake_job}  # every output, none stale

    def variant(repo: Path, group: list[str]) -> dict:
        return with_changes(trees[repo], {k: changes[repo][k] for k in group})

    batches = key_batches(keys, jobs[snake_repo], lambda group: all(keeps_shape(r, variant(r, group)) for r in repos))
    assert sorted(k for b in batches for k in b) == keys and len(batches) < len(keys) / 2, [len(b) for b in batches]

    def check(group: list[str]) -> dict:
        """What disagrees with the table when the group's keys change together (nothing: {})."""
        for repo in repos:
            (repo / "params.yaml").write_text(yaml.safe_dump(variant(repo, group), sort_keys=False))
        status = pool.submit(dvc_changes, dvc_repo)
        summary = {snake_job.get(f, f): s for f, s in snakemake_summary(snake_repo).items()}
        reactions = dvc_reactions(status.result(), group)
        snake = {job for job, (state, _) in summary.items() if state == "params changed"}
        planned = {job for job, (_, pending) in summary.items() if pending}
        want_snake = set().union(*(readers(jobs[snake_repo], k) for k in group))
        want_plan = want_snake | downstream(jobs[snake_repo], want_snake)
        wrong = {}
        for key in group:
            want = {names[j] for j in readers(jobs[dvc_repo], key)}
            if reactions[key] != want:
                wrong[key] = {"dvc extra": reactions[key] - want, "dvc missing": want - reactions[key]}
        if snake != want_snake or planned != want_plan:
            wrong.setdefault(" + ".join(group), {}).update({
                "snakemake extra": snake - want_snake, "snakemake missing": want_snake - snake,
                "planned extra": planned - want_plan, "planned missing": want_plan - planned})
        return wrong

    wrong = {}
    try:
        with ThreadPoolExecutor(1) as pool:
            for group in batches:
                found = check(group)
                if found and len(group) > 1:  # again one key at a time: the failure names its key
                    for key in group:
                        wrong |= check([key])
                else:
                    wrong |= found
    finally:
        for repo, text in original.items():
            (repo / "params.yaml").write_text(text)
    assert not wrong, wrong
