"""`sgpose verdict`: did this run reproduce the recorded one? One line, and an exit status that can fail.

Compares the outputs of the dvc.lock in the working tree (the one `dvc repro` just wrote) with the
committed one (`git show HEAD:dvc.lock`), output by output (path and md5). Not `git diff dvc.lock`: DVC's
`core.autostage` puts the lock it writes into the index, so the work tree never differs from the index and
that check passes whatever DVC computed. Exit 0: every recorded output has the recorded bytes (and the
lock is the recorded one line for line); exit 1: the outputs that differ are counted and the first named.
"""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from sgpose.core.errors import InputError
from sgpose.stages import Run

NEXT = ("`sgpose doctor` names the numeric components this machine computes differently; "
        "`git diff HEAD -- dvc.lock` shows every changed line")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ")
    parser.add_argument("--lock", default="dvc.lock", help="the lock this run wrote (default: %(default)s)")
    parser.add_argument("--against", default="HEAD", metavar="REV",
                        help="the git revision whose lock is the recorded run (default: %(default)s)")


def outputs(lock: dict) -> dict[str, str]:
    """{output path: md5} over every stage of a parsed dvc.lock, in the lock's order."""
    found = {}
    for stage in (lock or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            found[out["path"]] = out.get("md5", "")
    return found


@dataclass(frozen=True)
class Verdict:
    """The comparison of a run's lock with the recorded one."""

    recorded: dict[str, str]
    ran: dict[str, str]
    same_text: bool

    @property
    def differ(self) -> list[str]:
        """Recorded outputs this run did not make with the recorded bytes (or did not make), lock order."""
        return [p for p, md5 in self.recorded.items() if self.ran.get(p) != md5]

    @property
    def reproduced(self) -> bool:
        return not self.differ and self.same_text

    def line(self) -> str:
        m = len(self.recorded)
        if self.reproduced:
            return f"reproduced the recorded run: {m} outputs byte for byte"
        if self.differ:
            first = self.differ[0]
            return (f"differs from the recorded run in {len(self.differ)} of {m} outputs (first: {first}, "
                    f"{self.ran.get(first) or 'not made'} here, {self.recorded[first]} recorded); next: {NEXT}")
        return (f"made the recorded run's {m} outputs byte for byte, but dvc.lock differs from the recorded one "
                "elsewhere (its dependencies: code, params or inputs other than those recorded); next: "
                "`git diff HEAD -- dvc.lock`")


def recorded_lock(lock: Path, rev: str) -> str:
    """The text of `lock` at git revision `rev` (InputError when there is none to compare with)."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=lock.parent.resolve(), capture_output=True,
                         text=True)
    if top.returncode != 0:
        raise InputError(lock, "not in a git checkout: no recorded run to compare with")
    rel = lock.resolve().relative_to(Path(top.stdout.strip()))
    shown = subprocess.run(["git", "show", f"{rev}:{rel.as_posix()}"], cwd=top.stdout.strip(), capture_output=True,
                           text=True)
    if shown.returncode != 0:
        raise InputError(lock, f"no recorded lock at {rev} ({shown.stderr.strip().splitlines()[-1]})")
    return shown.stdout


def compare(lock: Path, rev: str = "HEAD") -> Verdict:
    """The verdict on `lock` against its text at git revision `rev`."""
    if not lock.is_file():
        raise InputError(lock, "no dvc.lock: run the DAG first (command 1, or `dvc repro`)")
    text, recorded = lock.read_text(), recorded_lock(lock, rev)
    return Verdict(outputs(yaml.safe_load(recorded)), outputs(yaml.safe_load(text)), text == recorded)


def main(run: Run) -> int:
    verdict = compare(Path(run.args.lock), run.args.against)
    print(f"sgpose verdict: {verdict.line()}")
    return 0 if verdict.reproduced else 1
