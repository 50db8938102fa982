"""DVC's code dependency: one digest file per entry module, its import closure's files and their sha256.

DVC records the hash of every dependency of every stage in dvc.lock and rewrites that file after each
stage (a round-trip YAML parse and dump). With one stage per job, listing each job's import closure made
the sample's dvc.lock 16k lines and that rewrite most of DVC's time (README, "What to expect"). So under
DVC a job depends on one file, `results/code/<entry>.json`, written by the `code` stage, which depends
on the package directory. The file lists exactly the closure (`sgpose.runtime.imports`) and each file's
sha256: an edit changes the digests of the entries that import the edited module and no other, so DVC
re-runs exactly the jobs it re-ran before, and a `code` stage whose digests come out unchanged re-runs
nothing. Snakemake, which keeps no such file, lists the closure itself (`sgpose.dag.snakemake`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sgpose.runtime.imports import PACKAGE, module_files

CODE_ROOT = "pipeline_src"  # the package's directory, relative to the project root


def package_dir(project: str | Path = ".") -> Path:
    """The package's sources in a project checkout (`pipeline_src/sgpose`)."""
    return Path(project) / CODE_ROOT / PACKAGE


def code_files(entry: str, project: str | Path = ".") -> list[str]:
    """The sources `entry` runs, relative to the project root (`pipeline_src/sgpose/...`), sorted."""
    root = package_dir(project).resolve()
    return [f"{CODE_ROOT}/{PACKAGE}/{p.relative_to(root).as_posix()}" for p in module_files(entry, root)]


def digest(entry: str, project: str | Path = ".") -> dict:
    """{"entry": entry, "files": {path: sha256}} over the closure of `entry` in the checkout `project`."""
    files = {f: hashlib.sha256((Path(project) / f).read_bytes()).hexdigest() for f in code_files(entry, project)}
    return {"entry": entry, "files": files}
