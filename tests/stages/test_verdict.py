"""`sgpose verdict`: the lock a run wrote against the committed one, output by output, with an exit
status that fails where the run made other bytes, even after DVC staged its lock (core.autostage), which
is what `git diff dvc.lock` could not see."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from sgpose.cli import main

LOCK = {"schema": "2.0", "stages": {
    "train": {"cmd": "sgpose train", "deps": [{"path": "a", "md5": "1" * 32}],
              "outs": [{"path": "results/model.pt", "md5": "2" * 32, "size": 5}]},
    "eval": {"cmd": "sgpose eval", "deps": [{"path": "results/model.pt", "md5": "2" * 32}],
             "outs": [{"path": "results/metrics.json", "md5": "3" * 32, "size": 7},
                      {"path": "results/cache", "md5": "4" * 32 + ".dir", "size": 9}]}}}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK, sort_keys=False))
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-qm", "recorded run")
    return tmp_path


def verdict(repo: Path, capsys) -> tuple[int, str]:
    status = main(["verdict", "--lock", str(repo / "dvc.lock")])
    out = capsys.readouterr()
    return status, out.out + out.err


def rewrite(repo: Path, change) -> None:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    change(lock)
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


def test_the_recorded_lock_is_reproduced(repo, capsys):
    assert verdict(repo, capsys) == (0, "sgpose verdict: reproduced the recorded run: 3 outputs byte for byte\n")


def test_other_bytes_fail_even_once_dvc_has_staged_the_lock(repo, capsys):
    rewrite(repo, lambda lock: lock["stages"]["eval"]["outs"][1].update(md5="5" * 32 + ".dir"))
    git(repo, "add", "dvc.lock")  # what DVC's core.autostage does after writing the lock
    assert subprocess.run(["git", "diff", "--exit-code", "dvc.lock"], cwd=repo).returncode == 0  # the old check: blind
    status, text = verdict(repo, capsys)
    assert status == 1
    assert ("differs from the recorded run in 1 of 3 outputs (first: results/cache, " + "5" * 32 + ".dir here, "
            + "4" * 32 + ".dir recorded); next: `sgpose doctor`") in text


def test_the_first_differing_output_is_named_in_the_dags_order(repo, capsys):
    def change(lock):
        lock["stages"]["train"]["outs"][0]["md5"] = "6" * 32
        lock["stages"]["eval"]["outs"][0]["md5"] = "7" * 32
    rewrite(repo, change)
    status, text = verdict(repo, capsys)
    assert status == 1 and "in 2 of 3 outputs (first: results/model.pt, " in text


def test_an_output_not_made_differs(repo, capsys):
    rewrite(repo, lambda lock: lock["stages"].pop("eval"))
    status, text = verdict(repo, capsys)
    assert status == 1 and "in 2 of 3 outputs (first: results/metrics.json, not made here" in text


def test_the_same_outputs_under_other_dependencies_are_no_reproduction(repo, capsys):
    """The lock of other code (a dependency's hash) is not the recorded run, whatever its outputs."""
    rewrite(repo, lambda lock: lock["stages"]["train"]["deps"][0].update(md5="8" * 32))
    status, text = verdict(repo, capsys)
    assert status == 1 and "made the recorded run's 3 outputs byte for byte, but dvc.lock differs" in text


def test_without_a_recorded_lock_there_is_no_verdict(tmp_path, capsys):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    status, text = verdict(tmp_path, capsys)
    assert status == 2 and f"{tmp_path / 'dvc.lock'}: not in a git checkout: no recorded run to compare with" in text
    git(tmp_path, "init", "-q")
    status, text = verdict(tmp_path, capsys)
    assert status == 2 and "no recorded lock at HEAD" in text
