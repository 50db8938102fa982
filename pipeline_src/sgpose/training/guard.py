"""Divergence stops a training run: a loss, gradient norm or weight that is not finite (NaN, inf) ends it at
once with one line (`Diverged`: where, the last finite loss, what to try), before anything is written;
the last resume point, saved at a step that was still finite, is kept.

Both training loops (`training.refiner`, `training.backbone`) call `gradients` between the backward pass
and the optimizer step (gradient clipping, `grad_clip_norm`, and the norm) and `observe` after it. The
checks run on the device without a sync: a bad step, its kind and value and the last finite loss are kept
in device tensors and read at a sync point, every step on the CPU (free there), every `SYNC_EVERY`
steps on a GPU, at the end of each epoch and before every save (`check`), so the message still names the
first bad step. Under fp16's GradScaler a non-finite gradient is routine (the scaler skips that step and
lowers its scale): it is not flagged, a non-finite loss or weight still is.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_, get_total_norm

SYNC_EVERY = 50  # GPU steps between reads of the flags (one device sync each)
KINDS = {1: "the loss", 2: "the gradient norm", 3: "a weight (max |w|)"}
_POS = 1 << 32  # a step's position, epoch * _POS + step: one device tensor for the last finite loss's place


class Diverged(ValueError):
    """A training run whose numbers stopped being finite; the message says where and what to try."""


class DivergenceGuard:
    """Watches one training run. `label` names it in the message (`refiner ours`), `advice` says what to
    try, `kept` says which resume point remains (called when the run stops)."""

    def __init__(self, model: nn.Module, dev: torch.device, scaler: torch.amp.GradScaler, clip: float | None,
                 label: str, advice: str, kept: Callable[[], str]):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.scaler, self.clip, self.label, self.advice, self.kept = scaler, clip, label, advice, kept
        self.every = 1 if dev.type == "cpu" else SYNC_EVERY
        self.epoch, self.steps, self.norm = 1, 0, None
        self.first = torch.full((), -1, dtype=torch.int64, device=dev)  # the first bad step of the epoch
        self.kind = torch.zeros((), dtype=torch.int64, device=dev)
        self.value = torch.zeros((), device=dev)  # the bad value
        self.last = torch.full((), math.nan, device=dev)  # the last finite loss ...
        self.last_at = torch.full((), -1, dtype=torch.int64, device=dev)  # ... and where (epoch * _POS + step)

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Epoch `epoch` (0-based) of `steps` optimizer steps begins."""
        self.epoch, self.steps = epoch + 1, steps

    def gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """After the backward pass: clip the gradients to `clip` (unscaled first under fp16) and keep their
        norm for `observe` (not under fp16's scaler: its non-finite gradients are routine)."""
        if self.clip is not None:
            self.scaler.unscale_(optimizer)  # a no-op for a disabled scaler
            norm = clip_grad_norm_(self.params, self.clip)
        elif not self.scaler.is_enabled():
            norm = get_total_norm([p.grad for p in self.params if p.grad is not None])
        else:
            norm = None
        self.norm = None if self.scaler.is_enabled() else norm

    @torch.no_grad()
    def observe(self, step: int, loss: torch.Tensor) -> bool:
        """After the optimizer step `step` (0-based in the epoch) whose loss was `loss`: record it; at a sync
        point check (raises Diverged). Returns whether this step was a sync point."""
        loss = loss.detach().float()
        weights = get_total_norm(self.params, math.inf)  # NaN or inf when any weight is
        checks = [(1, loss)] + ([(2, self.norm.float())] if self.norm is not None else []) + [(3, weights)]
        kind, value = torch.zeros_like(self.kind), torch.zeros_like(self.value)
        for code, x in reversed(checks):  # the first failing check wins
            bad = ~torch.isfinite(x)
            kind, value = torch.where(bad, code, kind), torch.where(bad, x, value)
        good = (self.first < 0) & torch.isfinite(loss)  # a finite loss up to the first bad step, that one's too
        self.last = torch.where(good, loss, self.last)
        self.last_at = torch.where(good, self.epoch * _POS + step, self.last_at)
        fresh = (self.first < 0) & (kind > 0)
        self.first = torch.where(fresh, step, self.first)
        self.kind, self.value = torch.where(fresh, kind, self.kind), torch.where(fresh, value, self.value)
        sync = (step + 1) % self.every == 0 or step + 1 == self.steps
        if sync:
            self.check()
        return sync

    def check(self) -> None:
        """Read the flags (one device sync): raise Diverged naming the first bad step, if there was one."""
        first = int(self.first)
        if first >= 0:
            raise Diverged(self.message(first))

    def message(self, first: int) -> str:
        last_at = int(self.last_at)
        last = (f"the last finite loss was {float(self.last):.4g} (epoch {last_at // _POS}, step {last_at % _POS + 1})"
                if last_at >= 0 else "no step of this run had a finite loss")
        return (f"{self.label}: training diverged at epoch {self.epoch}, step {first + 1}/{self.steps}: "
                f"{KINDS[int(self.kind)]} is {float(self.value)}; {last}. Nothing written; {self.kept()}. "
                f"Try {self.advice}")
