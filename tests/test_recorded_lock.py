"""The recorded dvc.lock belongs to this tree's code: what README's command 1 is compared with (`sgpose
verdict`) was made by the code a clone runs. Seconds, no training: the `code` stage's digests written from
a copy of the tree and compared with the lock's, and DVC's own status of that stage's dependency (the
package directory's hash). A commit that edits pipeline_src/ without recording the lock again fails here."""

from __future__ import annotations

import hashlib
import json
import subprocess

import yaml
from conftest import REPO, copy_project
from sgpose.cli import main
from sgpose.dag.table import CODE_STAGE


def recorded_code_outputs() -> dict[str, str]:
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for o in lock["stages"][CODE_STAGE]["outs"]}


def test_every_code_digest_in_the_recorded_lock_is_this_trees(tmp_path):
    project = copy_project(tmp_path)
    assert main(["code", "--project", str(project)]) == 0
    made = {path: hashlib.md5((project / path).read_bytes()).hexdigest() for path in recorded_code_outputs()}
    stale = sorted(p for p, md5 in recorded_code_outputs().items() if made[p] != md5)
    assert not stale, (f"dvc.lock records other code than this tree's for {stale}: record the lock again from a "
                       "fresh clone's command 1 (docs/reproducibility.md)")
    assert len(made) == len(list((project / "results" / "code").glob("*.json")))  # no entry unrecorded


def test_the_recorded_package_hash_is_this_trees(tmp_path):
    project = copy_project(tmp_path)
    proc = subprocess.run(["dvc", "status", CODE_STAGE, "--json"], cwd=project, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    changed = [c["changed deps"] for c in json.loads(proc.stdout or "{}").get(CODE_STAGE, []) if "changed deps" in c]
    assert not changed, f"dvc.lock's {CODE_STAGE} stage depends on other sources than this tree's: {changed}"
