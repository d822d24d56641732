"""Metrics: accuracy for one class per image, F-beta for several tags per image.

F-beta combines precision (of the tags predicted, how many are right) and recall (of the true
tags, how many were found); beta = 2 weighs recall twice as much, as the Planet competition did.
Averages over a multi-label set:
- "samples": F-beta of each image's tags, then the mean over images (the competition's score);
- "micro": count every (image, tag) decision together, then one F-beta;
- "macro": F-beta of each tag over all images, then the mean over tags (rare tags count as much as common ones).
"""
import numpy as np
import torch

from lessonlib.engine.language import language, problem, say
from lessonlib.engine.tables import Table

__all__ = ["accuracy", "fbeta", "f2", "best_threshold", "per_tag_report", "binomial_interval", "bootstrap_interval",
           "beside_the_notes", "right_of", "accuracies", "difference_in_photos", "seeds_spread", "wrong_of",
           "describe_baseline", "describe_common_and_rare", "describe_predicting_nothing", "describe_resizing",
           "describe_tags_per_image"]


def accuracy(log_preds, y):
    """Fraction of rows whose highest score is the true class."""
    return float((torch.as_tensor(log_preds).argmax(dim=1) == torch.as_tensor(y)).double().mean())


def _fbeta_from_counts(tp, fp, fn, beta):
    b2 = beta ** 2
    denominator = (1 + b2) * tp + b2 * fn + fp
    return np.where(denominator > 0, (1 + b2) * tp / np.where(denominator > 0, denominator, 1), 0.0)


def fbeta(preds, targs, beta=2, thresh=0.2, average="samples"):
    """F-beta of tag probabilities `preds` (images x tags), predicted where above `thresh`, against 0/1 `targs`."""
    p = np.asarray(preds) > thresh
    t = np.asarray(targs) > 0.5
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError(problem("preds {shape} and targs {shape2} must both be (images, tags)",
                                 shape=p.shape, shape2=t.shape))
    if average == "micro":
        axis = None
    elif average in ("samples", "macro"):
        axis = 1 if average == "samples" else 0
    else:
        raise ValueError(problem("average={average!r}: choose 'samples', 'micro' or 'macro'", average=average))
    tp, fp, fn = (p & t).sum(axis), (p & ~t).sum(axis), (~p & t).sum(axis)
    return float(np.mean(fbeta_per_image(preds, targs, beta, thresh) if axis == 1 else
                         _fbeta_from_counts(tp, fp, fn, beta)))


def fbeta_per_image(preds, targs, beta=2, thresh=0.2):
    """F-beta of each image's tags (the numbers whose mean is the "samples" average)."""
    p, t = np.asarray(preds) > thresh, np.asarray(targs) > 0.5
    return _fbeta_from_counts((p & t).sum(1), (p & ~t).sum(1), (~p & t).sum(1), beta)


def f2(preds, targs, start=0.17, end=0.24, step=0.01):
    """The best "samples" F2 over thresholds `start`..`end`, as the Planet competition's scorer took it."""
    return max(fbeta(preds, targs, 2, t) for t in np.arange(start, end + step / 2, step))


def best_threshold(preds, targs, thresholds=np.arange(0.05, 0.95, 0.01), beta=2):
    """(best threshold, its F-beta, all F-betas) over `thresholds`."""
    scores = np.array([fbeta(preds, targs, beta, t) for t in thresholds])
    return float(thresholds[int(np.argmax(scores))]), float(scores.max()), scores


