"""The project's own errors: a file that cannot be used, a choice on the command line that names nothing,
a disk that ran full while writing one, numbers that are not finite where a stage would write them, and a
stage stopped by SIGTERM.

Each is raised where files are read or written or where the run stops, names the file (or the stage's
place, or the argument), and is printed by the CLI as one line instead of a traceback
(docs/architecture.md, "Errors"): exit 2 for a damaged input, a bad choice or a full disk, 1 for
non-finite numbers (a ValueError), `Preempted.STATUS` (143) for SIGTERM. Anything else that goes wrong is a
bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

# HDF5 and torch report a failed write in their own words; these mark one (HDF5 also quotes errno)
_NO_SPACE = ("no space left on device", "errno = 28")
_WRITE_FAILED = ("file write failed", "enforce fail at inline_container", "write failed", "can't write")
NEARLY_FULL = 1 << 20  # bytes: a write error with less than this free counts as a full disk


class ChoiceError(ValueError):
    """A command-line choice that names nothing in this run (an annotation id, a variant, a split): the message
    names the argument and what there is instead. Exit 2, as argparse's own usage errors."""


class InputError(ValueError):
    """A file that exists but cannot be used as it is (damaged, truncated, foreign, of the wrong kind).

    `path` is the file, `problem` what is wrong with it and, where known, what to do about it."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


class NonFiniteError(ValueError):
    """Numbers that are not finite (NaN, inf) in a file a stage would write, or reads: `path` is the file,
    `problem` where the numbers are and what to do. Nothing is written: a diverged run is no result."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


class Preempted(Exception):
    """A training stage stopped by SIGTERM (a SLURM time limit, preemption, `scancel --signal=TERM`)
    after saving a resume point; the CLI exits with STATUS, 128 + SIGTERM as a shell reports a process
    SIGTERM ended: a failure to DVC and Snakemake (whose SLURM profile resubmits the job, which resumes)."""

    STATUS = 143


class DiskFullError(OSError):
    """Writing `path` ran out of space; the message says how much is free on which filesystem."""

    def __init__(self, path: str | Path, free: int, mount: Path):
        self.path, self.free, self.mount = Path(path), free, mount
        super().__init__(errno.ENOSPC, f"disk full writing {path}: {free} bytes free on {mount}")

    def __str__(self) -> str:
        return self.strerror


def mount_point(path: str | Path) -> Path:
    """The mount point of the filesystem holding `path` (or its nearest existing parent), symbolic links
    followed: a results directory linked onto another filesystem names that one, not `/`."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    p = p.resolve()
    while not os.path.ismount(p):
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    """Bytes available to this user on the filesystem holding `path`."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def disk_full(err: BaseException, path: str | Path) -> DiskFullError | None:
    """A DiskFullError for `path` if `err` (or an error it wraps) is a write that ran out of space:
    ENOSPC itself, HDF5's and torch's wrappings of it, or a write error with the disk (nearly) full.
    Call it before deleting the half-written file, so the free space it reports is what the write saw."""
    if isinstance(err, DiskFullError):
        return err
    seen: BaseException | None = err
    while seen is not None:
        text = str(seen).lower()
        enospc = isinstance(seen, OSError) and seen.errno == errno.ENOSPC
        if enospc or any(m in text for m in _NO_SPACE) or (
                isinstance(seen, (OSError, RuntimeError)) and any(m in text for m in _WRITE_FAILED)
                and free_bytes(path) < NEARLY_FULL):
            return DiskFullError(path, free_bytes(path), mount_point(path))
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Turn the low-level errors of reading `path` (h5py's OSError for a truncated file or a failed
    checksum, its KeyError for a damaged object header) into an InputError naming it."""
    try:
        yield
    except InputError:
        raise
    except (OSError, KeyError, RuntimeError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        detail = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise InputError(path, f"damaged {what} ({detail}); delete it and rerun the stage that writes it") from err
