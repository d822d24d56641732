"""Pictures: images in a grid with titles, and a batch of training images with labels."""
import math
import textwrap

import numpy as np

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say
from lessonlib.metrics import NOTES_TEXTS

__all__ = ["describe_gaps", "plot_body_and_head", "label_text", "plot_descent_paths", "plot_images", "plot_loss_runs", "plot_photo_sizes",
           "plot_seed_spread", "show_augmentations", "show_batch", "wrap_title",
           "describe_targets", "plot_tag_counts", "plot_threshold_scores", "tag_titles"]


def wrap_title(title, size, fontsize=10):
    """`title` broken into lines that fit over an image `size` inches wide (long tag lists would overlap)."""
    width = max(8, int(size * 72 / (0.6 * fontsize)))   # characters per line: a character is about 0.6 em wide
    return "\n".join(textwrap.fill(line, width, break_long_words=True) or line for line in str(title).split("\n"))


# The run names lesson 03 gives plot_loss_runs: shown in the reader's language (any other name as given).
RUN_NAMES = ("no augmentation", "augmentation")


def plot_loss_runs(runs, figsize=(11, 3.5)):
    """Training and validation loss per epoch, one panel per entry of `runs` ({name: [history, ...]}, one faint
    line per history: e.g. one per seed), the panels sharing their loss axis; text in the reader's language.
    Returns the figure."""
    import matplotlib.pyplot as plt
    use_cjk_font()
    fig, axes = plt.subplots(1, len(runs), figsize=figsize, sharey=True, squeeze=False)
    for ax, (name, histories) in zip(axes[0], runs.items()):
        for i, h in enumerate(histories):
            ax.plot(h.epoch, h.trn_loss, "o-", color="C0", alpha=0.5, label=say("training loss") if i == 0 else None)
            ax.plot(h.epoch, h.val_loss, "o-", color="C1", alpha=0.5,
                    label=say("validation loss") if i == 0 else None)
        shown = say(name) if name in RUN_NAMES else name
        ax.set(title=say("{name} ({n} seeds)", name=shown, n=len(histories)), xlabel=say("epoch"))
        ax.legend()
    axes[0][0].set_ylabel(say("loss"))
    return fig


def describe_gaps(gaps):
    """One line for people: {run name: validation loss - training loss at the last epoch, mean over seeds}, the
    lesson's run names (`RUN_NAMES`) in the reader's language."""
    shown = {say(name) if name in RUN_NAMES else name: round(gap, 3) for name, gap in gaps.items()}
    return say("validation loss - training loss, last epoch, mean over seeds:") + " " + str(shown)


def plot_seed_spread(accuracies_by_seed, interval, notes, n, when="after one precompute epoch"):
    """Runs that differ only in their seed, as dots on the accuracy axis, over the 95% interval of your run (on `n`
    validation photos) and beside the notes' number; text in the reader's language (`when`, one of
    `metrics.NOTES_TEXTS` or your own words, ends the axis label). Returns the axes."""
    import matplotlib.pyplot as plt
    use_cjk_font()
    values = np.asarray(accuracies_by_seed, dtype=float)
    low, high = interval
    ax = plt.subplots(figsize=(7, 1.8))[1]
    ax.axvspan(low, high, color="C0", alpha=0.15, label=say("95% interval of your run ({n} photos)", n=n))
    ax.plot(values, np.zeros_like(values), "o", color="C0", label=say("{k} seeds", k=len(values)))
    ax.axvline(notes, color="C3", label=say("the notes (2018)"))
    ax.set(yticks=[], xlabel=say("validation accuracy {when}", when=say(when) if when in NOTES_TEXTS else when))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return ax


def plot_photo_sizes(sizes, cls, size=4):
    """A scatter of photos' (width, height) in pixels, titled "sizes of <n> <cls> photos", its title and axes in
    the reader's language (`cls`, a class name, as the data names it). Returns the axes."""
    import matplotlib.pyplot as plt
    use_cjk_font()
    widths, heights = zip(*sizes)
    ax = plt.figure(figsize=(size, size)).gca()
    ax.scatter(widths, heights, s=8)
    ax.set_xlabel(say("width (px)"))
    ax.set_ylabel(say("height (px)"))
    ax.set_title(say("sizes of {n} {cls} photos", n=len(sizes), cls=cls))
    return ax


# The titles lesson 03 gives plot_images: shown in the reader's language (any other title as given).
SUPTITLES = ("a satellite tile: every version is a valid tile", "a cat, top_down: half of these never happen")


