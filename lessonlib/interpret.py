"""What did the model get right and wrong? Pick images by correctness and confidence, and show them."""
import numpy as np

from lessonlib.viz import plot_images


def class_probs(log_preds):
    """Probabilities from the log-probabilities `learn.predict()` returns."""
    return np.exp(np.asarray(log_preds))


def random_by_correct(preds, y, correct, n=4, seed=0):
    """Indices of up to `n` random images that were classified correctly (or not)."""
    mask = (np.asarray(preds) == np.asarray(y)) == correct
    idxs = np.flatnonzero(mask)
    return np.random.default_rng(seed).permutation(idxs)[:n]


def most_by_correct(probs, y, cls, correct, n=4):
    """Images of class `cls` classified correctly (or not) with the most confidence in the answer given.

    `probs` is an (images x classes) array. For correct ones, highest probability of `cls`;
    for mistakes, highest probability of the wrong class.
    """
    probs, y = np.asarray(probs), np.asarray(y)
    preds = probs.argmax(1)
    mask = (y == cls) & ((preds == y) == correct)
    idxs = np.flatnonzero(mask)
    confidence = probs[idxs, preds[idxs]]
    return idxs[np.argsort(-confidence)][:n]


def most_uncertain(probs, n=4):
    """Images whose top probability is lowest: the model is least sure about them."""
    probs = np.asarray(probs)
    return np.argsort(probs.max(1))[:n]


def plot_val_with_title(data, idxs, probs, title):
    """Show validation images `idxs`, each titled with the probability of its predicted class."""
    if len(idxs) == 0:
        print(f"{title}: none")
        return None
    probs = np.asarray(probs)
    images = [data.val_ds.get_image(i) for i in idxs]
    titles = [f"{data.classes[probs[i].argmax()]} {probs[i].max():.3f}" for i in idxs]
    return plot_images(images, titles, suptitle=title)
