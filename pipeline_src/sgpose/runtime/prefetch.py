"""Batches read and put on the device ahead of the step that uses them (refiner training).

Without it, the training loop asks the reader for a batch, waits for it, copies it to the device and
only then steps: reading and stepping take turns. On an H200 (docs/scale.md) the reader alone made 860
samples/s and the step alone 1,676, training 265: less than either would allow in turn. `Prefetcher`
runs the reading (the DataLoader's hand-over from its worker processes and its pinning) and the copy to
the device on a thread, `depth` batches ahead; on CUDA the copies go on a side stream (pinned memory:
they overlap the step's kernels) and the step's stream waits for each batch's copy, never for more.

The batches come out in the reader's order, each converted by `convert` exactly as the loop converted
it before (tests/runtime/test_prefetch.py): prefetching changes when a batch is read, never what.
`waited` is the time the consumer spent waiting for batches: what the reader still costs the step.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor

Batch = dict[str, Tensor]
_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate `convert(batch)` for the batches of `batches`, `depth` ahead on a thread (on `dev`'s
    side stream on CUDA). An error of the reader is raised at the consumer; a consumer that stops early
    stops the thread."""

    def __init__(self, batches: Iterable[Batch], convert: Callable[[Batch], Batch], dev: torch.device, depth: int = 2):
        self.batches, self.convert, self.dev = batches, convert, dev
        self.queue: queue.Queue = queue.Queue(max(1, depth))
        self.stop = threading.Event()
        self.stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None
        self.waited = 0.0

    def _work(self) -> None:
        try:
            it = iter(self.batches)
            while not self.stop.is_set():
                with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
                    batch = next(it, _END)
                    if batch is _END:
                        break
                    out = self.convert(batch)
                    event = None
                    if self.stream is not None:
                        event = torch.cuda.Event()
                        event.record(self.stream)
                self._put((out, event))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer's thread
            self._put(_Failed(err))
        finally:
            self._put(_END)

    def _put(self, item) -> None:
        """Put unless the consumer has stopped (then drop: nobody reads any more)."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Batch]:
        thread = threading.Thread(target=self._work, name="prefetch", daemon=True)
        thread.start()
        try:
            while True:
                t0 = time.perf_counter()
                item = self.queue.get()
                self.waited += time.perf_counter() - t0
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                out, event = item
                if event is not None:
                    stream = torch.cuda.current_stream(self.dev)
                    stream.wait_event(event)
                    for v in out.values():
                        if v.is_cuda:
                            v.record_stream(stream)  # made on the side stream, used on this one
                yield out
        finally:
            self.stop.set()
            thread.join()