def plot_images(images, titles=None, cols=4, size=2.6, suptitle=None):
    """Show images (PIL, HWC arrays, or CHW uint8 tensors) in a grid with optional titles (wrapped to fit)."""
    import matplotlib.pyplot as plt

    use_cjk_font()   # class names in any language
    images = [_as_hwc(im) for im in images]
    if not images:
        raise ValueError(problem("no images to show"))
    cols = min(cols, len(images))
    rows = math.ceil(len(images) / cols)
    titles = None if titles is None else [wrap_title(t, size) for t in titles]
    title_lines = max((t.count("\n") + 1 for t in titles), default=0) if titles else 0
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, (size + 0.18 * title_lines) * rows +
                                                  (0.4 if suptitle else 0)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.flat, images)):
        ax.imshow(im)
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(say(suptitle) if suptitle in SUPTITLES else suptitle)
    fig.tight_layout()
    return fig


def _as_hwc(im):
    if hasattr(im, "permute"):   # a CHW tensor
        return im.detach().cpu().permute(1, 2, 0).numpy()
    return np.asarray(im)


def label_text(classes, y):
    """A class name, or for a multi-label 0/1 vector the names of the tags present."""
    if np.ndim(y) == 0:
        return classes[int(y)]
    return " ".join(c for c, v in zip(classes, np.asarray(y)) if v > 0.5) or say("(none)")


def describe_targets(classes, y, which="the first chip"):
    """One line for people: a multi-label target vector `y` (a tensor or array) and the tags it names ('targets of
    the first chip: [0.0, 1.0, ...] -> clear primary')."""
    return say("targets of {which}: {targets} -> {tags}", which=say("the first chip") if which == "the first chip"
               else which, targets=y.tolist(), tags=label_text(classes, y))


def tag_titles(classes, targs, preds):
    """Titles for images with several tags: the true tags (`targs`, 0/1 rows) over the predicted ones (`preds`,
    True/False rows), e.g. 'true: clear primary' / 'pred: primary'."""
    return [say("true: {true}\npred: {pred}", true=label_text(classes, t), pred=label_text(classes, p))
            for t, p in zip(targs, preds)]


def plot_tag_counts(tag_counts, n_images):
    """How many of `n_images` images carry each tag (`tag_counts`: a pandas Series, tag -> count, most common
    first), as horizontal bars, the most common at the top. Returns the axes."""
    use_cjk_font()   # text in the reader's language
    ax = tag_counts.plot.barh(figsize=(6, 4), title=say("{n} chips, {k} tags", n=n_images, k=len(tag_counts)))
    ax.set_ylabel(say("tags"))
    ax.invert_yaxis()
    return ax