def per_tag_report(preds, targs, classes, thresh=0.2):
    """Per tag: how many images have it, precision, recall and F2 at `thresh` (a pandas DataFrame)."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    t = np.asarray(targs) > 0.5
    p = np.asarray(preds) > thresh
    precision, recall, f, support = precision_recall_fscore_support(t, p, beta=2, zero_division=0)
    report = pd.DataFrame({"tag": classes, "images": support, "precision": precision, "recall": recall,
                           "f2": f}).sort_values("images", ascending=False, ignore_index=True)
    # In English the columns show their names; elsewhere "precision" needs its own template, since say("precision")
    # is the numbers' precision (fp32, bf16) of lessonlib's policy.
    precision = "precision" if language() == "en" else say("precision of the predicted tags")
    return Table(report, labels={"tag": say("tag"), "images": say("images"), "precision": precision,
                                 "recall": say("recall")})   # code reads the English columns (`report.f2`)


def describe_tags_per_image(per_image):
    """One line for people: how many tags the images carry (`per_image`: one count per image)."""
    per_image = np.asarray(per_image)
    return say("tags per chip: {low} to {high}, {mean:.1f} on average", low=per_image.min(), high=per_image.max(),
               mean=per_image.mean())


def describe_predicting_nothing(nothing, targs):
    """One line for people: the per-tag accuracy and the F2 of predicting no tag at all (`nothing`: zeros)."""
    return say("per-tag accuracy of predicting nothing: {accuracy:.1%}; its F2: {f2:.2f}",
               accuracy=(np.asarray(nothing) == np.asarray(targs)).mean(), f2=fbeta(nothing, targs))


def describe_resizing(first_sz, first_f2, sz, f2_after):
    """One line for people: F2 after training at `first_sz` px, then after going on at `sz` px."""
    return say("F2 at {first_sz} px: {first:.3f}; after {sz} px: {after:.3f}", first_sz=first_sz, first=first_f2,
               sz=sz, after=f2_after)


def describe_baseline(tags, baseline_f2, model_f2):
    """One line for people: the F2 of always predicting `tags` (the most common ones) beside the model's."""
    return say("always '{tags}': F2 = {baseline:.3f}; the model: F2 = {model:.3f}", tags=" ".join(tags),
               baseline=baseline_f2, model=model_f2)


def describe_common_and_rare(common, rare, min_images=10):
    """One line for people: the mean F2 of the tags on `min_images` or more images (`common`, rows of
    `per_tag_report`) and of the rarer ones (`rare`)."""
    return say("mean F2 of the {n_common} tags on {min_images} or more chips: {common:.2f}; of the {n_rare} rarer "
               "ones: {rare:.2f}", n_common=len(common), min_images=min_images, common=common.f2.mean(),
               n_rare=len(rare), rare=rare.f2.mean())


# ---------------------------------------------------------------- how much a number measured on n images is worth

def binomial_interval(accuracy, n, confidence=0.95):
    """(low, high): where the true accuracy lies, given `accuracy` measured on `n` images (Wilson's interval).

    On 200 images one image is 0.5 percentage points, and 199 right of 200 (0.995) is compatible with anything
    from about 0.972 to 0.999: two models measured there must differ by several images before it means anything.
    """
    from statistics import NormalDist
    if not (n >= 1 and 0 <= accuracy <= 1):
        raise ValueError(problem("need n >= 1 images and an accuracy from 0 to 1, got n={n}, accuracy={accuracy}",
                                 n=n, accuracy=accuracy))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def right_of(right, n, low, high):
    """One line for people: `right` of `n` validation photos right, the accuracy and its 95% interval (low, high),
    e.g. '4 of 6 validation photos right: 0.667 (95% interval 0.300 to 0.903)'."""
    return say("{right} of {n} validation photos right: {accuracy:.3f} (95% interval {low:.3f} to {high:.3f})",
               right=right, n=n, accuracy=right / n, low=low, high=high)


def wrong_of(wrong, n):
    """One line for people: `wrong` of `n` validation images are wrong."""
    return say("{wrong} of {n} validation images are wrong", wrong=wrong, n=n)


# The results lessons 01, 04 and 05 name when they print accuracies: shown in the reader's language (any other
# name, such as "TTA", as given).
ACCURACY_NAMES = ("accuracy after one epoch", "precompute only", "after 3 epochs of SGDR with augmentation",
                  "validation accuracy with only the head trained", "head only", "fine-tuned", "plain")


