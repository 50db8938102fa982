"""Shared test fixtures: the real-data mirror and instance tables built by the real `prepare` code."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from sgpose.data.coco import instances_from_gt, load_coco
from sgpose.keypoints import COCO

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SGPOSE_MIRROR") or REPO.parent / "shared" / "data").resolve()
FIXTURE_COCO = MIRROR / "fixtures" / "coco"


def require(path: Path) -> Path:
    """A mirror file the test needs: skipped outside CI when absent, a failure in CI (CI=true)."""
    if not path.exists():
        message = f"{path} not available (set SGPOSE_MIRROR to the shared data mirror)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def fixture_instances(input_size: tuple[int, int], coco_json: Path = FIXTURE_COCO / "test_coco.json") -> pd.DataFrame:
    """The instance table of every labelled person of a COCO json, as `sgpose prepare` builds it."""
    coco = load_coco(require(coco_json), COCO)
    return instances_from_gt(coco, [im["id"] for im in coco["images"]], COCO, aspect=input_size[1] / input_size[0])
