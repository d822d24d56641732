"""Classroom exercises: `check(key, answer, ...)` says whether an answer is right, with a hint if not.

Each exercise has a prompt, a hint, a checker and a worked solution (`solution(key)` prints
it; the tests run every solution through its checker, so none can drift out of date).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Exercise:
    prompt: str
    hint: str
    solution: str            # code that sets `answer`, using the names the checker receives
    checker: callable        # (answer, **context) -> bool


def _count_dogs(answer, path):
    return answer == len([p for p in (Path(path) / "train" / "dogs").iterdir() if p.is_file()])


def _valid_cats(answer, path):
    return answer is not None and Path(answer).resolve() == (Path(path) / "valid" / "cats").resolve()


def _batches_per_epoch(answer, data):
    return answer == len(data.trn_dl)


def _error_rate(answer, log_preds, y):
    wrong = float(np.mean(np.argmax(log_preds, axis=1) != np.asarray(y)))
    return answer is not None and abs(float(answer) - wrong) < 1e-6


def _most_wrong(answer, log_preds, y):
    log_preds, y = np.asarray(log_preds), np.asarray(y)
    wrong = np.flatnonzero(log_preds.argmax(1) != y)
    if len(wrong) == 0:
        return answer is None
    return answer is not None and int(answer) == int(wrong[np.argmax(log_preds[wrong].max(1))])


EXERCISES = {
    "00-count-dogs": Exercise(
        "How many photos of dogs are in the training set?",
        "Each class has its own folder: count the files in PATH/'train'/'dogs' "
        "(`Path.iterdir()` lists a folder; `len(list(...))` counts).",
        "answer = len(list((PATH / 'train' / 'dogs').iterdir()))",
        _count_dogs),
    "00-valid-cats": Exercise(
        "You took a new photo of a cat and want to use it for validation. Which folder must it go into?",
        "Validation images live under PATH/'valid', one folder per class, named exactly like the "
        "class folders under PATH/'train'.",
        "answer = PATH / 'valid' / 'cats'",
        _valid_cats),
    "01-batches-per-epoch": Exercise(
        "How many mini-batches make one epoch over the training images (with precompute off)?",
        "An epoch sees every training image once, `bs` at a time: look at len(data.trn_ds), data.bs, "
        "or simply len(data.trn_dl).",
        "answer = len(data.trn_dl)",
        _batches_per_epoch),
    "01-error-rate": Exercise(
        "What fraction of the validation images does the model get wrong?",
        "The prediction is the class with the highest log-probability: np.argmax(log_preds, axis=1). "
        "Compare it with y and take the mean of the mistakes (it is 1 - accuracy).",
        "answer = float(np.mean(np.argmax(log_preds, axis=1) != y))",
        _error_rate),
    "01-most-wrong": Exercise(
        "Which validation image (its index) is the model most confidently wrong about? None if it makes "
        "no mistake.",
        "Among the images where argmax(log_preds) != y, take the one whose highest log-probability is "
        "largest: np.flatnonzero finds the mistakes, np.argmax picks the most confident.",
        "wrong = np.flatnonzero(log_preds.argmax(1) != y)\n"
        "answer = int(wrong[np.argmax(log_preds[wrong].max(1))]) if len(wrong) else None",
        _most_wrong),
}


def check(key, answer, **context):
    """Check `answer` to exercise `key`; prints whether it is right and a hint if not; returns True/False.

    Example:
        >>> check("00-count-dogs", 400, path=PATH)
    """
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; exercises: {sorted(EXERCISES)}")
    exercise = EXERCISES[key]
    try:
        ok = bool(exercise.checker(answer, **context))
    except (TypeError, ValueError) as e:
        ok = False
        print(f"That answer could not be checked ({e}).")
    print("Correct!" if ok else f"Not yet. Hint: {exercise.hint}")
    return ok


def solution(key):
    """Print a worked solution to exercise `key`."""
    print(EXERCISES[key].solution)
