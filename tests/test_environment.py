"""workflow/constraints.txt: the package set dvc.lock's results were made with and CI tests. Every
requirement of pyproject.toml is pinned there inside its range, and setup.sh installed those pins.
`source scripts/setup.sh` at a prompt leaves the shell's options and directory as they were."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def pins(path: Path = REPO / "workflow" / "constraints.txt") -> dict[str, Version]:
    """{canonical name: pinned version} of a constraints file (`name==version` lines, # comments)."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path}:{n}: {line!r} is not name==version"
        out[canonicalize_name(name)] = Version(version)
    return out


def requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and every optional group's."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project.get("optional-dependencies", {}).values()]
    return [Requirement(r) for group in groups for r in group]


def test_every_requirement_is_pinned_inside_its_range():
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} (pyproject.toml) has no pin in workflow/constraints.txt: run scripts/pin.sh"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"workflow/constraints.txt pins {name}=={pinned[name]}, outside pyproject.toml's {req}"


def test_a_pin_line_that_is_not_name_equals_version_is_an_error(tmp_path):
    bad = tmp_path / "c.txt"
    bad.write_text("# header\nnumpy==2.4.6\nscipy>=1.0\n")
    with pytest.raises(AssertionError, match="c.txt:3"):
        pins(bad)


@pytest.mark.skipif(os.environ.get("SGPOSE_UNPINNED") == "1", reason="SGPOSE_UNPINNED=1: setup.sh installed the newest releases")
def test_the_environment_holds_the_pinned_versions():
    """What setup.sh installed is what dvc.lock's results were made with (torch by its public version:
    the pin says 2.13.0, the CPU build on disk is 2.13.0+cpu)."""
    differ = {}
    for name, version in pins().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue  # pinned for another group (the tests' xtcocotools build tools), not installed here
        if Version(installed.public) != version:
            differ[name] = f"{installed} installed, {version} pinned"
    assert not differ, f"the environment is not workflow/constraints.txt's (rerun scripts/setup.sh): {differ}"
    for req in requirements():  # and nothing sgpose needs is missing
        assert metadata.version(req.name), req


def _interactive(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """`script` run by an interactive bash (`bash -i`: as at a prompt), without the user's rc files."""
    return subprocess.run(["bash", "--norc", "-i", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PS1": "$ "}, timeout=600)


def test_sourcing_setup_at_a_prompt_leaves_the_shell_as_it_was(tmp_path):
    """Issue 27: `source scripts/setup.sh` left `set -euo pipefail` in the user's shell, which then closed
    on the first failing command. Now only PATH changes; a failed setup says so and the shell goes on."""
    done = _interactive(f"source {REPO}/scripts/setup.sh; echo rc=$?; echo dir=$PWD; set -o; false; echo still here; "
                        "command -v sgpose", tmp_path)
    out = done.stdout
    assert "rc=0" in out and f"dir={tmp_path}" in out and "still here" in out, done.stderr[-2000:]
    for option in ("errexit", "nounset", "pipefail"):
        assert re.search(rf"^{option}\s+off$", out, flags=re.M), option
    assert out.strip().endswith(str(REPO / ".venv" / "bin" / "sgpose"))
    broken = tmp_path / "broken"
    (broken / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", broken / "scripts" / "setup.sh")  # no .venv, no python: fails
    done = _interactive(f"PYTHON=/nonexistent source {broken}/scripts/setup.sh; echo rc=$?; false; echo still here",
                        tmp_path)
    assert "rc=1" in done.stdout and "still here" in done.stdout, done.stderr[-2000:]
    assert "sgpose setup: failed (see above); your shell is as it was" in done.stderr
