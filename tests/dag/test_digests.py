"""DVC's code dependency: the `code` stage's digests follow the checkout's files, entry by entry."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sgpose.config.paths import Paths
from sgpose.dag import digests
from sgpose.dag.table import entries
from sgpose.runtime import imports

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the package's sources, laid out as in the project (pipeline_src/sgpose)."""
    shutil.copytree(digests.package_dir(ROOT), digests.package_dir(tmp_path),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def run_code_stage(project: Path) -> dict[str, bytes]:
    subprocess.run([sys.executable, "-m", "sgpose.cli", "code", "--project", str(project)], check=True,
                   capture_output=True, cwd=ROOT)
    paths = Paths.of("-", "-", root=project)
    return {e: paths.code_digest(e).read_bytes() for e in entries()}


def test_a_digest_lists_the_closure_with_each_files_sha256(checkout):
    written = run_code_stage(checkout)
    assert set(written) == set(entries()) and "sgpose.stages.code" not in written
    for entry, raw in written.items():
        d = json.loads(raw)
        assert d["entry"] == entry
        assert list(d["files"]) == digests.code_files(entry, ROOT)  # the same closure as the installed package's
        for path, sha in d["files"].items():
            assert sha == hashlib.sha256((checkout / path).read_bytes()).hexdigest(), path


@pytest.mark.parametrize("module", ["sgpose.data.decoding", "sgpose.stages.evaluate", "sgpose.core.io"])
def test_an_edit_changes_exactly_the_digests_of_its_importers(checkout, module):
    before = run_code_stage(checkout)
    path = imports.module_path(module, digests.package_dir(checkout))
    path.write_text(path.read_text() + "\n# edited\n")
    after = run_code_stage(checkout)
    changed = {e for e in before if before[e] != after[e]}
    assert changed == {e for e in entries() if module in imports.closure(e)}
    assert changed


def test_an_import_added_to_a_module_joins_the_closure(checkout):
    """The closure is read from the checkout's files, not from the installed package."""
    before = json.loads(run_code_stage(checkout)["sgpose.stages.start_pose"])["files"]
    assert "pipeline_src/sgpose/report/page.py" not in before
    stage = digests.package_dir(checkout) / "stages" / "start_pose.py"
    stage.write_text(stage.read_text() + "\nimport sgpose.report.page  # noqa\n")
    after = json.loads(run_code_stage(checkout)["sgpose.stages.start_pose"])["files"]
    assert "pipeline_src/sgpose/report/page.py" in after


def test_a_directory_without_the_sources_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sgpose.cli", "code", "--project", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "pipeline_src/sgpose: no package sources here" in proc.stderr
    assert not (tmp_path / "results").exists()