def plot_threshold_scores(thresholds, scores, best_thresh, best):
    """F2 on the validation set against the threshold, the best threshold marked. Returns the axes."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    ax = plt.figure(figsize=(6, 3)).gca()
    ax.plot(thresholds, scores)
    ax.axvline(best_thresh, color="k", linestyle="--")
    ax.set(xlabel=say("threshold"), ylabel=say("F2 (validation)"),
           title=say("best: {best:.3f} at {thresh:.2f}", best=best, thresh=best_thresh))
    return ax


def show_batch(data, n=8, split="train"):
    """Show `n` images as the model receives them (after transforms), titled with their class."""
    ds = data.trn_ds if split == "train" else data.val_ds
    idxs = np.random.default_rng(0).choice(len(ds), size=min(n, len(ds)), replace=False)
    items = [ds[i] for i in idxs]
    return plot_images([x for x, _ in items], [label_text(data.classes, y) for _, y in items],
                       suptitle=(say("train: {n} images as the model sees them ({sz} px)", n=len(items), sz=data.sz)
                                 if split == "train" else
                                 say("valid: {n} images as the model sees them ({sz} px)", n=len(items), sz=data.sz)))


def show_augmentations(data, idx=0, n=8, cols=4):
    """One training image as it is, then `n` random augmented versions of it, as the model sees them."""
    ds = data.trn_ds
    images = [data.tfms.valid(ds.get_image(idx))] + [ds[idx][0] for _ in range(n)]
    titles = [say("original (validation transform)")] + [say("augmented {i}", i=i + 1) for i in range(n)]
    return plot_images(images, titles, cols=cols + 1 if (n + 1) % cols else cols,
                       suptitle=say("{name}: {n} random versions", name=ds.fnames[idx].name, n=n))


def plot_descent_paths(curvatures, lr, paths, ax=None):
    """The paths of gradient descent on the bowl f(w) = (c1 * w1**2 + c2 * w2**2) / 2, drawn over its contours.

    `curvatures` is (c1, c2); `paths` is {momentum: array of positions, one (w1, w2) row per step}, momentum 0
    being plain gradient descent. Example, lesson 02: `plot_descent_paths((1, 100), 0.019, {0: plain, 0.9: with_momentum})`.
    """
    import matplotlib.pyplot as plt

    use_cjk_font()   # title and labels in the reader's language
    c1, c2 = curvatures
    ax = ax or plt.subplots(figsize=(8, 3.6), layout="constrained")[1]
    every = np.concatenate([np.asarray(path, dtype=float) for path in paths.values()])
    w1_max, w2_max = (1.15 * np.abs(every).max(axis=0)).tolist()
    w1, w2 = np.meshgrid(np.linspace(-w1_max, w1_max, 200), np.linspace(-w2_max, w2_max, 200))
    ax.contour(w1, w2, (c1 * w1 ** 2 + c2 * w2 ** 2) / 2, levels=12, colors="lightgray", linewidths=0.8)
    for momentum, path in paths.items():
        path = np.asarray(path, dtype=float)
        loss = (c1 * path[-1, 0] ** 2 + c2 * path[-1, 1] ** 2) / 2
        name = say("plain gradient descent") if momentum == 0 else say("momentum {momentum}", momentum=momentum)
        ax.plot(path[:, 0], path[:, 1], "o-", markersize=3, linewidth=1,
                label=say("{name}: loss {loss:.3f} after {n} steps", name=name, loss=loss, n=len(path) - 1))
    ax.plot([0], [0], "k+", markersize=10)
    ax.set(title=say("the same learning rate ({lr}) on a long, narrow bowl", lr=lr),
           xlabel=say("w1 (along the valley)"), ylabel=say("w2 (across the valley)"))
    ax.legend(loc="lower right", fontsize=9)
    return ax


def plot_body_and_head(learn):
    """`learn`'s network as its three layer groups, from the photo to the classes: each group a box as wide as its
    share of the parameters (a sliver at the least), with its parameter count and whether it trains now, and the
    place where precompute stores the body's output (`learn.body.n_features` numbers per photo). Drawn from the
    learner itself: run it again after `unfreeze()` and the body trains. Returns the axes.

    Example:
        >>> learn = ConvLearner.pretrained("resnet34", data, precompute=True)
        >>> plot_body_and_head(learn)      # the body frozen, the head trains, precompute between them
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    use_cjk_font()   # labels in the reader's language
    names = [say("early body"), say("late body"), say("head")]   # the layer groups, as people read them
    sizes = [sum(p.numel() for p in g.parameters()) for g in learn.layer_groups]
    grads = [[p.requires_grad for p in g.parameters()] for g in learn.layer_groups]
    trains = [all(g) for g in grads]
    states = [say("trains") if all(g) else say("frozen") if not any(g) else say("partly trains") for g in grads]
    widths = [max(0.5, 8.0 * s / sum(sizes)) for s in sizes]
    gap = 2.2                                            # between the body and the head: where precompute stores
    left = [1.4, 1.4 + widths[0], 1.4 + widths[0] + widths[1] + gap]
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for name, x, w, size, state, on in zip(names, left, widths, sizes, states, trains):
        ax.add_patch(Rectangle((x, 0), w, 1, facecolor="tab:orange" if on else "lightgrey", edgecolor="black"))
        ax.text(x + w / 2, -0.12, say("{group}\n{n:,} parameters\n{state}", group=name, n=size,
                                      state=state), ha="center", va="top", fontsize=9)
    body_end = left[1] + widths[1]
    ax.text(0.7, 0.5, say("photo"), ha="center", va="center", fontsize=10)
    ax.text(left[0] + (body_end - left[0]) / 2, 1.12, say("body (pretrained on ImageNet)"), ha="center", fontsize=10)
    head_end = left[2] + widths[2]
    ax.text(head_end + 0.9, 0.5, say("{c} classes", c=learn.data.c), ha="center", va="center", fontsize=10)
    for x0, x1 in ((1.0, left[0]), (body_end, left[2]), (head_end, head_end + 0.5)):
        ax.annotate("", xy=(x1, 0.5), xytext=(x0, 0.5), arrowprops=dict(arrowstyle="->"))
    store = body_end + gap / 2
    ax.plot([store, store], [0.05, 0.95], linestyle="--", color="tab:blue")
    stored = (say("precompute stores\nthis: {n:,} numbers\nper photo", n=learn.body.n_features) if learn.precompute
              else say("precompute off:\nevery photo goes\nthrough the body"))
    ax.text(store, 1.12, stored, ha="center", va="bottom", fontsize=9, color="tab:blue")
    ax.set_xlim(0, head_end + 1.6)
    ax.set_ylim(-1.0, 2.0)
    ax.axis("off")
    ax.set_title(say("{arch}: box widths are shares of the {n:,} parameters", arch=learn.arch, n=sum(sizes)),
                 fontsize=10)
    fig.tight_layout()
    return ax
