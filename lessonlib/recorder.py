"""What a training run did per mini-batch: the learning rate of each layer group and the loss.

`learn.sched` is the `Recorder` of the latest `fit` or `lr_find`; `plot()` draws the lesson's
loss-against-rate plot, `plot_lr()` and `plot_loss()` the rates and losses over the iterations.
"""
import numpy as np

__all__ = ["Recorder", "smooth"]


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

    def __init__(self, optimizer, group_names=None, scheduler=None):
        self.optimizer, self.scheduler = optimizer, scheduler
        self.group_names = group_names or [f"group {i}" for i in range(len(optimizer.param_groups))]
        self.lrs, self.losses = [], []
        self._rates = self._read()

    def _read(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def record(self, rates, loss):
        """Record one mini-batch: the rate of each group it was trained with, and its loss."""
        self.lrs.append(list(rates))
        self.losses.append(loss)

    def on_batch(self, loss):
        """Record a mini-batch's loss and the rates it was trained with, then step the scheduler (if any)."""
        self.record(self._rates, loss)
        if self.scheduler is not None:
            self.scheduler.step()
        self._rates = self._read()

    def plot(self, n_skip=10, n_skip_end=5, ax=None):
        """Smoothed loss against the last group's learning rate, log x axis: the lesson's plot after `lr_find()`.

        The first `n_skip` and last `n_skip_end` mini-batches are left out, as the lesson's plot did.
        """
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        n = len(self.losses)
        if n_skip + n_skip_end >= n:
            n_skip, n_skip_end = 0, 0
        sl = slice(n_skip, n - n_skip_end)
        ax.plot([row[-1] for row in self.lrs][sl], smooth(self.losses)[sl])
        ax.set_xscale("log")
        ax.set(xlabel="learning rate (log scale)", ylabel="loss")
        return ax

    def plot_lr(self, ax=None):
        """Learning rate of each layer group against iteration."""
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        for i, name in enumerate(self.group_names):
            ax.plot([row[i] for row in self.lrs], label=name)
        ax.set(xlabel="iteration (mini-batch)", ylabel="learning rate")
        if len(self.group_names) > 1:
            ax.set_yscale("log")
            ax.legend()
        return ax

    def plot_loss(self, ax=None):
        """Training loss of each mini-batch against iteration."""
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        ax.plot(self.losses)
        ax.set(xlabel="iteration (mini-batch)", ylabel="training loss")
        return ax
