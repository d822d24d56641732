"""The learning-rate range test ("LR finder") and how to read it.

Train on mini-batches while the learning rate grows exponentially from tiny to huge, and
record the loss. The loss first barely moves (rate too low), then falls fast, then shoots
up (rate too high). The notes' rule: take the power of ten one order below the rate at the loss minimum (a
minimum at 0.35 gives 1e-2), `lrf.suggestions["power_of_ten_below_min"]`. lessonlib's single number,
`lrf.suggestion`, reads the curve with `valley` (fastai's default today) instead: lesson 02 measures why.
Afterwards everything is put back exactly as it was: weights, BatchNorm statistics,
optimizer state and random number generators, so running the finder never changes
what training does next.
"""
import warnings
from dataclasses import dataclass, field

import numpy as np

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say
from lessonlib.engine.policy import memory_explained, resolve_policy
from lessonlib.engine.snapshot import Snapshot
from lessonlib.engine.steps import StepPlan
from lessonlib.recorder import Recorder
from lessonlib.training import train_step

__all__ = ["LRFinder", "RULES", "Sweep", "compare_rates", "describe_rate", "describe_region", "find_lr", "last_losses",
           "losses_at", "power_of_ten_below", "rate_name", "region_label", "rule_at", "rule_name", "suggest_order_below_min",
           "suggest_power_of_ten_below_min", "suggest_steepest", "suggest_valley"]

# The default is "valley". benchmarks/lr_rules.py trained each rule's rate the way the lessons train (3 SGDR epochs
# of the head, then fine-tuning at [lr/100, lr/10, lr]), EfficientNet-Lite0 on dogscats-mini, 224 px, 5 seeds. On
# an AMX CPU in bfloat16 (benchmarks/measured/2026-11-29-cpu-amx/) every minimum lay in 0.35-0.89, the notes' rule
# gave 1e-2 each time and tied "valley" (0 or 1 photo of 200 wrong). In float32 on an AVX-512 CPU
# (benchmarks/measured/2026-12-07-cpu-avx512/) one seed's minimum lay at 1.07: the notes' rule jumped to 0.1 and
# fine-tuning broke (100 of 200 wrong), while "valley" moves with the curve and got at most 1 wrong on every seed.
# The minimum / 10 ("order_below_min"), read off the smoothed curve, which lags the raw loss, picked 0.035 to 0.089
# and broke one fine-tuning run of five.
DEFAULT_SUGGESTION = "valley"
REGIONS = ("too high", "high", "good", "low", "too low")   # describe_region's labels, steepest rate first
RULES = {
    "order_below_min": "the rate at the smoothed loss minimum, divided by 10 (a continuous reading of the notes' rule)",
    "steepest": "where the smoothed loss falls fastest against log(learning rate)",
    "valley": "two thirds of the way down the longest stretch where the smoothed loss keeps falling",
    "power_of_ten_below_min": "the power of ten one order below the rate at the smoothed loss minimum (the notes' "
                              "rule: a minimum anywhere from 0.1 to 0.99 gives 1e-2)",
}


def _cycle(batches):
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError(problem("the training data has no mini-batches"))


# ---------------------------------------------------------------- the sweep

@dataclass(frozen=True)
class Sweep:
    """How the finder sweeps: the rate grows exponentially from `start_lr` to `end_lr` over `num_it`
    mini-batches; the loss is smoothed with `beta`; with `stop_div` the sweep stops once the smoothed loss
    passes 4x its best."""
    start_lr: float = 1e-7
    end_lr: float = 10
    num_it: int = 100
    beta: float = 0.98
    stop_div: bool = True

    def __post_init__(self):
        if not (0 < self.start_lr < self.end_lr) or not np.isfinite(self.end_lr):
            raise ValueError(problem("need 0 < start_lr < end_lr, got {start_lr} and {end_lr}",
                                     start_lr=self.start_lr, end_lr=self.end_lr))
        if self.num_it < 2:
            raise ValueError(problem("num_it={num_it}: the sweep needs at least 2 mini-batches",
                                     num_it=self.num_it))


