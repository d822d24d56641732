"""Every lesson 01-10 ends with a questionnaire (issue 41): a "Questionnaire" heading (思考题 in the Chinese edition)
with at least 8 numbered questions, mostly why and what-would-happen-if, a few of them checked through `check()`."""
import json
import re
from pathlib import Path

import pytest

from lessonlib.exercise_bank import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if "01" <= p.name[:2] <= "10")
EDITIONS = [(p, "## Questionnaire") for p in LESSONS] + [(ROOT / "notebooks" / "zh" / p.name, "## 思考题") for p in LESSONS]


def questionnaire(path, heading):
    """The cells from the questionnaire's heading to the next heading (or the end)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = lambda c: "".join(c["source"])
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and text(c).startswith(heading)]
    assert len(starts) == 1, f"{path.name}: {len(starts)} cells start with {heading!r}"
    section = [cells[starts[0]]]
    for c in cells[starts[0] + 1:]:
        if c["cell_type"] == "markdown" and text(c).lstrip().startswith("#"):
            break
        section.append(c)
    return [(c["cell_type"], text(c)) for c in section]


def test_every_lesson_01_to_10_is_here():
    assert [p.name[:2] for p in LESSONS] == [f"{n:02d}" for n in range(1, 11)]


@pytest.mark.parametrize("path, heading", EDITIONS, ids=lambda v: v.parent.name + "/" + v.name if isinstance(v, Path) else "")
def test_the_lesson_ends_with_a_questionnaire_of_eight_numbered_questions_or_more(path, heading):
    section = questionnaire(path, heading)
    questions = [m.group(1) for kind, s in section if kind == "markdown" for m in re.finditer(r"(?m)^(\d+)\. ", s)]
    assert len(questions) >= 8 and questions == [str(n) for n in range(1, len(questions) + 1)], questions
    checked = [re.search(r'check\("([^"]+)"', s).group(1) for kind, s in section if kind == "code" and "check(" in s]
    assert len(checked) >= 2 and all(key in EXERCISES for key in checked)
    assert all("answer = None" in s for kind, s in section if kind == "code"), "left unanswered, the cells run"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_most_written_questions_ask_why_or_what_would_happen(path):
    section = questionnaire(path, "## Questionnaire")
    written = re.findall(r"(?m)^\d+\. (?!\*\*Checked)(.+)$", section[0][1])
    thinking = [q for q in written if re.search(r"\b(why|would|when)\b", q, re.IGNORECASE)]
    assert len(written) >= 8 and len(thinking) > len(written) / 2, written


def test_at_most_a_third_of_the_checked_exercises_are_answered_by_copying():
    """The exercises whose answer a student can copy from a cell above or from the hint, kept by hand: a new
    exercise of that kind must be added here, and the share stays at most a third."""
    copied = {"00-count-dogs", "00-valid-cats", "01-error-rate", "01-most-wrong", "02-min-lr", "02-notes-rule",
              "03-satellite", "03-zoom", "03-overfitting", "04-precompute-off", "05-bn-freeze", "05-unfreeze",
              "07-submission-rows", "07-test-dog", "08-keras-freeze-100", "08-keras-sgd", "10-worst-photo"}
    assert copied <= set(EXERCISES)
    assert len(copied) <= len(EXERCISES) / 3, f"{len(copied)} of {len(EXERCISES)}"


def test_the_keras_recompile_answer_is_what_keras_does_when_frozen_layers_are_unfrozen_without_compiling():
    """08-q-recompile's expected choice, run: compile and fit with a frozen layer, unfreeze it, fit again."""
    np = pytest.importorskip("numpy")
    from lessonlib.exercises import check
    from lessonlib.keras_compare import import_keras
    try:
        keras = import_keras()   # Keras 3 on PyTorch, as lesson 08 runs it
    except ImportError:
        pytest.skip("Keras is not installed")
    inputs = keras.Input((4,))
    body = keras.layers.Dense(3, name="body")
    model = keras.Model(inputs, keras.layers.Dense(1)(body(inputs)))
    body.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.random.default_rng(0).random((8, 4)), np.random.default_rng(1).random((8, 1))
    model.fit(x, y, verbose=0)
    body.trainable = True
    before = [w.copy() for w in body.get_weights()]
    try:
        model.fit(x, y, verbose=0)
        happened = "a" if any((a != b).any() for a, b in zip(before, body.get_weights())) else "b"
    except ValueError:
        happened = "c"
    assert check("08-q-recompile", happened) is True


def test_the_steps_per_decade_answer_of_the_finders_own_sweep_is_accepted():
    """02-q-steps-per-decade: lesson 02's sweep has 100 rates, 1e-7 first and 10 last, so 99 factors in 8 decades;
    the 100 / 8 of 'reaches 10 after 100 mini-batches' counts too."""
    import numpy as np
    from lessonlib.exercises import check
    sweep = 1e-7 * (10 / 1e-7) ** (np.arange(100) / 99)   # lesson 02's cell
    per_decade = np.log(10) / np.log(sweep[1] / sweep[0])
    assert check("02-q-steps-per-decade", float(per_decade)) is True
    assert check("02-q-steps-per-decade", 12.5) is True
