"""What a training run did per mini-batch: the learning rate of each layer group and the loss.

`learn.sched` is the `Recorder` of the latest `fit` or `lr_find`; `plot()` draws the lesson's
loss-against-rate plot (the finder's plot too), `plot_lr()` and `plot_loss()` the rates and losses over the
iterations. A Recorder only records: the learning-rate schedule is stepped in the epoch loop
(`training.train_epoch`).
"""
import numpy as np

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import say

__all__ = ["Recorder", "group_label", "smooth"]


def smooth(losses, beta=0.98):
    """Bias-corrected exponential moving average of a sequence of losses."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** i))
    return np.array(out)


class Recorder:
    """What one `fit` did per mini-batch: the learning rate of each layer group and the loss.

    `learn.sched` is the Recorder of the latest `fit`; `plot_lr()` and `plot_loss()` draw it.
    """

    def __init__(self, optimizer, group_names=None):
        self.optimizer = optimizer
        self.group_names = group_names or [f"group {i}" for i in range(len(optimizer.param_groups))]
        self.lrs, self.losses = [], []

    def record(self, rates, loss):
        """Record one mini-batch: the rate of each group it was trained with, and its loss."""
        self.lrs.append(list(rates))
        self.losses.append(loss)

    def on_batch(self, loss):
        """Record a mini-batch's loss with the rates it was trained with: the optimizer's rates now, after its step
        and before the schedule moves them."""
        self.record([g["lr"] for g in self.optimizer.param_groups], loss)

    def smoothed(self, beta=0.98):
        """The losses so far, smoothed (`smooth`): what the lesson's plot and the finder read."""
        return smooth(self.losses, beta)

    def plot(self, n_skip=10, n_skip_end=5, ax=None, beta=0.98, raw=False):
        """Smoothed loss against the last group's learning rate, log x axis: the lesson's plot after `lr_find()`.

        The first `n_skip` and last `n_skip_end` mini-batches are left out, as the lesson's plot did; `raw=True`
        draws each mini-batch's own loss under the smoothed curve (the finder's plot, `LRFinder.plot`).
        """
        import matplotlib.pyplot as plt
        use_cjk_font()   # text in the reader's language
        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        n = len(self.losses)
        if n_skip + n_skip_end >= n:
            n_skip, n_skip_end = 0, 0
        sl = slice(n_skip, n - n_skip_end)
        lrs = np.array([row[-1] for row in self.lrs])
        if raw:
            ax.plot(lrs[sl], np.array(self.losses)[sl], alpha=0.3, label=say("loss per mini-batch"))
        ax.plot(lrs[sl], self.smoothed(beta)[sl], label=say("smoothed loss"))
        ax.set_xscale("log")
        ax.set(xlabel=say("learning rate (log scale)"), ylabel=say("loss"))
        return ax

    def plot_lr(self, ax=None):
        """Learning rate of each layer group against iteration."""
        import matplotlib.pyplot as plt
        use_cjk_font()   # text in the reader's language
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        for i, name in enumerate(self.group_names):
            ax.plot([row[i] for row in self.lrs], label=group_label(name))
        ax.set(xlabel=say("iteration (mini-batch)"), ylabel=say("learning rate"))
        if len(self.group_names) > 1:
            ax.set_yscale("log")
            ax.legend()
        return ax

    def plot_loss(self, ax=None):
        """Training loss of each mini-batch against iteration."""
        import matplotlib.pyplot as plt
        use_cjk_font()   # text in the reader's language
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        ax.plot(self.losses)
        ax.set(xlabel=say("iteration (mini-batch)"), ylabel=say("training loss"))
        return ax


def group_label(name):
    """A layer group's name ("early body", "late body", "head": the names code uses) as people read it in a plot."""
    return {"early body": say("early body"), "late body": say("late body"), "head": say("head")}.get(name, name)