def find_lr(model, optimizer, loss_fn, train_batches, device=None, sweep=Sweep(), group_names=None):
    """LR range test on any PyTorch model; returns an `LRFinder` and restores every state.

    Args:
        model, optimizer, loss_fn: as in any training loop. The optimizer's current per-group
            rates set the ratios between groups (a differential-rate setup stays differential);
            the last group sweeps from `sweep.start_lr` to `sweep.end_lr`.
        train_batches: (x, y) mini-batches, cycled when shorter than `sweep.num_it`.
        device: "cpu", "cuda", ... (default: the best one present), or a `Policy` (device, precision, pieces).
        sweep: a `Sweep` (rates, length, smoothing).

    Example:
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        >>> lrf = find_lr(model, optimizer, nn.CrossEntropyLoss(), train_dl, device="cpu")
        >>> lrf.plot(); lrf.suggestion
    """
    policy = resolve_policy(device)
    model.to(policy.device)   # its layout stays the caller's (a learner's model is already prepared)
    ratios = np.array([g["lr"] for g in optimizer.param_groups], dtype=float)
    ratios = ratios / ratios[-1] if ratios[-1] > 0 else np.ones_like(ratios)
    growth = (sweep.end_lr / sweep.start_lr) ** (1 / (sweep.num_it - 1))
    plan = StepPlan(policy.for_training(model), model, optimizer, keep_finite=False)   # all is put back at the end
    recorder = Recorder(optimizer, group_names)
    best, stopped = np.inf, None
    bs = getattr(train_batches, "batch_size", None)
    with Snapshot(model, optimizer, modes=True, rng=True).kept(), memory_explained(policy.device, bs=bs):
        model.train()
        for i, (x, y) in zip(range(sweep.num_it), _cycle(train_batches)):
            for g, ratio in zip(optimizer.param_groups, ratios):
                g["lr"] = sweep.start_lr * ratio * growth ** i
            try:
                value = train_step(model, x, y, loss_fn, optimizer, plan).item()
            except FloatingPointError:   # the rate is far too high: the curve has ended
                value = float("inf")
            recorder.on_batch(value)
            smoothed = recorder.smoothed(sweep.beta)[-1]   # the smoothing the plot and the suggestions read
            if not np.isfinite(smoothed) or (sweep.stop_div and smoothed > 4 * best):
                stopped = i
                break
            best = min(best, smoothed)
        optimizer.zero_grad(set_to_none=True)
    return LRFinder(recorder, sweep.beta, stopped)


def losses_at(model, optimizer, loss_fn, train_batches, lr, num_it, device=None):
    """Train `num_it` mini-batches at a constant `lr` and return their losses; then restore everything.

    `device`: as in `find_lr`."""
    policy = resolve_policy(device).for_training(model)
    plan = StepPlan(policy, model, optimizer, keep_finite=False)
    losses = []
    bs = getattr(train_batches, "batch_size", None)
    with Snapshot(model, optimizer, modes=True, rng=True).kept(), memory_explained(policy.device, bs=bs):
        model.train()
        for g in optimizer.param_groups:
            g["lr"] = lr
        for _, (x, y) in zip(range(num_it), _cycle(train_batches)):
            try:
                losses.append(train_step(model, x, y, loss_fn, optimizer, plan).item())
            except FloatingPointError:
                losses.append(float("inf"))
                break
        optimizer.zero_grad(set_to_none=True)
    return np.array(losses)


