"""Find what the stages have written under results/: every `metrics/<ds>/<bb>/<variant>.json`
({split: metrics}), and what each dataset and backbone directory is (for the paper's Tables 2-4).

Nothing here is invented: a run that has no metrics file simply has no entry.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sgpose.config.paths import Paths
from sgpose.config.schema import DET_SPLIT
from sgpose.core.io import read_json

log = logging.getLogger(__name__)
CROWDPOSE_KEYS = ("AP_easy", "AP_medium", "AP_hard")  # what evaluate writes for CrowdPose


@dataclass(frozen=True)
class Run:
    """One variant scored on one split: an entry of results/metrics/<dataset>/<backbone>/<variant>.json."""

    dataset: str
    backbone: str
    variant: str
    split: str
    metrics: dict


def find_runs(results: Path) -> list[Run]:
    """Every evaluated (variant, split) under `results`, sorted by path; unreadable files are skipped
    with a warning."""
    runs = []
    for path in sorted(Path(results).glob("metrics/*/*/*.json")):
        try:
            by_split = read_json(path)
        except ValueError as err:
            log.warning("skipping %s", err)
            continue
        for split, metrics in sorted(by_split.items()) if isinstance(by_split, dict) else []:
            if isinstance(metrics, dict) and "AP" in metrics:
                runs.append(Run(path.parts[-3], path.parts[-2], path.stem, split, metrics))
    return runs


def select(runs: list[Run], dataset: str | None = None, backbone: str | None = None,
           split: str | None = None) -> list[Run]:
    """The runs of one dataset, backbone and/or split."""
    return [r for r in runs if dataset in (None, r.dataset) and backbone in (None, r.backbone)
            and split in (None, r.split)]


def by_variant(runs: list[Run]) -> dict[str, dict]:
    """variant -> metrics for runs of one (dataset, backbone, split)."""
    return {r.variant: r.metrics for r in runs}


def is_crowdpose(run: Run) -> bool:
    """CrowdPose runs: metrics carry AP_easy/medium/hard (evaluate writes them for the crowdpose layout)."""
    return all(k in run.metrics for k in CROWDPOSE_KEYS)


def uses_detections(run: Run) -> bool:
    """Runs scored on detector boxes: the val_det split."""
    return run.split == DET_SPLIT


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


def cache_attrs_of(paths: Paths, split: str = "val") -> dict:
    """The attributes of a backbone's `<split>` cache (empty when there is no finished cache)."""
    from sgpose.cache.format import read_attrs
    from sgpose.cache.reader import open_cache

    path = paths.cache(split)
    if not path.is_file():
        return {}
    try:
        with open_cache(path) as h5:
            return read_attrs(h5)
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read attributes (%s)", path, err)
        return {}
