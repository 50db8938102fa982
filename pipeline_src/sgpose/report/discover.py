"""Find what the stages have written under results/: every `<ds>/<bb>/<variant>/metrics.json`,
and what each dataset and backbone directory is (for the paper's Tables 2-4).

Nothing here is invented: a run that has no metrics.json simply has no entry.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sgpose.io import read_json

log = logging.getLogger(__name__)
CROWDPOSE_KEYS = ("AP_easy", "AP_medium", "AP_hard")  # what evaluate writes for CrowdPose (issue 7)
DETECTION_BOXES = ("det", "detection", "detections")  # metrics.json `boxes` values meaning detector boxes


@dataclass(frozen=True)
class Run:
    """One evaluated run: results/<dataset>/<backbone>/<variant>/metrics.json."""

    dataset: str
    backbone: str
    variant: str
    metrics: dict


def find_runs(results: Path) -> list[Run]:
    """Every evaluated run under `results`, sorted by path; unreadable files are skipped with a warning."""
    runs = []
    for path in sorted(Path(results).glob("*/*/*/metrics.json")):
        try:
            metrics = read_json(path)
        except ValueError as err:
            log.warning("skipping %s", err)
            continue
        runs.append(Run(path.parts[-4], path.parts[-3], path.parts[-2], metrics))
    return runs


def select(runs: list[Run], dataset: str | None = None, backbone: str | None = None) -> list[Run]:
    """The runs of one dataset and/or backbone."""
    return [r for r in runs if dataset in (None, r.dataset) and backbone in (None, r.backbone)]


def by_variant(runs: list[Run]) -> dict[str, dict]:
    """variant -> metrics for runs of one (dataset, backbone)."""
    return {r.variant: r.metrics for r in runs}


def is_crowdpose(run: Run) -> bool:
    """CrowdPose runs: metrics carry AP_easy/medium/hard, or the dataset is named crowdpose*."""
    return all(k in run.metrics for k in CROWDPOSE_KEYS) or run.dataset.lower().startswith("crowdpose")


def uses_detections(run: Run) -> bool:
    """COCO runs scored on detector boxes: metrics.json `boxes` says so, or the dataset name ends `_det`."""
    boxes = str(run.metrics.get("boxes", "")).lower()
    return boxes in DETECTION_BOXES or run.dataset.lower().endswith("_det")


def paper_backbone_name(backbone_dir: str, attrs: dict | None = None) -> str | None:
    """The paper's name for a backbone (`SimpleBaseline-R50`, `HRNet-W32`), from the cache's `backbone`
    attribute when known, else from a directory name like `sb_r50` / `hrnet_w32`; None if neither says."""
    bp = (attrs or {}).get("backbone")
    if isinstance(bp, dict) and bp.get("arch") == "hrnet":
        return f"HRNet-W{bp.get('width')}"
    if isinstance(bp, dict) and bp.get("arch", "simple_baseline") == "simple_baseline" and bp.get("depth"):
        return f"SimpleBaseline-R{bp['depth']}"
    name = backbone_dir.lower()
    if m := re.search(r"hrnet[_-]?w(\d+)", name):
        return f"HRNet-W{m.group(1)}"
    if m := re.search(r"(?:sb|simple_?baseline|res(?:net)?)[_-]?r?(\d+)", name):
        return f"SimpleBaseline-R{m.group(1)}"
    return None


def cache_attrs_of(backbone_dir: Path, split: str = "val") -> dict:
    """The attributes of `<backbone_dir>/cache/<split>.h5` (empty when there is no finished cache)."""
    from sgpose.cache import cache_attrs, open_cache

    path = Path(backbone_dir) / "cache" / f"{split}.h5"
    if not path.is_file():
        return {}
    try:
        with open_cache(path) as h5:
            return cache_attrs(h5)
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read attributes (%s)", path, err)
        return {}
