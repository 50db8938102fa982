"""The tiny DAG through the SLURM profile on a real one-node cluster (scripts/slurm_local.sh:
munged, slurmctld, slurmd; no GPU, no accounting): the metrics equal a local run's, every rule's
resources (params.yaml `resources:`) reach the scheduler, a failing job is retried and reported with
its log, a killed Snakemake resumes without redoing finished jobs, the `gpu` resource becomes
`--gpus` in the sbatch line (refused here: the node has no GPU), and a refiner whose job hits its time
limit, then is sent SIGTERM (`scancel --signal=TERM`, as preemption), resumes twice at the step it
reached and ends with the bytes of an uninterrupted run."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import MIRROR
from sgpose.config import read_params_file
from sgpose.core.io import TMP_MARK
from sgpose.dag import table
from workflow_helpers import EVALUATIONS, ROOT, TINY_RESOURCES, make_repo, metrics_of
from workflow_helpers import run as run_local

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

SCRIPT = ROOT / "scripts" / "slurm_local.sh"
PROFILE = "workflow/profiles/slurm"
FAILS_ONCE = ("evaluate", "--backbone r18 --variant A1")  # the job the sgpose shim fails on its first attempt
KILL_AFTER = 12  # finished jobs before Snakemake is killed (of 39)


def slurm_command(*extra: str) -> list[str]:
    """`snakemake --profile workflow/profiles/slurm` for the local cluster: the profile's default
    resources with no account (no accounting database to check one against), status through squeue
    (no sacct), first status check after a second; the plugin's debug lines show each sbatch call."""
    profile = yaml.safe_load((ROOT / PROFILE / "config.yaml").read_text())
    defaults = {**profile["default-resources"], "slurm_account": "''"}
    return ["snakemake", "--profile", PROFILE, "--default-resources", *(f"{k}={v}" for k, v in defaults.items()),
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
            "--latency-wait", "5", "--verbose", *extra]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The running cluster's environment; its daemons and jobs are always stopped at the end."""
    missing = [exe for exe in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(exe)]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} not found): scripts/test_setup.sh "
                    "installs Debian's slurm-wlm and munge with apt-get")
    if os.geteuid() != 0:
        pytest.skip("the one-node SLURM cluster runs its daemons as root")
    root = tmp_path_factory.mktemp("slurm")
    try:
        started = subprocess.run([str(SCRIPT), "start", str(root)], capture_output=True, text=True, timeout=120)
        if started.returncode:
            message = f"slurm_local.sh start failed:\n{started.stdout}{started.stderr}"
            pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
        venv = Path(sys.executable).parent
        # the mirror as an absolute path: jobs run in the repository copy, where CI's ../shared/data is not
        yield {**os.environ, "SGPOSE_MIRROR": str(MIRROR), "SLURM_CONF": str(root / "slurm.conf"),
               "PATH": os.pathsep.join([str(root / "bin"), str(venv), os.environ["PATH"]])}
    finally:
        subprocess.run([str(SCRIPT), "stop", str(root)], capture_output=True, timeout=120)


def run(cmd: list[str], cwd: Path, env: dict, ok: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-6000:]}"
    return out


def failing_once_shim(bindir: Path, marker: Path) -> None:
    """`sgpose` that fails the FAILS_ONCE job's first attempt (writes `marker`), else runs the real one."""
    bindir.mkdir()
    real = Path(sys.executable).parent / "sgpose"
    (bindir / "sgpose").write_text(
        "#!/bin/sh\n"
        # the rule adds options after the stage's own (--threads N): match the start of the command line
        f'case "$*" in "{" ".join(FAILS_ONCE)}"*) first=1;; *) first=;; esac\n'
        f'if [ -n "$first" ] && [ ! -e {marker} ]; then\n'
        # stdout reaches the SLURM log; stderr the rule's log (overwritten by the retry)
        f"  touch {marker}; echo 'sgpose test shim: injected failure' | tee /dev/stderr; exit 3\nfi\n"
        f'exec {real} "$@"\n')
    (bindir / "sgpose").chmod(0o755)


def submissions(log: str) -> dict[str, tuple[str, str]]:
    """Snakemake job id -> (rule, wildcards) of every sbatch submission in a Snakemake log."""
    found = re.findall(r"Job (\d+) has been submitted with SLURM jobid \d+ \(log: .*?/slurm_logs/rule_(\w+?)/(\S*)/\d+\.log\)",
                       log)
    return {jid: (rule, wc) for jid, rule, wc in found}


