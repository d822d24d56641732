import math

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from lessonlib.learner import ConvLearner
from lessonlib.recorder import smooth
from lessonlib.schedules import one_cycle, schedule_rates, sgdr, sgdr_epochs, sgdr_rate


def test_epochs_of_sgdr():
    assert sgdr_epochs(3) == 3
    assert sgdr_epochs(3, cycle_len=1) == 3
    assert sgdr_epochs(3, cycle_len=1, cycle_mult=2) == 7
    assert sgdr_epochs(2, cycle_len=2, cycle_mult=3) == 8


def test_sgdr_is_torchs_warm_restarts_per_mini_batch():
    per_epoch = 5
    ours = schedule_rates(lambda opt: sgdr(opt, per_epoch, cycle_len=1, cycle_mult=2), 35, lr=1e-2)
    torchs = schedule_rates(lambda opt: CosineAnnealingWarmRestarts(opt, T_0=5, T_mult=2), 35, lr=1e-2)
    closed = [0.5 * 1e-2 * (1 + math.cos(math.pi * t / T)) for T in (5, 10, 20) for t in range(T)]
    assert np.allclose(ours, torchs, rtol=0, atol=1e-9) and np.allclose(ours, closed, rtol=0, atol=1e-9)
    assert sgdr(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1), 5) is None   # constant rate


def test_the_closed_form_restarts_where_the_cycles_end():
    rates = [sgdr_rate(1e-2, i, 5, cycle_len=1, cycle_mult=2) for i in range(35)]
    assert rates[0] == rates[5] == rates[15] == pytest.approx(1e-2)           # a restart at 5, 5 + 10
    assert rates[4] < 1e-3 and rates[14] < 1e-3 and rates[34] < 1e-4          # the ends of the cycles are low
    assert rates[10] == pytest.approx(0.5e-2)                                  # half way through the second
    ours = schedule_rates(lambda opt: sgdr(opt, 5, cycle_len=1, cycle_mult=2), 35, lr=1e-2)
    assert np.allclose(ours, rates, rtol=0, atol=1e-12)


def test_one_cycle_rises_then_falls():
    rates = schedule_rates(lambda opt: one_cycle(opt, 100, max_lr=1e-2), 100, lr=1e-2)
    peak = int(np.argmax(rates))
    assert 10 < peak < 50 and rates[peak] == pytest.approx(1e-2) and rates[-1] < 1e-4


def test_smoothing_is_bias_corrected():
    assert np.allclose(smooth([2.0, 2.0, 2.0]), 2.0)   # no pull toward zero at the start
    assert smooth([1.0, 3.0], beta=0.5)[-1] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)


def test_schedule_helpers_name_what_they_need():
    from lessonlib.schedules import plot_schedules, schedule_rates
    with pytest.raises(TypeError, match="returns a torch scheduler"):
        schedule_rates(lambda opt: None, 10)
    with pytest.raises(ValueError, match="n_iter"):
        schedule_rates(lambda opt: None, 0)
    with pytest.raises(ValueError, match="no schedules"):
        plot_schedules({})


@pytest.mark.parametrize("cycle_len", [0, -1, 1.5, True, "2"])
def test_bad_cycle_lengths_are_refused_before_training(data, cycle_len):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    with pytest.raises(ValueError, match="cycle_len"):
        learn.fit(1e-2, 1, cycle_len=cycle_len)
    assert learn.history.empty
