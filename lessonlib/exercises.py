"""Classroom exercises: `check(key, answer, ...)` says whether an answer is right, with a hint if not.

Each exercise has a prompt, a hint, a checker and a worked solution (`solution(key)` prints
it; the tests run every solution through its checker, so none can drift out of date).

"Predict before you run": `guess(key, value)` keeps your guess before an experiment runs; `reveal(key, ...)`
afterwards reads the answer off your own run and puts it beside your guess.

This module asks, checks and reveals; what the exercises and predictions say, and how each answer is checked,
is in `lessonlib.exercise_bank` (add one there).
"""
from lessonlib.engine import classlog
from lessonlib.engine.language import problem, say
from lessonlib.exercise_bank import EXERCISES, PREDICTIONS

__all__ = ["GUESSES", "check", "guess", "reveal", "solution"]


GUESSES = {}   # {key: guess}, what `guess` kept in this kernel


def guess(key, value):
    """Keep your guess for the experiment `key` before you run it; `reveal(key, ...)` answers it afterwards.

    Example:
        >>> guess("03-lower-training-loss", "augmentation")
    """
    if key not in PREDICTIONS:
        raise KeyError(problem("no prediction {key!r}; predictions: {PREDICTIONS}",
                               key=key, PREDICTIONS=sorted(PREDICTIONS)))
    print(say(PREDICTIONS[key].question))
    if value is None:
        print(say("Write your guess above (replace `None`) and run this cell before the experiment below."))
        return   # nothing shown under the cell but the lines above (a returned False read like an answer)
    GUESSES[key] = _plain(value)
    print(say("Your guess is kept: {value!r}. Now run the experiment; `reveal` puts the answer beside it.",
              value=value))


def reveal(key, **context):
    """The answer to prediction `key`, read off your run (`context`: what it measured), beside your guess."""
    if key not in PREDICTIONS:
        raise KeyError(problem("no prediction {key!r}; predictions: {PREDICTIONS}",
                               key=key, PREDICTIONS=sorted(PREDICTIONS)))
    prediction = PREDICTIONS[key]
    answer = _plain(prediction.measure(**context))
    shown = f"{answer:.3g}" if isinstance(answer, float) else repr(answer)
    if key in GUESSES:
        try:
            close = bool(prediction.agrees(GUESSES[key], answer))
        except (TypeError, ValueError):
            close = False
        print(say("You guessed {guess!r}; your run says {shown}.", guess=GUESSES[key], shown=shown) + " "
              + (say("Well predicted!") if close else say("Not what you expected: that is what an experiment is for.")))
    else:
        print(say("Your run says {shown}. (No guess was kept: next time, write one down first. What you expected "
                  "is what you learn from.)", shown=shown))
    print(say(prediction.why))
    return answer


def check(key, answer, **context):
    """Check `answer` to exercise `key`; prints whether it is right and a hint if not; returns True/False.

    `None` (not answered yet) only asks for an answer: the hint comes after a first try.

    Example:
        >>> check("00-count-dogs", 400, path=PATH)
    """
    if key not in EXERCISES:
        raise KeyError(problem("no exercise {key!r}; exercises: {EXERCISES}", key=key, EXERCISES=sorted(EXERCISES)))
    exercise = EXERCISES[key]
    if answer is None:   # the state of every exercise cell before the student writes anything: no hint yet
        print(say("Write your answer in the cell above (replace `None`), then run this cell again."))
        return False
    try:
        ok = bool(exercise.checker(_plain(answer), **context))
    except (TypeError, ValueError, OverflowError, OSError) as e:   # e.g. 10**400, or a folder that is not there
        ok = False
        print(say("That answer could not be checked ({kind}: {e}).", kind=type(e).__name__, e=e))
    print(say("Correct!") if ok else say("Not yet. Hint: {hint}", hint=say(exercise.hint)))
    classlog.record(key, ok, answer)   # only when the teacher switched the class log on (LESSONLIB_CLASS_LOG=1)
    return ok


def _plain(answer):
    """A NumPy or PyTorch scalar as the Python number or bool it holds: np.int64(400) is 400, np.bool_(False) is
    False, so an answer computed with NumPy counts the same as one typed in."""
    if getattr(answer, "shape", None) == () and hasattr(answer, "item"):
        return answer.item()
    return answer


def solution(key):
    """Print a worked solution to exercise `key`."""
    print(EXERCISES[key].solution)
