"""workflow/constraints.txt: the package set dvc.lock's results were made with and CI tests. Every
requirement of pyproject.toml is pinned there inside its range, and setup.sh installed those pins."""

from __future__ import annotations

import os
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
