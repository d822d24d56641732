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

__all__ = ["accuracy", "fbeta", "f2", "best_threshold", "per_tag_report"]


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
        raise ValueError(f"preds {p.shape} and targs {t.shape} must both be (images, tags)")
    if average == "micro":
        axis = None
    elif average in ("samples", "macro"):
        axis = 1 if average == "samples" else 0
    else:
        raise ValueError(f"average={average!r}: choose 'samples', 'micro' or 'macro'")
    tp, fp, fn = (p & t).sum(axis), (p & ~t).sum(axis), (~p & t).sum(axis)
    return float(np.mean(_fbeta_from_counts(tp, fp, fn, beta)))


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
    return pd.DataFrame({"tag": classes, "images": support, "precision": precision, "recall": recall,
                         "f2": f}).sort_values("images", ascending=False, ignore_index=True)
