"""Learning-rate schedules per mini-batch: constant, and SGDR (cosine annealing with restarts).

SGDR is torch's own `CosineAnnealingWarmRestarts`, stepped once per mini-batch: the rate
falls along a cosine from the chosen value toward zero over `cycle_len` epochs, then jumps
back up; each cycle lasts `cycle_mult` times longer than the one before.
"""
import numpy as np
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say

__all__ = ["one_cycle", "plot_schedules", "schedule_rates", "sgdr", "sgdr_epochs", "sgdr_rate"]


def sgdr_epochs(n_cycle, cycle_len=None, cycle_mult=1):
    """Total epochs of `fit(lr, n_cycle, cycle_len, cycle_mult)`: 3, 1, 2 gives 1 + 2 + 4 = 7 (numbers checked)."""
    if isinstance(n_cycle, bool) or not isinstance(n_cycle, int) or n_cycle < 1:
        raise ValueError(problem("n_cycle={n_cycle!r}: it must be a whole number of cycles, 1 or more",
                                 n_cycle=n_cycle))
    if cycle_len is None:
        return n_cycle
    if isinstance(cycle_len, bool) or not isinstance(cycle_len, int) or cycle_len < 1:
        raise ValueError(problem("cycle_len={cycle_len!r}: it must be a whole number of epochs, 1 or more (or None)",
                                 cycle_len=cycle_len))
    if int(cycle_mult) != cycle_mult or cycle_mult < 1:
        raise ValueError(problem("cycle_mult={cycle_mult!r}: it must be a whole number, 1 or more",
                                 cycle_mult=cycle_mult))
    return sum(cycle_len * cycle_mult ** i for i in range(n_cycle))


def sgdr_rate(lr, iteration, iters_per_epoch, cycle_len, cycle_mult=1):
    """SGDR's rate at mini-batch `iteration`, in closed form: which cycle it falls in, and where on that cycle's
    cosine (from `lr` down towards 0). What `sgdr` computes step by step, written out to check it against."""
    length, start = cycle_len * iters_per_epoch, 0
    while iteration >= start + length:
        start, length = start + length, length * cycle_mult
    return lr * (1 + np.cos(np.pi * (iteration - start) / length)) / 2


def sgdr(optimizer, iters_per_epoch, cycle_len=None, cycle_mult=1):
    """The per-mini-batch scheduler for `fit`: None (constant rate) without `cycle_len`."""
    if cycle_len is None:
        return None
    if int(cycle_mult) != cycle_mult or cycle_mult < 1:
        raise ValueError(problem("cycle_mult={cycle_mult!r}: it must be a whole number, 1 or more",
                                 cycle_mult=cycle_mult))
    return CosineAnnealingWarmRestarts(optimizer, T_0=int(cycle_len * iters_per_epoch), T_mult=int(cycle_mult))


def schedule_rates(make_scheduler, n_iter, lr=1.0):
    """The rate a scheduler gives at each of `n_iter` mini-batches, on a throwaway optimizer.

    Example:
        >>> schedule_rates(lambda opt: CosineAnnealingWarmRestarts(opt, T_0=10), 30, lr=1e-2)
    """
    import torch

    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(problem("n_iter={n_iter!r}: give a whole number of mini-batches, 1 or more",
                                 n_iter=n_iter))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(optimizer) if callable(make_scheduler) else None
    if not hasattr(scheduler, "step"):
        raise TypeError(problem("make_scheduler must be a function that takes the optimizer and returns a torch "
                                "scheduler, e.g. lambda opt: CosineAnnealingWarmRestarts(opt, T_0=10); it gave "
                                "{scheduler!r}", scheduler=scheduler))
    rates = []
    for _ in range(n_iter):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


def one_cycle(optimizer, total_steps, max_lr):
    """One-cycle: warm up to `max_lr`, then anneal far below it (torch's `OneCycleLR`), for comparison."""
    from torch.optim.lr_scheduler import OneCycleLR
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps)


def plot_schedules(schedules, ax=None):
    """Plot {name: per-iteration rates} on one axis."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    if not schedules:
        raise ValueError(problem("no schedules to plot: give {{name: rates per mini-batch}}, e.g. from "
                                 "schedule_rates"))
    ax = ax or plt.subplots(figsize=(7, 3))[1]
    for name, rates in schedules.items():
        ax.plot(rates, label=name)
    ax.set(xlabel=say("iteration (mini-batch)"), ylabel=say("learning rate"))
    ax.legend()
    return ax
