"""Interactive explorers for the lessons (ipywidgets).

Each explorer keeps its state in plain attributes and methods that a test can drive
without a browser; `widget()` only builds the controls and the display around them.
"""
import numpy as np

from lessonlib.lr_finder import describe_region


class LRExplorer:
    """Explore a learning-rate finder's curve: pick a rate, read what it means, try it.

    State: `lr` (the chosen rate), `label`/`explanation` (what that part of the curve means),
    `runs` ({rate: losses of a short training from the same starting point}).

    Example:
        >>> explorer = LRExplorer(learn, lrf)
        >>> explorer.widget()          # slider, explanation, "train at this rate" button, plot
        >>> explorer.set_lr(1e-1); explorer.train()   # the same, without a browser
    """

    def __init__(self, learn, lrf, num_it=20):
        self.learn, self.lrf, self.num_it = learn, lrf, num_it
        self.runs = {}
        self.set_lr(lrf.suggestion)

    def set_lr(self, lr):
        """Choose a learning rate within the swept range and update the explanation."""
        lo, hi = float(self.lrf.lrs[0]), float(self.lrf.lrs[-1])
        self.lr = float(np.clip(lr, lo, hi))
        self.label, self.explanation = describe_region(self.lrf, self.lr)
        return self.label

    def train(self):
        """Train `num_it` mini-batches at the chosen rate from the learner's current state (then restore it)."""
        self.runs[self.lr] = self.learn.try_lr(self.lr, self.num_it)
        return self.runs[self.lr]

    def draw(self, fig=None):
        """The finder's curve with the chosen rate marked, and the loss of every run tried so far."""
        import matplotlib.pyplot as plt
        fig = fig or plt.figure(figsize=(10, 3.6))
        fig.clear()
        left, right = fig.subplots(1, 2)
        self.lrf.plot(suggestions=False, ax=left)
        left.axvline(self.lr, color="k", linestyle="--")
        left.set_title(f"{self.lr:.1e}: {self.label}")
        for lr, losses in sorted(self.runs.items()):
            right.plot(np.arange(1, len(losses) + 1), losses, label=f"{lr:.1e} ({describe_region(self.lrf, lr)[0]})")
        right.set(xlabel="mini-batch", ylabel="training loss", title="training at a constant rate")
        if self.runs:
            right.legend(fontsize=8)
            finite = np.concatenate([l[np.isfinite(l)] for l in self.runs.values()])
            if len(finite):
                right.set_ylim(0, min(finite.max(), 5 * np.median(finite) + 1e-9) * 1.1)
        fig.tight_layout()
        return fig

    def widget(self):
        """Slider over the swept range, the explanation, a button that trains, and the plots."""
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        lo, hi = np.log10(self.lrf.lrs[0]), np.log10(self.lrf.lrs[-1])
        slider = w.FloatLogSlider(value=self.lr, base=10, min=lo, max=hi, step=0.05, description="learning rate",
                                  readout_format=".1e", style={"description_width": "initial"},
                                  layout=w.Layout(width="60%"))
        text = w.HTML()
        button = w.Button(description=f"train {self.num_it} mini-batches at this rate", icon="play",
                          layout=w.Layout(width="auto"))
        out = w.Output()

        def refresh():
            text.value = f"<b>{self.label}</b>: {self.explanation}"
            with out:
                out.clear_output(wait=True)
                fig = self.draw()
                display(fig)
                plt.close(fig)

        def on_slide(change):
            self.set_lr(change["new"])
            refresh()

        def on_click(_):
            button.disabled = True
            try:
                self.train()
            finally:
                button.disabled = False
            refresh()

        slider.observe(on_slide, names="value")
        button.on_click(on_click)
        refresh()
        return w.VBox([slider, text, button, out])
