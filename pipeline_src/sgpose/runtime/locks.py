"""Per-output locks: two processes never write the same output at once (issue 16).

A stage holds an exclusive `fcntl.flock` on `results/.locks/<output path under results>.lock`
while it writes that output. The lock files live in their own tree, outside every DVC output
(a lock beside a shard would change the cache directory's hash) and under the ignored
`results/`; the kernel releases a lock when its holder dies, even by kill -9, so a lock is
never stale. The file holds its holder (pid, host, command, start time) for the message the
next process prints.

A second process either waits (the cache's shards: it then finds the shard finished and keeps it)
or stops at once with `OutputLocked` naming the holder (training: waiting would redo the work).
A temporary file of a live writer is recognised by its held lock and never removed as a stray.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from sgpose.core.io import TMP_MARK

log = logging.getLogger(__name__)
LOCKS = ".locks"  # under the results directory


class OutputLocked(ValueError):
    """Another live process is writing this output (a bad moment to run, like a bad value: exit 1)."""


def lock_file(output: str | Path, results: str | Path) -> Path:
    """Where the lock of `output` lives: its path under `results` mirrored under results/.locks
    (an output elsewhere: its absolute path mirrored there)."""
    out, results = Path(output).resolve(), Path(results).resolve()
    rel = out.relative_to(results) if out.is_relative_to(results) else Path(*out.parts[1:])
    return results / LOCKS / rel.with_name(rel.name + ".lock")


def _holder(lock: Path) -> str:
    """Who holds `lock`, as its holder wrote it."""
    with contextlib.suppress(OSError):
        text = lock.read_text().strip()
        if text:
            return text
    return "a process that has not yet written its name"


def _describe() -> str:
    return (f"pid {os.getpid()} on {socket.gethostname()}, `{' '.join(['sgpose', *sys.argv[1:]])}`, "
            f"since {time.strftime('%Y-%m-%d %H:%M:%S')}")


@contextlib.contextmanager
def output_lock(output: str | Path, results: str | Path, wait: bool) -> Iterator[Path]:
    """Hold the lock of `output` for the block. Held elsewhere: wait for it (`wait`), else raise
    OutputLocked naming the holder and the lock file."""
    lock = lock_file(output, results)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(lock)
            if not wait:
                raise OutputLocked(f"{output}: another process is writing it ({holder}); let it finish or stop it "
                                   f"(lock {lock})") from None
            log.info("%s: waiting for another process writing it (%s)", output, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, (_describe() + "\n").encode())
        try:
            yield lock
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def is_held(output: str | Path, results: str | Path) -> bool:
    """Whether some process (this one included, through another handle) holds the lock of `output`."""
    lock = lock_file(output, results)
    if not lock.is_file():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def live_temporary(path: Path, results: str | Path) -> bool:
    """Whether `path` is an atomic_path temporary whose output's lock is held: a live writer's file."""
    name, mark, _ = path.name.rpartition(TMP_MARK)
    return bool(mark) and is_held(path.with_name(name), results)
