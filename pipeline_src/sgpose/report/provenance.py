"""What made a report: the code's digest, the params file's hash, checkpoint hashes, the CPU numerics,
package versions. Nothing about the state of the work tree while the DAG ran (a git revision reads
"+dirty" under DVC, which rewrites dvc.lock mid-run): both engines write the same provenance."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from pathlib import Path

from sgpose.config.paths import Paths
from sgpose.core.io import sha256_file
from sgpose.report.discover import cache_attrs_of

log = logging.getLogger(__name__)
PACKAGES = ("sgpose", "torch", "numpy", "pycocotools", "h5py", "matplotlib")


def code_sha256(root: Path) -> str:
    """The sha256 of the package's sources (every file's path and bytes, in path order): the code the
    results were made with, whatever git's work tree holds while the DAG runs (DVC rewrites dvc.lock)."""
    package = Path(root) / "pipeline_src" / "sgpose"
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


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
    """Backbone checkpoint sha256 and the CPU numerics its features were computed with, as recorded in each
    val cache, and the sha256 of every refiner.pt."""
    rows = []
    for cache in sorted(Path(results).glob("*/*/cache")):
        paths = Paths.of(cache.parent.parent.name, cache.parent.name, Path(results).parent)
        attrs = cache_attrs_of(paths)
        if sha := attrs.get("checkpoint_sha256"):
            rows.append({"what": "backbone (cache attribute checkpoint_sha256)", "file": str(paths.cache("val")),
                         "sha256": sha, "numerics": attrs.get("compute", {}).get("cpu_numerics", "not recorded")})
    for ckpt in sorted(Path(results).glob("*/*/*/refiner.pt")):
        rows.append({"what": f"refiner {ckpt.parent.name}", "file": str(ckpt), "sha256": sha256_file(ckpt)})
    return rows


def provenance(params_path: Path, results: Path, root: Path = Path(".")) -> dict:
    """Everything the page prints about how its numbers were made."""
    params_path = Path(params_path)
    return {"code_sha256": code_sha256(root), "params_file": str(params_path),
            "params_sha256": sha256_file(params_path) if params_path.is_file() else "missing",
            "checkpoints": checkpoints(results), "versions": versions()}
