"""The one way lessonlib puts state back: weights, buffers, modes, optimizer state and settings, random generators."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from lessonlib.engine.snapshot import Snapshot


def _trained_a_little():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    model[0].weight.requires_grad_(False)   # a frozen weight
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    step(model, optimizer)
    return model, optimizer


def step(model, optimizer):
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 2, (16,)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def everything(model, optimizer):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()},
            [g["lr"] for g in optimizer.param_groups], [m.training for m in model.modules()],
            torch.rand(3), np.random.rand(3), random.random())


def same(a, b):
    weights, state, lrs, modes, t, n, r = a
    weights2, state2, lrs2, modes2, t2, n2, r2 = b
    return (weights.keys() == weights2.keys() and all(torch.equal(weights[k], weights2[k]) for k in weights)
            and state.keys() == state2.keys()
            and all(torch.equal(state[p][k], state2[p][k]) for p in state for k in state[p])
            and lrs == lrs2 and modes == modes2 and torch.equal(t, t2) and np.array_equal(n, n2) and r == r2)


def test_everything_comes_back_exactly():
    model, optimizer = _trained_a_little()
    model.eval()
    snapshot = Snapshot(model, optimizer, modes=True, rng=True).take()
    state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    before = everything(model, optimizer)
    torch.set_rng_state(state[0]); np.random.set_state(state[1]); random.setstate(state[2])
    for _ in range(3):
        step(model, optimizer)   # weights, BatchNorm statistics, momentum and modes all change
    optimizer.param_groups[0]["lr"] = 5.0
    torch.rand(10); np.random.rand(10); random.random()
    snapshot.restore()
    assert same(before, everything(model, optimizer))


def test_a_snapshot_is_taken_again_into_the_same_memory_and_drops_state_made_after_it():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snapshot = Snapshot(model, optimizer, weights="trainable").take()
    kept = snapshot._saved["weight"]
    step_linear = lambda: (optimizer.zero_grad(), model(torch.randn(4, 3)).sum().backward(), optimizer.step())  # noqa: E731
    step_linear()
    assert optimizer.state   # momentum made by a step after the snapshot ...
    snapshot.restore()
    assert not any(optimizer.state.values())   # ... is gone again
    step_linear()
    snapshot.take()
    assert snapshot._saved["weight"] is kept and torch.equal(kept, model.weight)


def test_trainable_keeps_only_what_trains_and_buffers_only_the_statistics():
    model, optimizer = _trained_a_little()
    assert "0.weight" not in Snapshot(model, weights="trainable").take()._saved
    assert set(Snapshot(model, weights="buffers").take()._saved) == {"1.running_mean", "1.running_var",
                                                                     "1.num_batches_tracked"}
    with pytest.raises(ValueError, match="choose 'all', 'trainable', 'buffers' or None"):
        Snapshot(model, weights="some")


def test_kept_puts_back_after_an_error_too():
    model, optimizer = _trained_a_little()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError):
        with Snapshot(model, optimizer).kept():
            step(model, optimizer)
            raise RuntimeError("something went wrong")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
