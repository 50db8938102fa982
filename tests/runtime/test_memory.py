"""Out-of-memory errors told apart from other errors and put in words: torch's real host allocator
error (an allocation no machine grants), Python's MemoryError, and torch's CUDA message (its text)."""

from __future__ import annotations

import re

import pytest
import torch
from sgpose.runtime.memory import out_of_memory


def test_torchs_host_allocator_refusal_names_the_allocation_and_the_peak():
    with pytest.raises(RuntimeError) as err:
        torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB
    what, seen = out_of_memory(err.value)
    assert what == "host", what
    assert re.match(r"an allocation of 1048576\.00 GiB refused, peak resident memory \d+\.\d\d GiB, peak virtual memory "
                    r"\d+\.\d\d GiB, ", seen), seen


def test_memory_error_and_cuda_errors_are_out_of_memory_others_not():
    assert out_of_memory(MemoryError())[0] == "host"
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.15 GiB of "
                        "which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.08 GiB memory in use.")
    what, seen = out_of_memory(cuda)
    assert what == "CUDA" and seen.startswith("Tried to allocate 20.00 GiB; GPU 0 has a total capacity of 79.15 GiB of "
                                              "which 1.06 GiB is free")
    assert out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    assert out_of_memory(ValueError("can't allocate memory")) is None


@pytest.mark.cuda
def test_a_real_cuda_out_of_memory_is_put_in_words():
    with pytest.raises(torch.cuda.OutOfMemoryError) as err:
        torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # 1 PiB
    what, seen = out_of_memory(err.value)
    assert what == "CUDA", what
    assert re.fullmatch(r"Tried to allocate [\d.]+ \w+; GPU \d+ has a total capacity of [\d.]+ \w+ of which [\d.]+ \w+ is "
                        r"free; peak allocated by torch [\d.]+ GiB", seen), seen
