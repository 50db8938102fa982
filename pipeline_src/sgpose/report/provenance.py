"""What made a report: git revision, params file hash, checkpoint hashes, package versions."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
from pathlib import Path

from sgpose.config.paths import Paths
from sgpose.core.io import sha256_file
from sgpose.report.discover import cache_attrs_of

log = logging.getLogger(__name__)
PACKAGES = ("sgpose", "torch", "numpy", "pycocotools", "h5py", "matplotlib")


def git_revision(root: Path) -> str | None:
    """`git rev-parse HEAD` (with `+dirty` when the work tree has changes), or None outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour the numbers depend on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def checkpoints(results: Path) -> list[dict[str, str]]:
    """Backbone checkpoint sha256 as recorded in each val cache, and the sha256 of every refiner.pt."""
    rows = []
    for cache in sorted(Path(results).glob("*/*/cache")):
        paths = Paths.of(cache.parent.parent.name, cache.parent.name, Path(results).parent)
        sha = cache_attrs_of(paths).get("checkpoint_sha256")
        if sha:
            rows.append({"what": "backbone (cache attribute checkpoint_sha256)", "file": str(paths.cache("val")),
                         "sha256": sha})
    for ckpt in sorted(Path(results).glob("*/*/*/refiner.pt")):
        rows.append({"what": f"refiner {ckpt.parent.name}", "file": str(ckpt), "sha256": sha256_file(ckpt)})
    return rows


def provenance(params_path: Path, results: Path, root: Path = Path(".")) -> dict:
    """Everything the page prints about how its numbers were made."""
    params_path = Path(params_path)
    return {"git_revision": git_revision(root) or "unknown (not a git checkout)",
            "params_file": str(params_path),
            "params_sha256": sha256_file(params_path) if params_path.is_file() else "missing",
            "checkpoints": checkpoints(results), "versions": versions()}
