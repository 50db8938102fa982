"""A stage's code dependencies: the import closure, read from the source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sgpose.dag.table import STAGES
from sgpose.runtime import imports

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(tmp_path) -> Path:
    """A tiny package `sgpose` with every import form the scanner must follow."""
    pkg = tmp_path / "sgpose"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "entry.py": "import os\nfrom sgpose import util\nfrom . import rel\n\ndef f():\n    import sgpose.sub.lazy\n",
        "util.py": "from sgpose.sub.deep import X\n",
        "rel.py": "",
        "alone.py": "import sgpose.entry\n",
        "sub/__init__.py": "",
        "sub/deep.py": "X = 1\nfrom .sibling import Y\n",
        "sub/sibling.py": "Y = 2\n",
        "sub/lazy.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    return pkg


def test_closure_follows_every_import_form(fake):
    imports.direct_imports.cache_clear()
    imports.closure.cache_clear()
    got = imports.closure("sgpose.entry", fake)
    assert got == {"sgpose", "sgpose.entry", "sgpose.util", "sgpose.rel", "sgpose.sub", "sgpose.sub.deep",
                   "sgpose.sub.sibling", "sgpose.sub.lazy"}
    assert "sgpose.alone" not in got  # who imports the entry is not a dependency of it
    files = [p.relative_to(fake).as_posix() for p in imports.module_files("sgpose.entry", fake)]
    assert files == sorted(files) and "sub/__init__.py" in files and "alone.py" not in files
    assert imports.importers("sgpose.sub.sibling", ["sgpose.entry", "sgpose.rel"], fake) == ["sgpose.entry"]


@pytest.mark.parametrize("entry", sorted({s.entry for s in STAGES}))
def test_closure_holds_everything_python_loads(entry):
    """The scanner never misses a module: importing the entry loads only modules of its closure."""
    code = f"import json, sys, {entry}; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'sgpose')))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=ROOT).stdout)
    assert set(loaded) - imports.UNTRACKED <= imports.closure(entry), set(loaded) - imports.closure(entry)


def test_no_stage_imports_another():
    stages = {m for m in imports.all_modules() if m.startswith("sgpose.stages.") and m != "sgpose.stages"}
    crossing = {m: sorted(imports.closure(m) & stages - {m}) for m in stages}
    assert not {m: c for m, c in crossing.items() if c}, crossing
