"""The code style of ruff.toml holds for the package, the tests, the benchmarks and the scripts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (the `test` extra installs it)")
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "pipeline_src", "tests", "benchmarks",
                           "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
