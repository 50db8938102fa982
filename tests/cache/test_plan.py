"""What a cache shard's fingerprint holds of the code: the cache stage's import closure, without the modules
that change how it runs (threads, locks, the import scanner) or that shape no feature (downloads, the DAG)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sgpose.cache import plan, shards
from sgpose.runtime import imports

PACKAGE = Path(imports.ROOT)
UNSHAPING = ["data/download.py", "data/archives.py", "dag/table.py", "dag/digests.py", "runtime/threads.py",
             "runtime/locks.py", "runtime/imports.py", "method/guidance.py", "cli.py"]
SHAPING = ["models/resnet.py", "data/dataset.py", "data/targets.py", "cache/writer.py", "cache/build.py",
           "runtime/compute.py", "controlled/perturb.py"]


def _digest(root: Path) -> str:
    imports.direct_imports.cache_clear()
    imports.closure.cache_clear()
    return shards.code_digest(imports.module_files(plan.STAGE, root), root)


@pytest.fixture
def package(tmp_path) -> Path:
    root = tmp_path / "sgpose"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    yield root
    imports.direct_imports.cache_clear()
    imports.closure.cache_clear()


def test_the_fingerprint_code_is_the_stage_closure():
    assert plan.code_digest() == _digest(PACKAGE)
    files = {p.relative_to(PACKAGE).as_posix() for p in imports.module_files(plan.STAGE)}
    assert not files & set(UNSHAPING) and set(SHAPING) <= files


@pytest.mark.parametrize("module", UNSHAPING)
def test_editing_a_module_that_shapes_no_feature_keeps_every_shard(package, module):
    before = _digest(package)
    with (package / module).open("a") as f:
        f.write("\n# edited\n")
    assert _digest(package) == before


@pytest.mark.parametrize("module", SHAPING)
def test_editing_a_module_that_shapes_features_rebuilds_the_shards(package, module):
    before = _digest(package)
    with (package / module).open("a") as f:
        f.write("\n# edited\n")
    assert _digest(package) != before
