"""sgpose.training.optim.Adam: torch's Adam update with IEEE square roots, its state under torch's names."""

from __future__ import annotations

import copy

import torch
from sgpose.training.optim import Adam, adam


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))


def _train(net, opt, steps: int = 50) -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 10, generator=g), torch.randn(64, 3, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()


def test_adam_follows_torchs_update_to_rounding():
    ours, theirs = _net(), _net()
    _train(ours, Adam(ours.parameters(), lr=1e-2))
    _train(theirs, torch.optim.Adam(theirs.parameters(), lr=1e-2))
    diff = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), theirs.parameters()))
    assert 0 < diff < 1e-5  # the roots' last bits only (measured 1.8e-7 after 50 steps)


def test_adam_resumes_from_its_state_to_the_bit():
    """A resume point holds the optimizer's state_dict: training on from it equals training straight through."""
    straight = _net()
    opt = Adam(straight.parameters(), lr=1e-2)
    _train(straight, opt, 10)
    half = copy.deepcopy(straight)
    state = copy.deepcopy(opt.state_dict())
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}  # torch.optim.Adam's names
    _train(straight, opt, 10)
    resumed = Adam(half.parameters(), lr=1e-2)
    resumed.load_state_dict(state)
    _train(half, resumed, 10)
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), half.parameters()))


def test_the_cpu_gets_the_exact_adam():
    assert type(adam(_net().parameters(), 1e-3, torch.device("cpu"))) is Adam
