"""Where a loop's wall time goes, for its log line: seconds per named part (`Timer`).

The cache stage logs, per shard, the time it waited for crops, spent on the device (forward, conversion,
the copy to the host) and waited for its writer: what the GPU check reads to say which part limits it.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class Timer:
    """Seconds per part: `with timer("part"):` around work, `timer.iterate(items, "part")` around the
    waits for each item; `str(timer)` is "part 1.2 s, other 0.3 s" in first-use order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - t0

    def iterate(self, items: Iterable[T], part: str) -> Iterator[T]:
        it = iter(items)
        while True:
            with self(part):
                item = next(it, _END)
            if item is _END:
                return
            yield item

    def __str__(self) -> str:
        return ", ".join(f"{part} {s:.1f} s" for part, s in self.seconds.items())


_END = object()