def describe_region(lrf, lr):
    """(label, sentence) saying what training at `lr` would do, read off the finder's curve.

    Past the smoothed minimum: too high. Above the default suggestion (`lrf.suggestion`), more than 10 times above
    it or within 10 times of the minimum: high (still learning, but fine-tuning at such rates broke runs in lesson
    02's measurement). From a tenth of the suggestion up to there: good. Below: "low" once the loss has come a fifth
    of the way down from its early plateau (median of the first tenth) to its minimum for good, else "too low".
    """
    if not (isinstance(lr, (int, float, np.number)) and np.isfinite(lr) and lr > 0):
        raise ValueError(problem("lr={lr!r}: a learning rate is a positive number, such as 1e-2", lr=lr))
    lrs, smoothed = lrf.lrs, lrf.smoothed
    i_min = int(np.nanargmin(smoothed))
    plateau = float(np.median(smoothed[:max(1, len(smoothed) // 10)]))
    still = np.flatnonzero(smoothed[:i_min + 1] >= plateau - 0.2 * (plateau - smoothed[i_min]))
    first_moving = lrs[still[-1] + 1] if len(still) else lrs[0]   # from here on, the loss stays lower
    if lr > lrs[i_min]:
        return "too high", say("past the minimum: the loss rises again, training is unstable or diverges. "
                               "Choose a rate at least 10x smaller.")
    if lr > lrf.suggestion * (1 + 1e-9) and (lr > 10 * lrf.suggestion or lr >= lrs[i_min] / 10 * (1 - 1e-9)):
        return "high", say("the loss still falls on average, but each step is large: the head may train, while "
                           "fine-tuning at such rates broke runs in lesson 02's measurement (the minimum / 10 lands "
                           "here, and so does the notes' rule when the minimum lies just above a power of ten).")
    if lr >= lrf.suggestion / 10:
        return "good", say("the loss falls quickly and steadily: a rate to train with.")
    if lr >= first_moving:
        return "low", say("the loss goes down, but slowly: training works, it just needs many more mini-batches.")
    return "too low", say("the loss barely moves: each step is so small that the model hardly learns.")


def region_label(region):
    """A region of the finder's curve (a label of `describe_region`, one of REGIONS) as people read it."""
    return {"too high": say("too high"), "high": say("high"), "good": say("good"), "low": say("low"),
            "too low": say("too low")}[region]


def rate_name(name, lr=None):
    """The name people read for a rate the lessons try, with `lr` in brackets when given.

    `name` is a key code uses: a region of the curve ("too low", "good", ...), a rule of `lrf.suggestions`
    ("valley", "power_of_ten_below_min", "order_below_min"), "tiny", "suggested", or the sweep's last rate ("end",
    "last").
    Example: `rate_name("good", 0.4)` is 'good (0.4)' (好（0.4）under LESSONLIB_LANG=zh).
    """
    names = {"valley": say("lrf.suggestion (valley)"), "power_of_ten_below_min": say("the notes' rule"),
             "order_below_min": say("the minimum / 10"),
             "end": say("the sweep's end"), "last": say("the sweep's last"), "tiny": say("tiny"),
             "suggested": say("suggested")}
    shown = names[name] if name in names else region_label(name)
    return shown if lr is None else say("{name} ({lr})", name=shown, lr=lr)


def describe_rate(lrf, name, lr):
    """One line on a rate tried by name: e.g. 'tiny rate 1.5e-07: too low: the loss barely moves: ...'."""
    region, explanation = describe_region(lrf, lr)
    return say("{name} rate {lr:.1e}: {region}: {explanation}", name=rate_name(name), lr=lr,
               region=region_label(region), explanation=explanation)


def last_losses(end, n=5):
    """{name: mean loss of the last `n` mini-batches} as one line people read (`end`: keyed as `rate_name`)."""
    return say("mean loss of the last {n} mini-batches: {losses}", n=n,
               losses={rate_name(name): round(value, 3) for name, value in end.items()})


def compare_rates(runs, ax=None):
    """The training loss of each run in `runs` ({rate_name key: {"lr", "losses", "val_loss", "accuracy"}}),
    mini-batch by mini-batch from the same start, on a log scale: which rate trained, which went wrong; the legend
    gives each run's validation loss and accuracy at the end."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    for name, run in runs.items():
        ax.plot(run["losses"], label=say("{name} ({lr:.1e}): validation loss {val_loss:.3f}, accuracy {accuracy:.3f}",
                                         name=rate_name(name), lr=run["lr"], val_loss=run["val_loss"],
                                         accuracy=run["accuracy"]))
    title = (say("three learning rates, same start") if len(runs) == 3 else
             say("{n} learning rates, same start", n=len(runs)))
    ax.set(xlabel=say("mini-batch"), ylabel=say("training loss"), yscale="log", title=title)
    ax.legend()
    return ax


# ---------------------------------------------------------------- reading the curve

def suggest_order_below_min(lrs, smoothed):
    """The minimum / 10: the learning rate at the smoothed-loss minimum, divided by 10 (a continuous reading of the
    notes' rule; on a smoothed curve, which lags the raw loss, it lands high)."""
    return float(lrs[int(np.nanargmin(smoothed))] / 10)


def power_of_ten_below(lr):
    """The power of ten one order of magnitude below `lr`: 10 ** (floor(log10(lr)) - 1). 0.35 and 0.89 give 1e-2,
    0.05 gives 1e-3, 1.07 gives 0.1."""
    exponent = np.floor(np.round(np.log10(lr), 9))   # 1e-3 is exactly -3, not -3.0000001
    return float(10.0 ** (exponent - 1))


def suggest_power_of_ten_below_min(lrs, smoothed):
    """The notes' rule (选择上一个指数级别的学习率): the power of ten one order below the rate where the smoothed
    loss is lowest (`power_of_ten_below`). NaN losses (a sweep that blew up) are ignored.
    """
    return power_of_ten_below(lrs[int(np.nanargmin(smoothed))])


def suggest_steepest(lrs, smoothed, skip=10):
    """The learning rate where the smoothed loss falls fastest per unit of log10(learning rate).

    The first `skip` points are left out: the moving average is still settling there.
    """
    end = int(np.nanargmin(smoothed)) + 1
    skip = skip if end - skip >= 3 else 0
    if end < 3:
        return float(lrs[0])
    slope = np.gradient(smoothed[skip:end], np.log10(lrs[skip:end]))
    return float(lrs[skip + int(np.nanargmin(slope))])


def suggest_valley(lrs, smoothed):
    """Two thirds of the way down the longest run of ever-lower smoothed losses (fastai v2's valley)."""
    n = len(smoothed)
    length = np.ones(n, dtype=int)
    for i in range(1, n):   # longest decreasing subsequence ending at i
        for j in range(i):
            if smoothed[i] < smoothed[j] and length[j] + 1 > length[i]:
                length[i] = length[j] + 1
    end = int(np.argmax(length))
    start = end - int(length[end]) + 1
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


SUGGESTERS = {"order_below_min": suggest_order_below_min, "steepest": suggest_steepest, "valley": suggest_valley,
              "power_of_ten_below_min": suggest_power_of_ten_below_min}


def rule_at(lrf, lr):
    """The name of the suggestion in `lrf.suggestions` that `lr` is (to 0.1%), or None; where two rules give the
    same rate, the default's name, then the notes' rule's."""
    for name in sorted(lrf.suggestions, key=lambda name: (name != lrf.default, name != "power_of_ten_below_min")):
        if np.isclose(lr, lrf.suggestions[name], rtol=1e-3, atol=0):
            return name
    return None


def rule_name(name):
    """A suggestion's name (a key of `lrf.suggestions`, which code uses) as people read it in a plot."""
    return {"order_below_min": "order_below_min", "steepest": say("steepest"), "valley": say("valley")}.get(name, name)


@dataclass
class LRFinder:
    """What `lr_find` measured: per mini-batch learning rates and losses, and the suggestions.

    `lrs` are the last layer group's rates (the head's); `losses` the raw losses; `smoothed`
    their bias-corrected moving average; `suggestions` one rate per rule in `RULES`;
    `suggestion` the default rule's ("valley": see DEFAULT_SUGGESTION for why not the notes' rule).
    """
    recorder: Recorder
    beta: float = 0.98
    stopped_at: int = None
    default: str = DEFAULT_SUGGESTION
    notes: list = field(default_factory=list)

    def __post_init__(self):
        self.lrs = np.array([row[-1] for row in self.recorder.lrs])
        self.losses = np.array(self.recorder.losses)
        self.smoothed = self.recorder.smoothed(self.beta)
        finite = np.isfinite(self.smoothed)
        lrs, smoothed = self.lrs[finite], self.smoothed[finite]
        if len(smoothed) < 3:
            raise ValueError(problem("the sweep stopped after fewer than 3 mini-batches: lower start_lr"))
        self.suggestions = {name: rule(lrs, smoothed) for name, rule in SUGGESTERS.items()}
        i_min = int(np.argmin(smoothed))
        if smoothed[-1] < 1.1 * smoothed[i_min] and self.stopped_at is None:
            self.notes.append(problem("the loss never turned up: the sweep may be too short, so the minimum may "
                                      "lie beyond end_lr; try a larger end_lr or num_it"))
        if smoothed[i_min] > 0.95 * smoothed[0] or i_min < 0.05 * len(smoothed):
            self.notes.append(problem("the loss never clearly went down: start_lr may already be too high, or "
                                      "the model is not learning"))

    @property
    def suggestion(self):
        """The default suggestion, the float to pass to `learn.fit`."""
        return self.suggestions[self.default]

    @property
    def min_loss_lr(self):
        """The learning rate at which the smoothed loss was lowest."""
        return float(self.lrs[int(np.nanargmin(self.smoothed))])

    def took(self, seconds):
        """What the sweep took, for people: e.g. '87 mini-batches in 12.98 s' (`seconds`: as you timed it)."""
        return say("{n} mini-batches in {seconds:.2f} s", n=len(self.lrs), seconds=seconds)

    def report(self):
        """Print the suggestions with their rules, and any warning about the curve."""
        for name, lr in self.suggestions.items():
            mark = say("  <- default") if name == self.default else ""
            print(f"{name:>22}: {lr:.2e}   {say(RULES[name])}{mark}")
        for note in self.notes:
            warnings.warn(note, stacklevel=3)

    def plot(self, suggestions=True, skip_start=0, skip_end=0, ax=None):
        """Raw and smoothed loss against learning rate (log scale), with a marker per suggestion."""
        import matplotlib.pyplot as plt
        use_cjk_font()   # text in the reader's language
        ax = ax or plt.subplots(figsize=(7, 4))[1]
        self.recorder.plot(skip_start, skip_end, ax=ax, beta=self.beta, raw=True)   # the one loss-against-rate plot
        if suggestions:
            for (name, lr), color in zip(self.suggestions.items(), ("C3", "C2", "C4", "C5")):
                y = np.interp(np.log10(lr), np.log10(self.lrs), self.smoothed)
                ax.plot([lr], [y], "o", color=color, markersize=9,
                        label=f"{rule_name(name)}: {lr:.1e}" + (say(" (default)") if name == self.default else ""))
        ax.set(title=say("learning-rate finder"))
        finite = self.smoothed[np.isfinite(self.smoothed)]
        low = 0 if np.nanmin(self.losses[np.isfinite(self.losses)]) >= 0 else None
        ax.set_ylim(bottom=low, top=min(np.nanmax(finite), 4 * np.nanmin(finite)) * 1.1)
        ax.legend(fontsize=8)
        return ax