def finished(log: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of the jobs a Snakemake log reports finished."""
    subs = submissions(log)
    return {subs[jid] for jid in re.findall(r"^Finished jobid: (\d+) \(Rule: \w+\)", log, flags=re.M) if jid in subs}


def scheduler_jobs(env: dict) -> list[dict[str, str]]:
    """Every job slurmctld knows (MinJobAge keeps finished ones), as `scontrol show job -o` fields."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], env=env, capture_output=True, text=True, check=True).stdout
    return [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines() if line.strip()]


def minutes(limit: str) -> int:
    """SLURM's [D-]HH:MM:SS time limit in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = map(int, hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + s // 60


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny grid through the SLURM profile: killed (SIGKILL) after KILL_AFTER finished jobs, its
    leftover jobs cancelled, refused by the stale lock, unlocked, run again to the end."""
    work = tmp_path_factory.mktemp("slurm_dag")
    repo = make_repo(work / "repo", {"resources": TINY_RESOURCES})
    failing_once_shim(work / "shim", work / "failed-once")
    env = {**cluster, "PATH": f"{work / 'shim'}{os.pathsep}{cluster['PATH']}"}
    first_log = work / "first.log"
    start = time.monotonic()
    with first_log.open("w") as out:
        proc = subprocess.Popen(slurm_command(), cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        while proc.poll() is None and len(finished(first_log.read_text())) < KILL_AFTER:
            time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first_s = time.monotonic() - start
    first = first_log.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", first).group(1)
    subprocess.run(["scancel", "--name", run_id], env=env, check=True)
    while subprocess.run(["squeue", "-h", "--name", run_id, "-t", "PD,R,CG"], env=env, capture_output=True,
                         text=True).stdout.strip():
        time.sleep(1)
    # the outputs at the kill; a job cancelled mid-write leaves its temporary (<name>.tmp-<pid>), which the
    # resumed run's writer of that output removes (sgpose.core.io.atomic_path): not an output, and gone later
    files = [p for p in (repo / "results").rglob("*") if p.is_file()]
    done_at_kill = {p: p.stat().st_mtime_ns for p in files if TMP_MARK not in p.name}
    temporaries_at_kill = [p for p in files if TMP_MARK in p.name]
    locked = run(slurm_command(), repo, env, ok=False)
    run(slurm_command("--unlock"), repo, env)
    start = time.monotonic()
    second = run(slurm_command(), repo, env)
    second_s = time.monotonic() - start
    kept = {p for p, mtime in done_at_kill.items() if p.is_file() and p.stat().st_mtime_ns == mtime}
    left = [p for p in (repo / "results").rglob("*") if TMP_MARK in p.name]
    return {"repo": repo, "env": env, "first": first, "second": second, "kept": kept, "locked": locked,
            "temporaries_at_kill": temporaries_at_kill, "temporaries_left": left,
            "seconds": first_s + second_s, "metrics": metrics_of(repo), "gpu_probe": gpu_probe(repo, env)}


def gpu_probe(repo: Path, env: dict) -> str:
    """Snakemake's output for r18's train_backbone re-run with gpu=1 in the gpu partition: on a GPU
    cluster the `gpu` resource becomes --gpus; this node has none, so sbatch refuses the job (last:
    it removes that backbone's outputs)."""
    return run(slurm_command("--set-resources", "train_backbone:gpu=1", "train_backbone:slurm_partition=gpu",
                             "--forcerun", "train_backbone", "--", "results/tiny/r18/backbone.pt"), repo, env, ok=False)


def test_the_tiny_dag_on_slurm_gives_the_local_metrics(slurm_run, snakemake_tiny_run):
    local_repo, local_s = snakemake_tiny_run
    slurm = slurm_run["metrics"]
    assert set(slurm) == EVALUATIONS and slurm == metrics_of(local_repo)
    assert (slurm_run["repo"] / "results" / "report" / "index.html").is_file()
    jobs = len(re.findall(r"has been submitted with SLURM jobid", slurm_run["first"] + slurm_run["second"]))
    print(f"\nSLURM: {jobs} sbatch submissions, {slurm_run['seconds']:.0f} s (killed and resumed); "
          f"local --cores 2: {local_s:.0f} s")


def test_every_rule_gets_its_resources_from_sbatch(slurm_run):
    profile = yaml.safe_load((ROOT / PROFILE / "config.yaml").read_text())
    gpu_partition = {rule for rule, res in profile["set-resources"].items() if res.get("slurm_partition") == "gpu"}
    jobs = [j for j in scheduler_jobs(slurm_run["env"]) if j.get("WorkDir") == str(slurm_run["repo"])]
    rules = set()
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)
        want = TINY_RESOURCES[rule]
        got = {"threads": int(job["NumCPUs"]), "mem_mb": int(job["MinMemoryNode"].removesuffix("M")),
               "runtime": minutes(job["TimeLimit"]), "gpu": 0 if job["TRES"].count("gres/gpu") == 0 else 1}
        assert got == want, (job["JobId"], job["Comment"], got, want)
        assert job["Partition"] == ("gpu" if rule in gpu_partition else "cpu"), (job["Comment"], job["Partition"])
        rules.add(rule)
        print(f"{job['JobId']:>3} {job['JobState']:<10} {job['Partition']:<4} cpus={got['threads']} "
              f"mem={got['mem_mb']}M time={job['TimeLimit']} {job['Comment']}")
    in_dag = {j.stage for j in table.jobs(read_params_file(slurm_run["repo"] / "params.yaml"), "snakemake")}
    assert rules == in_dag, f"rules never submitted: {in_dag - rules}"


def test_a_failing_job_is_retried_and_reported_with_its_log(slurm_run):
    log = slurm_run["first"] + slurm_run["second"]
    rule, args = FAILS_ONCE
    reports = re.findall(rf"^Error in rule {rule}:\n(?:[ \t]+.*\n)+", log, flags=re.M)
    slurm_logs = [m for r in reports for m in re.findall(rf"(/\S+/slurm_logs/rule_{rule}/\S+?\.log)", r)]
    assert slurm_logs, f"the failed attempt was not reported with its SLURM log: {reports}"
    assert "sgpose test shim: injected failure" in Path(slurm_logs[0]).read_text()
    calls = [c for c in re.findall(r"^sbatch call: (.*)$", log, flags=re.M) if f"--comment rule_{rule}_" in c
             and "r18" in c and "A1" in c]
    assert [bool(re.search(r"--attempt 2\b", c)) for c in calls] == [False, True], calls
    assert "A1" in {key[2] for key in slurm_run["metrics"]}


def test_a_killed_run_resumes_without_redoing_finished_jobs(slurm_run):
    done = finished(slurm_run["first"])
    redone = done & set(submissions(slurm_run["second"]).values())
    assert len(done) >= KILL_AFTER and not redone, f"finished before the kill and submitted again: {redone}"
    assert "LockException" in slurm_run["locked"] and "--unlock" in slurm_run["locked"]
    assert slurm_run["repo"] / "results/tiny/r18/backbone.pt" in slurm_run["kept"]  # finished before the kill
    assert not slurm_run["temporaries_left"], (slurm_run["temporaries_at_kill"], slurm_run["temporaries_left"])
    print(f"\nkilled after {len(done)} finished jobs; the resumed run submitted "
          f"{len(submissions(slurm_run['second']))} jobs, none of them finished before")


def test_a_gpu_rule_asks_sbatch_for_gpus(slurm_run):
    """The sbatch line the plugin forms for `gpu: 1` (printed for docs/cluster.md)."""
    out = slurm_run["gpu_probe"]
    call = re.search(r"^\s*sbatch call:\s*\n?\s*(sbatch .*--comment rule_train_backbone.*)$", out, flags=re.M)
    assert call and "--gpus=1" in call.group(1) and "-p gpu" in call.group(1), out[-3000:]
    assert "gres" in out.lower(), out[-3000:]
    print("\n" + re.sub(r' --wrap=".*', ' --wrap="..."', call.group(1)))


REFINER = "results/tiny/r18/ours/refiner.pt"
REFINER_LOG = Path("logs/train_refiner/tiny-r18-ours.log")  # the rule's log (sgpose's stderr)
# the long refiner trains about this long here: far longer than the test's poll (1 s), so that an attempt
# the test sees training is still training when the test freezes it, whichever machine runs it
TRAINING_SECONDS = 60
EPOCH_LINE = r"refiner ours epoch \d+: loss"
RESUMED = r"resuming from \S+ \(step \d+ of epoch \d+\)"


def _md5s(repo: Path) -> dict[str, str]:
    return {name: hashlib.md5((repo / REFINER).with_name(name).read_bytes()).hexdigest()
            for name in ("refiner.pt", "train_log.csv")}


def _epoch_seconds(log: str) -> float:
    """The median epoch time in a train_refiner log
    (`refiner ours epoch 3: loss 1.9e-03, val AP 0.0000 (0.5 s, 0.0 s waiting for batches)`)."""
    times = sorted(float(t) for t in re.findall(r"refiner ours epoch \d+: loss [^(\n]*\(([\d.]+) s[,)]", log))
    assert times, f"no epoch times in the train_refiner log:\n{log[-2000:]}"
    return times[len(times) // 2]


@pytest.fixture(scope="module")
def long_refiner(tmp_path_factory) -> tuple[Path, int, dict[str, str]]:
    """The tiny grid's r18 alone (no ablation), its train cache and start pose built by a local Snakemake;
    train_refiner in batches of 2 (4 steps an epoch) for as many epochs as take TRAINING_SECONDS here (a
    20-epoch run measures it); the md5s of refiner.pt and train_log.csv of that run uninterrupted (local)."""
    repo = make_repo(tmp_path_factory.mktemp("slurm_limit") / "repo", {"resources": TINY_RESOURCES})
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, name in (("datasets", "tiny_crowd"), ("backbones", "cp"), ("evals", "cp")):
        params[section].pop(name)
    params["ablation"]["variants"] = []

    def train(epochs: int) -> None:
        params["train_refiner"].update(epochs=epochs, batch_size=2)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_local(["sgpose", "dag"], repo)
        run_local(["snakemake", "--cores", "2", REFINER], repo)

    train(20)
    epochs = max(math.ceil(TRAINING_SECONDS / _epoch_seconds((repo / REFINER_LOG).read_text())), 40)
    train(epochs)
    want = _md5s(repo)
    for name in want:
        (repo / REFINER).with_name(name).unlink()
    (repo / REFINER_LOG).unlink()  # the test reads this log as each attempt writes it
    return repo, epochs, want


def _refiner_jobs(env: dict, repo: Path) -> list[dict[str, str]]:
    """The train_refiner jobs of `repo` slurmctld knows, oldest first."""
    return sorted((j for j in scheduler_jobs(env) if j.get("WorkDir") == str(repo)
                   and j["Comment"].startswith("rule_train_refiner")), key=lambda j: int(j["JobId"]))


def _wait_for(check, proc: subprocess.Popen, what: str, timeout: float = 900):
    """Poll `check()` until it returns something true; fail if Snakemake ends first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        assert proc.poll() is None, f"Snakemake ended before {what}"
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def _training(env: dict, repo: Path, attempt: int, pattern: str):
    """A check: attempt `attempt`'s job is running and the rule's log matches `pattern` (its text, or None)."""
    def check() -> str | None:
        jobs = _refiner_jobs(env, repo)
        text = (repo / REFINER_LOG).read_text() if (repo / REFINER_LOG).is_file() else ""
        running = len(jobs) == attempt and jobs[-1]["JobState"] == "RUNNING"
        return text if running and re.search(pattern, text) else None
    return check


def _stage_pids(repo: Path) -> list[int]:
    """The processes of `sgpose train_refiner` running in `repo` (this machine is the cluster's node)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            stage = any(a.endswith(b"sgpose") and b == b"train_refiner" for a, b in zip(args, args[1:]))
            if stage and (proc / "cwd").resolve() == repo.resolve():
                found.append(int(proc.name))
        except OSError:  # ended meanwhile
            continue
    return found


def _status(pid: int) -> dict[str, str]:
    try:
        return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    except OSError:
        return {}


def _freeze(repo: Path) -> int:
    """SIGSTOP the attempt's training process (the test's own signal: SLURM's `scancel --signal=STOP` stops
    the job's shell but not the stage Snakemake started in its own session), once it is stopped (state T)."""
    deadline = time.monotonic() + 60
    while len(pids := _stage_pids(repo)) != 1:
        assert time.monotonic() < deadline, f"not one train_refiner process in {repo}: {pids}"
        time.sleep(0.2)
    os.kill(pids[0], signal.SIGSTOP)
    while not _status(pids[0]).get("State", "T").startswith("T"):
        time.sleep(0.1)
    return pids[0]


def _thaw_on_sigterm(pid: int, timeout: float = 300) -> None:
    """Once SIGTERM is pending on the frozen process (SLURM's time limit, or scancel: KillWait gives 30 s
    before SIGKILL), SIGCONT it: the stage handles the SIGTERM at the step the test froze it in."""
    deadline = time.monotonic() + timeout
    while (status := _status(pid)) and status["State"].startswith("T"):
        pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
        if pending >> (signal.SIGTERM - 1) & 1:
            break
        assert time.monotonic() < deadline, f"no SIGTERM reached the frozen training ({pid}) in {timeout} s"
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:  # SLURM's own SIGCONT came first, and the stage has ended
        pass


def test_a_time_limit_and_a_sigterm_inside_training_resume_to_the_same_bytes(cluster, long_refiner, tmp_path):
    """Issue 27, its sequence decided by the test, so that no machine's speed decides the outcome (issue 36).
    Attempt 1 has a 1-minute time limit (`runtime: 1+9*(attempt>1)`); once it has trained an epoch the test
    freezes its training (SIGSTOP), so that it is inside training when slurmctld ends the job at the limit
    (SIGTERM; KillWait: SIGKILL 30 s later); with the SIGTERM pending the test thaws it (SIGCONT): the stage
    saves a resume point at the step it reached and exits; the job ends TIMEOUT and is resubmitted. Attempt 2
    resumes at that step; once it has trained an epoch the test freezes it, sends `scancel --signal=TERM`
    (what preemption sends) and thaws it: it saves and exits 143, FAILED, resubmitted; attempt 3 resumes
    there and finishes. The refiner's bytes equal the uninterrupted run's."""
    repo, epochs, want = long_refiner
    env = cluster
    log = tmp_path / "snakemake.log"
    with log.open("w") as out:
        proc = subprocess.Popen(slurm_command("--set-resources", "train_refiner:runtime=1+9*(attempt>1)", "--retries", "2",
                                              "--", REFINER), cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            _wait_for(_training(env, repo, 1, EPOCH_LINE), proc, "attempt 1 to train an epoch")
            _thaw_on_sigterm(_freeze(repo))  # frozen until SLURM's time limit sends SIGTERM
            second_log = _wait_for(_training(env, repo, 2, RESUMED + r"[\s\S]*" + EPOCH_LINE), proc,
                                   "attempt 2 to resume and train an epoch")
            pid = _freeze(repo)
            subprocess.run(["scancel", "--signal=TERM", _refiner_jobs(env, repo)[1]["JobId"]], env=env, check=True)
            _thaw_on_sigterm(pid)
            proc.wait(timeout=1800)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    assert proc.returncode == 0, out[-6000:]
    jobs = _refiner_jobs(env, repo)
    assert [j["JobState"] for j in jobs] == ["TIMEOUT", "FAILED", "COMPLETED"], [(j["JobId"], j["JobState"]) for j in jobs]
    assert [minutes(j["TimeLimit"]) for j in jobs] == [1, 10, 10]
    stops = []
    for job in jobs[:2]:  # each stopped attempt's SLURM log (kept): the stop line sgpose also prints on stdout
        slurm_log = next(repo.glob(f".snakemake/slurm_logs/rule_train_refiner/*/{job['JobId']}.log")).read_text()
        found = re.findall(r"^sgpose train_refiner: stopped by SIGTERM at step (\d+)/4 of epoch (\d+); resume point "
                           r"results/tiny/r18/ours/refiner\.pt\.last saved: a rerun continues from there \(exit 143\)$",
                           slurm_log, flags=re.M)
        assert len(found) == 1, slurm_log[-3000:]
        stops.append(found[0])
    resumed = [re.search(r"resuming from results/tiny/r18/ours/refiner\.pt\.last \(step (\d+) of epoch (\d+)\)", text).groups()
               for text in (second_log, (repo / REFINER_LOG).read_text())]
    assert resumed == stops, (stops, resumed)  # each attempt continued at the step the one before stopped
    assert int(stops[0][1]) < int(stops[1][1]) < epochs  # attempt 2 trained on; attempt 3 had epochs left
    assert _md5s(repo) == want and not (repo / REFINER).with_name("refiner.pt.last").exists()
    print(f"\n{epochs} epochs of 4 steps; attempt 1 (1-minute limit): SIGTERM at step {stops[0][0]} of epoch "
          f"{stops[0][1]}; attempt 2 resumed there, scancel --signal=TERM at step {stops[1][0]} of epoch {stops[1][1]}; "
          f"attempt 3 resumed there and finished: refiner.pt md5 {_md5s(repo)['refiner.pt']} = the uninterrupted run's")