def accuracies(named, n=None):
    """Accuracies side by side, one line for people: {name: accuracy} -> 'head only: 0.990; fine-tuned: 0.995'.
    With `n`, the number of validation images, it adds what one image is worth: '(200 photos: one is 0.5%)'."""
    shown = say("; ").join(say("{name}: {accuracy:.3f}", name=say(name) if name in ACCURACY_NAMES else name,
                               accuracy=accuracy) for name, accuracy in named.items())
    return say("{accuracies} ({n} photos: one is {one:.1%})", accuracies=shown, n=n, one=1 / n) if n else shown


def seeds_spread(accuracies_by_seed, n):
    """One line for people on how far runs that differ only in their seed land apart, on `n` validation images:
    '5 seeds: 0.975 to 0.990, 3 photos apart of 200'."""
    values = np.asarray(accuracies_by_seed, dtype=float)
    return say("{k} seeds: {low:.3f} to {high:.3f}, {apart} photos apart of {n}", k=len(values), low=values.min(),
               high=values.max(), apart=round((values.max() - values.min()) * n), n=n)


def difference_in_photos(a, b, n):
    """One line for people: how many of `n` validation photos the accuracies `a` and `b` lie apart:
    '0.99365 - 0.99316 = 0.00049: 1.0 of about 2,000 photos'."""
    return say("{a} - {b} = {difference:.5f}: {photos:.1f} of about {n:,} photos", a=a, b=b, difference=a - b,
               photos=(a - b) * n, n=n)


def bootstrap_interval(values, confidence=0.95, n_resamples=10_000, seed=0):
    """(low, high) of the mean of `values` (one score per image, or one result per run), by resampling them."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(problem("need at least 2 values in a flat list, got shape {shape}", shape=values.shape))
    means = np.random.default_rng(seed).choice(values, (n_resamples, len(values))).mean(1)
    return tuple(float(q) for q in np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]))


# What lessons 01, 04 and 09 write beside the notes (the results' names, the notes' network and validation set):
# shown in the reader's language, any other text as given.
NOTES_TEXTS = ("after one precompute epoch", "resnet34 (the lecture's)",
               "2,000 (the lecture's valid/; not in the notes)", "precompute, 1 epoch",
               "then 3 epochs of SGDR with augmentation", "resnet34 (fast.ai's notebook; not in the notes)",
               "8,095 (a fifth of 40,479; not in the notes)")


def beside_the_notes(learn, rows):
    """A table putting each of the notes' 2018 numbers beside yours, with the network and validation set of each.

    `learn`: the learner your numbers come from; its network (`learn.arch`) and validation images
    (`len(learn.data.val_ds)`) fill your side. `rows`: {name: (yours, your 95% interval, the notes' number,
    their network, their validation images)}; write what the notes do not say as such, e.g. "2,000 (not in the
    notes: fast.ai's valid/ folder)". "within the noise" is True where the notes' number lies inside your interval.

    Example:
        >>> beside_the_notes(learn, {"one epoch": (0.99, (0.96, 1.0), 0.98975, "ResNet34", "2,000")})
    """
    import pandas as pd
    n = len(learn.data.val_ds)
    table = pd.DataFrame([{"result": name, "yours": ours,
                           "your 95% interval": say("{low:.3f} to {high:.3f}", low=lo, high=hi),
                           "your network": learn.arch, "your validation images": n,
                           "notes (2018)": notes, "their network": network, "their validation images": n_notes,
                           "one image moves yours by": 1 / n, "within the noise": bool(lo <= notes <= hi)}
                          for name, (ours, (lo, hi), notes, network, n_notes) in rows.items()])
    labels = {"result": say("result"), "yours": say("yours"), "your 95% interval": say("your 95% interval"),
              "your network": say("your network"), "your validation images": say("your validation images"),
              "notes (2018)": say("notes (2018)"), "their network": say("their network"),
              "their validation images": say("their validation images"),
              "one image moves yours by": say("one image moves yours by"), "within the noise": say("within the noise")}
    return Table(table.set_index("result"), labels=labels,   # code reads the English names; people, their words
                 cells={"within the noise": {True: say("True"), False: say("False")},
                        **{column: {text: say(text) for text in NOTES_TEXTS}
                           for column in ("result", "their network", "their validation images")}})
