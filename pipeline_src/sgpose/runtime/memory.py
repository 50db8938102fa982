"""Out of memory, in words: `out_of_memory(err)` says whether an exception is a host or CUDA
out-of-memory error and what memory was seen, for the CLI's one line (`sgpose.cli`), which adds the
batch size parameter that controls it (the stage table's `Command.batch_param`).

Host: Python's MemoryError, or torch's allocator refusing ("can't allocate memory": a `prlimit --as` /
`ulimit -v` limit, an exhausted machine); the line gives the allocation refused, this process's peak
resident and virtual memory and the limits in force (address space, the cgroup's memory.max, SLURM's
--mem). A
DataLoader worker killed by SIGKILL is most often the kernel's out-of-memory killer: named as such.
CUDA: torch.cuda.OutOfMemoryError, whose message already holds what was asked and what was free.
Torch-free: it reads torch's state only if torch is loaded.
"""

from __future__ import annotations

import os
import re
import resource
import sys
from pathlib import Path

GIB = 1 << 30
_HOST = ("can't allocate memory", "cannot allocate memory", "not enough memory")


def out_of_memory(err: BaseException) -> tuple[str, str] | None:
    """(`host` or `CUDA`, what was seen) when `err` is an out-of-memory error, else None."""
    text = str(err)
    if type(err).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text:
        return "CUDA", _cuda_seen(text)
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and any(m in text.lower() for m in _HOST)):
        return "host", _host_seen(text)
    if isinstance(err, RuntimeError) and "DataLoader worker" in text and "Killed" in text:
        return "host", "a data loader worker was killed by SIGKILL, most likely by the kernel's out-of-memory " \
                       "killer; " + _host_seen("")
    return None


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _host_seen(text: str) -> str:
    """The refused allocation (torch names it), this process's peak resident memory and the limits."""
    seen = []
    if m := re.search(r"allocate (?:memory: you tried to allocate )?(\d+) bytes", text):
        seen.append(f"an allocation of {_gib(int(m.group(1)))} refused")
    status = _status()
    resident = status.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    seen.append(f"peak resident memory {_gib(resident)}")
    if "VmPeak" in status:  # what an address-space limit counts
        seen.append(f"peak virtual memory {_gib(status['VmPeak'])}")
    seen += limits()
    return ", ".join(seen)


def _status() -> dict[str, int]:
    """This process's memory peaks from /proc/self/status (bytes): VmHWM (resident) and VmPeak (virtual),
    this program's own (getrusage's maxrss can be the forking parent's, kept across exec)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) * 1024 for k, _, v in (x.partition(":") for x in lines) if k in ("VmHWM", "VmPeak")}


def limits() -> list[str]:
    """The memory limits in force on this process, in words (none: the machine's memory)."""
    found = []
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found.append(f"address-space limit {_gib(soft)} (ulimit -v, prlimit --as)")
    if (cap := _cgroup_max()) is not None:
        found.append(f"cgroup memory.max {_gib(cap)}")
    if mb := os.environ.get("SLURM_MEM_PER_NODE"):
        found.append(f"SLURM --mem {mb} MB")
    return found or [f"no limit set; {_gib(_available())} available on this machine"]


def _cgroup_max() -> int | None:
    """This process's cgroup v2 memory.max, if it is a number."""
    try:
        rel = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        value = (Path("/sys/fs/cgroup") / rel.lstrip("/") / "memory.max").read_text().strip()
    except (OSError, IndexError):
        return None
    return int(value) if value.isdigit() else None


def _available() -> int:
    try:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return 0


def _cuda_seen(text: str) -> str:
    """torch's account of the GPU (what was asked, the capacity and what was free) and the peak allocated."""
    sentences = re.findall(r"(Tried to allocate [^.]*\.\d+ \w+|GPU \d+ has a total capacity of [^.]*\.\d+ \w+ of which "
                           r"[^.]*\.\d+ \w+ is free)", text)
    seen = [s.rstrip(".") for s in sentences] or [text.splitlines()[0] if text else "CUDA out of memory"]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        seen.append(f"peak allocated by torch {_gib(torch.cuda.max_memory_allocated())}")
    return "; ".join(seen)
