"""`sgpose profile NAME`: make `profiles/NAME.yaml` the active parameter file.

`params.yaml` stays the one file DVC, Snakemake and every stage read; a profile (sample, claims, coco,
crowdpose) is a complete alternative to it. The profile is validated first (an invalid one never
replaces a working params.yaml), then copied byte for byte, atomically, and dvc.yaml is regenerated
for its grid (`sgpose dag`), so `dvc repro` runs the profile's stages.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from sgpose.config.schema import ParamsFile
from sgpose.config.selection import read_params_file
from sgpose.core.io import atomic_path
from sgpose.dag import dvc
from sgpose.stages import Run

log = logging.getLogger(__name__)
PROFILE_DIR = Path("profiles")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="profile name: profiles/<name>.yaml (sample, claims, coco, crowdpose, paper)")


def available(root: Path = Path(".")) -> list[str]:
    """The profile names under `root/profiles`."""
    return sorted(p.stem for p in (root / PROFILE_DIR).glob("*.yaml"))


def activate(name: str, target: str | Path, root: Path = Path(".")) -> ParamsFile:
    """Validate `profiles/<name>.yaml` and copy it over `target`; returns its parameters."""
    source = root / PROFILE_DIR / f"{name}.yaml"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such profile; available: {', '.join(available(root)) or 'none'}")
    params = read_params_file(source)  # raises ParamsError (a ValueError) naming the profile file
    with atomic_path(target) as tmp:
        tmp.write_bytes(source.read_bytes())
    dvc.write(params, yaml.safe_load(source.read_text()), Path(target).with_name("dvc.yaml"))
    return params


def main(run: Run) -> None:
    """Activate the profile; the current params file is replaced, not read (it may be broken)."""
    args = run.args
    new = activate(args.name, args.params)
    log.info("%s is now profile %s (datasets %s; backbones %s; dvc.yaml regenerated); run `dvc repro` or `snakemake`",
             args.params, args.name, ", ".join(new.datasets), ", ".join(new.backbones))
