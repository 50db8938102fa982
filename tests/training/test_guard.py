"""The divergence guard on a real (tiny) model and optimizer: the first non-finite loss, gradient norm or
weight stops training, named by epoch and step, also when the flags are read only every few steps (as on
a GPU); fp16's GradScaler skipping a step of overflowed gradients is not a divergence; clipping clips."""

from __future__ import annotations

import math

import pytest
import torch
from sgpose.training.guard import Diverged, DivergenceGuard


def setup(lr: float = 0.1, scaler: torch.amp.GradScaler | None = None, clip: float | None = None, every: int = 1):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    guard = DivergenceGuard(model, torch.device("cpu"), scaler, clip, "refiner ours", "a lower lr.",
                            lambda: "no resume point of this run")
    guard.every = every
    return model, opt, scaler, guard


def train(model, opt, scaler, guard, inputs: list[torch.Tensor], epoch: int = 0) -> list[float]:
    """One epoch over `inputs` (one step each), as the training loops run it; the losses seen."""
    guard.start_epoch(epoch, len(inputs))
    losses = []
    for step, x in enumerate(inputs):
        loss = model(x).sum()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        guard.gradients(opt)
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))
        guard.observe(step, loss)
    return losses


@pytest.mark.parametrize("every", [1, 3])  # every step (the CPU), or every third (a GPU's cadence)
def test_a_nan_loss_stops_at_its_step_with_the_last_finite_loss(every):
    model, opt, scaler, guard = setup(every=every)
    train(model, opt, scaler, guard, [torch.ones(2, 3)] * 4)
    with torch.no_grad():
        last = float(model(torch.ones(2, 3)).sum())  # epoch 2, step 1's loss: the last finite one
    bad = [torch.ones(2, 3), torch.tensor([[1.0, math.nan, 1.0]] * 2), torch.ones(2, 3)]
    with pytest.raises(Diverged) as err:
        train(model, opt, scaler, guard, bad, epoch=1)
    assert str(err.value) == (
        f"refiner ours: training diverged at epoch 2, step 2/3: the loss is nan; the last finite loss was {last:.4g} "
        "(epoch 2, step 1). Nothing written; no resume point of this run. Try a lower lr.")


def test_an_infinite_weight_is_named_as_a_weight():
    model, opt, scaler, guard = setup(lr=math.inf)  # the step sends the weights to +-inf (or NaN)
    with torch.no_grad():
        loss = float(model(torch.ones(2, 3)).sum())  # finite: the step after it is what fails
    with pytest.raises(Diverged, match=rf"epoch 1, step 1/2: a weight \(max \|w\|\) is (inf|nan); the last finite loss was "
                                       rf"{loss:.4g} \(epoch 1, step 1\)"):
        train(model, opt, scaler, guard, [torch.ones(2, 3)] * 2)


def test_an_overflowing_gradient_norm_is_named():
    model, opt, scaler, guard = setup(lr=0.0)  # weights stay as they are: only the gradient is bad
    with pytest.raises(Diverged, match=r"step 1/1: the gradient norm is inf; the last finite loss was \S+ \(epoch 1, step 1\)"):
        train(model, opt, scaler, guard, [torch.full((1, 3), 1e30)])


def test_fp16_loss_scaling_skipping_an_overflowed_step_is_not_a_divergence():
    """GradScaler (enabled: fp16 autocast) scales the loss by 2^16: a finite loss of 1e34 gives inf scaled
    gradients, the scaler skips that step and lowers its scale, the weights stay finite and as they were."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    model, opt, scaler, guard = setup(scaler=scaler)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, scaler, guard, [torch.full((1, 3), 1e34)])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # skipped, not diverged
    assert scaler.get_scale() == 2.0 ** 15
    train(model, opt, scaler, guard, [torch.ones(1, 3)], epoch=1)  # and training goes on
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_gradient_clipping_clips_the_norm_before_the_step():
    model, opt, scaler, guard = setup(lr=1.0, clip=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, scaler, guard, [torch.full((1, 3), 10.0)])
    moved = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())])
    assert moved.norm().item() == pytest.approx(0.5, rel=1e-5)  # lr 1: the step is the clipped gradient
    assert guard.norm.item() == pytest.approx(math.sqrt(3 * 100 + 1), rel=1e-5)  # the norm before clipping


@pytest.mark.cuda
def test_on_a_gpu_the_flags_are_read_every_50_steps_and_name_the_first_bad_step():
    """No device sync per step on a GPU: a NaN in step 8 of 60 is seen at the first sync point (step 50),
    still reported as step 8, with step 7's loss as the last finite one."""
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    guard = DivergenceGuard(model, dev, scaler, None, "refiner ours", "a lower lr.", lambda: "kept")
    assert guard.every == 50
    inputs = [torch.ones(2, 3, device=dev)] * 60
    inputs[7] = torch.full((2, 3), math.nan, device=dev)
    seen = []
    guard.start_epoch(0, len(inputs))
    with pytest.raises(Diverged, match=r"at epoch 1, step 8/60: the loss is nan; the last finite loss was \S+ "
                                       r"\(epoch 1, step 7\)"):
        for step, x in enumerate(inputs):
            loss = model(x).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            guard.gradients(opt)
            opt.step()
            seen.append(step)
            guard.observe(step, loss)
    assert seen[-1] == 49  # read at the sync point, not at the bad step
