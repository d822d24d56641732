from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lessonlib.exercise_bank import EXERCISES
from lessonlib.exercises import check, solution
from tests.helpers import make_folders, needs_keras


QUESTIONNAIRE = [key for key in EXERCISES if "-q-" in key]   # the checked questions of the lessons' questionnaires
_lrs = np.logspace(-7, 1, 81)
FINDER = SimpleNamespace(lrs=_lrs, smoothed=(np.log10(_lrs) + 2) ** 2, min_loss_lr=1e-2)   # minimum at 1e-2


class FakeTestSet(list):
    @property
    def fnames(self):
        return list(self)


class FakeTestData:
    classes = ["cats", "dogs"]
    test_ds = FakeTestSet([Path("0002.jpg"), Path("0001.jpg"), Path("0003.jpg")])


class FakeLearner:
    def __init__(self):
        self.precompute = True
        self.data = SimpleNamespace(tfms=SimpleNamespace(augments=True))


def histories():
    """Two seeds per run: {name: [history, history]}."""
    import pandas as pd
    return {"no augmentation": [pd.DataFrame({"trn_loss": [0.3, 0.05], "val_loss": [0.3, 0.35]}),
                                pd.DataFrame({"trn_loss": [0.3, 0.10], "val_loss": [0.3, 0.30]})],
            "augmentation": [pd.DataFrame({"trn_loss": [0.4, 0.25], "val_loss": [0.35, 0.3]}),
                             pd.DataFrame({"trn_loss": [0.4, 0.20], "val_loss": [0.35, 0.4]})]}


@pytest.fixture
def learner(data):
    """A real learner on the tiny images, unfrozen with bn_freeze(True), as lesson 05 leaves it."""
    from lessonlib.learner import ConvLearner
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.unfreeze()
    learn.bn_freeze(True)
    return learn


@pytest.fixture
def context(tmp_path, request):
    path = make_folders(tmp_path / "pets", n_train=5, n_valid=2)
    log_preds = np.log(np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]]))
    y = np.array([0, 0, 1, 1])   # rows 1 and 3 are wrong; row 1 more confidently
    return {"00-count-dogs": {"path": path}, "00-valid-cats": {"path": path},
            "01-batches-per-epoch": {},
            "01-error-rate": {"log_preds": log_preds, "y": y}, "01-most-wrong": {"log_preds": log_preds, "y": y},
            "02-one-step": {}, "02-min-lr": {"lrf": FINDER}, "02-notes-rule": {"lrf": FINDER},
            "04-sgdr-epochs": {}, "04-mid-cycle": {},
            "05-bn-freeze": {"learn": request.getfixturevalue("learner")} if "05-" in request.node.name else {},
            "05-unfreeze": {"learn": request.getfixturevalue("learner")} if "05-" in request.node.name else {},
            "02-updates-per-epoch": {"data": SimpleNamespace(trn_ds=[None] * 100, bs=64)},
            "08-keras-sgd": {},
            "05-tta-accuracy": {},
            "03-satellite": {}, "03-zoom": {},
            "06-upper-side": {}, "06-cell-by-hand": {}, "06-maxpool-shape": {},
            "08-keras-freeze-100": {}, "08-freeze-to": {},
            "09-f2-by-hand": {}, "09-best-threshold": {}, "10-valid-count": {},
            "10-worst-photo": {"files": [path / f"p{i}.jpg" for i in range(4)], "log_preds": log_preds, "y": y},
            "03-overfitting": {"runs": histories()}, "04-precompute-off": {"learn": FakeLearner()},
            "05-differential-rates": {}, "06-dense-by-hand": {}, "07-submission-rows": {"data": FakeTestData()},
            "07-test-dog": {"data": FakeTestData(), "probs": np.array([[0.9, 0.1], [0.25, 0.75], [0.5, 0.5]])},
            **{key: {} for key in QUESTIONNAIRE}}


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_every_solution_passes_and_a_blank_answer_reveals_no_hint(key, context, capsys):
    if key.startswith("08-keras"):
        needs_keras()
    assert check(key, None, **context[key]) is False        # the cell as the notebook ships it, on Run All
    out = capsys.readouterr().out
    assert "Write your answer" in out and EXERCISES[key].hint not in out
    names = {"PATH": context[key].get("path"), "np": np, **context[key]}
    exec(EXERCISES[key].solution, names)
    assert check(key, names["answer"], **context[key]) is True
    assert "Correct!" in capsys.readouterr().out


def test_wrong_answers_are_rejected_with_the_hint(context, capsys):
    assert check("00-count-dogs", 4, **context["00-count-dogs"]) is False
    assert check("00-valid-cats", context["00-valid-cats"]["path"] / "valid" / "dogs", **context["00-valid-cats"]) is False
    assert check("01-error-rate", 0.25, **context["01-error-rate"]) is False
    assert check("01-most-wrong", 3, **context["01-most-wrong"]) is False
    assert check("01-most-wrong", -1, **context["01-most-wrong"]) is False
    assert check("01-most-wrong", 1, **context["01-most-wrong"]) is True
    assert check("02-one-step", 0.25) is False
    assert check("04-sgdr-epochs", 3) is False
    assert check("02-updates-per-epoch", (12, 1), **context["02-updates-per-epoch"]) is False   # 100 / 8 rounds up
    assert check("09-f2-by-hand", 0.6) is False
    assert check("08-freeze-to", 0) is False and check("08-freeze-to", True) is False
    assert check("03-overfitting", "augmentation", **context["03-overfitting"]) is False
    assert check("04-precompute-off", True, **context["04-precompute-off"]) is False
    assert check("05-differential-rates", [1e-2, 1e-3, 1e-4]) is False
    assert check("06-dense-by-hand", 3.5) is False
    assert check("07-submission-rows", 2, **context["07-submission-rows"]) is False
    assert check("07-test-dog", 0.1, **context["07-test-dog"]) is False
    assert EXERCISES["07-test-dog"].hint in capsys.readouterr().out   # a wrong answer gets the hint
    from lessonlib import tfms_from_model, transforms_side_on
    assert check("03-satellite", transforms_side_on) is False
    assert check("03-zoom", tfms_from_model("resnet34", 64, aug_tfms=transforms_side_on, max_zoom=1.1)) is False
    assert check("06-upper-side", [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]) is False   # the lower side instead
    assert check("06-upper-side", np.zeros((3, 3))) is False and check("06-upper-side", [1, 2]) is False
    assert check("06-maxpool-shape", (2, 24, 24)) is False and check("06-cell-by-hand", 0) is False
    assert check("09-best-threshold", "a") is False and check("09-best-threshold", 0.2) is False
    assert check("02-min-lr", 1e-1, lrf=FINDER) is False and check("02-min-lr", 1.2e-2, lrf=FINDER) is True
    assert check("02-notes-rule", 1e-2, lrf=FINDER) is False and check("02-notes-rule", 1e-3, lrf=FINDER) is True


def test_no_mistakes_means_minus_one(context):
    y = np.array([0, 1, 1, 0])
    assert check("01-most-wrong", -1, log_preds=context["01-error-rate"]["log_preds"], y=y) is True


def test_unknown_exercise_and_solution(capsys):
    with pytest.raises(KeyError, match="00-count-dogs"):
        check("99-nothing", 1)
    solution("00-count-dogs")
    assert "train" in capsys.readouterr().out


def test_a_wrong_keras_count_is_rejected():
    needs_keras()
    assert check("08-keras-freeze-100", 25_583_592) is False   # every ResNet50 weight: none frozen


def _as_numpy(value):
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    return value


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_a_right_answer_computed_with_numpy_or_torch_counts(key, context, capsys):
    import torch
    if key.startswith("08-keras"):
        needs_keras()
    names = {"PATH": context[key].get("path"), "np": np, **context[key]}
    exec(EXERCISES[key].solution, names)
    assert check(key, _as_numpy(names["answer"]), **context[key]) is True
    if isinstance(names["answer"], (int, float)) and not isinstance(names["answer"], bool):
        assert check(key, torch.tensor(names["answer"]), **context[key]) is True


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_an_answer_too_large_for_a_float_is_just_wrong(key, context, capsys):
    if key.startswith("08-keras"):
        needs_keras()
    assert check(key, 10 ** 400, **context[key]) is False
    assert "Not yet" in capsys.readouterr().out


def test_a_folder_that_is_not_there_is_said_plainly(tmp_path, capsys):
    assert check("00-count-dogs", 400, path=tmp_path / "no-such-folder") is False
    out = capsys.readouterr().out
    assert "could not be checked" in out and "no-such-folder" in out


def test_the_bn_freeze_exercise_measures_the_students_own_learner(learner):
    assert check("05-bn-freeze", True, learn=learner) is False
    assert check("05-bn-freeze", 0, learn=learner) is False   # False itself, not something falsy
    assert check("05-bn-freeze", False, learn=learner) is True
    learner.bn_freeze(False)   # now its BatchNorm layers do learn their statistics: the answer turns
    assert check("05-bn-freeze", True, learn=learner) is True and check("05-bn-freeze", False, learn=learner) is False


def test_the_unfreeze_exercise_counts_the_body(learner):
    body = sum(p.numel() for p in learner.body.parameters())
    assert check("05-unfreeze", body, learn=learner) is True
    assert check("05-unfreeze", sum(p.numel() for p in learner.model.parameters()), learn=learner) is False


def test_a_keras_fine_tune_with_another_optimizer_is_not_taken_for_sgd():
    needs_keras()
    from lessonlib import keras_compare
    assert check("08-keras-sgd", keras_compare.keras_fine_tune_low_rate) is False   # RMSprop
    assert check("08-keras-sgd", "SGD") is False


def test_a_guess_is_kept_and_put_beside_the_run(capsys):
    from lessonlib.exercises import GUESSES, guess, reveal
    GUESSES.clear()
    runs = histories()
    assert guess("03-lower-training-loss", None) is None and "03-lower-training-loss" not in GUESSES   # shows no False
    assert reveal("03-lower-training-loss", runs=runs) == "no augmentation"
    assert "No guess was kept" in capsys.readouterr().out
    guess("03-lower-training-loss", "augmentation")
    assert GUESSES["03-lower-training-loss"] == "augmentation"
    reveal("03-lower-training-loss", runs=runs)
    out = capsys.readouterr().out
    assert "You guessed 'augmentation'; your run says 'no augmentation'" in out and "Not what you expected" in out
    guess("01-precompute-speedup", 40)
    assert reveal("01-precompute-speedup", head_epoch=0.5, full_epoch=30.0) == 60.0
    assert "Well predicted" in capsys.readouterr().out   # within 3x
    guess("09-predict-nothing", 0.2)
    reveal("09-predict-nothing", nothing=np.zeros((2, 4)), targs=np.array([[1, 0, 0, 0], [0, 0, 1, 0]]))
    out = capsys.readouterr().out
    assert "your run says 0.75" in out and "Not what you expected" in out
    guess("06-biggest-layer", "fully connected")
    assert reveal("06-biggest-layer", counts={"conv1": 80, "conv2": 1168, "fully connected": 23050}) == "fully connected"
    assert "Well predicted" in capsys.readouterr().out
    guess("02-batch-speed", True)
    assert reveal("02-batch-speed", per_second={1: 100.0, 8: 105.0, 32: 110.0}) is False   # 10% is not faster
    with pytest.raises(KeyError, match="no prediction"):
        guess("nope", 1)


# ---------------------------------------------------------------- questionnaires and predict-and-explain exercises

CHOICES = "abc"
WRONG = {"01-q-cross-entropy": [0.25, 0.693, -1.386], "02-q-two-steps": [0.8, 0.6], "02-q-steps-per-decade": [10, 8, 100 / 7, 100 / 9],
         "03-q-zoom-crop": [80, 64], "04-q-restarts": [3, 6], "06-q-conv-weights": [9, 18, 36],
         "07-q-tta-passes": [500, 2000], "08-q-validation-steps": [0, 64], "09-q-extra-tag": [0.8, 0.556],
         "10-q-one-photo": [0.05, 20], "01-batches-per-epoch": [(12, 64), (13, 64), 13],
         "05-differential-rates": [[1e-4, 1e-3, 1e-2], [3e-3] * 3], "05-tta-accuracy": [0.9, 0.4, 1],
         "06-maxpool-shape": [(2, 12, 12), (2, 16, 16), 14],
         "10-valid-count": [(4, 2), (5, 3), 5, (5.4, 2.0), (4.6, 2.4), ("5", "2"), (5, 2, 0)]}
CHANGED = ["01-batches-per-epoch", "05-differential-rates", "05-tta-accuracy", "06-maxpool-shape", "08-freeze-to",
           "09-best-threshold", "10-valid-count"]


def _right(key):
    names = {"np": np}
    exec(EXERCISES[key].solution, names)
    return names["answer"]


@pytest.mark.parametrize("key", QUESTIONNAIRE + CHANGED)
def test_a_wrong_answer_is_rejected_and_only_then_hinted_and_the_hint_does_not_give_the_answer(key, capsys):
    right = _right(key)
    assert check(key, None) is False
    assert EXERCISES[key].hint not in capsys.readouterr().out   # nothing before an attempt
    wrong = [c for c in CHOICES if c != right] if isinstance(right, str) else WRONG[key]
    for answer in wrong + [True, "", [1, 2]]:
        assert check(key, answer) is False, answer
        out = capsys.readouterr().out
        assert "Not yet" in out and EXERCISES[key].hint in out
    assert repr(right) not in EXERCISES[key].hint and f"= {right}" not in EXERCISES[key].hint
    assert check(key, right) is True
    if isinstance(right, str):   # a choice may be typed "B" or "b)"
        assert check(key, right.upper()) is True and check(key, f" {right}) ") is True


def test_the_choice_questions_do_not_all_have_the_same_answer():
    answers = [_right(key) for key in QUESTIONNAIRE + CHANGED if isinstance(_right(key), str)]
    assert len(answers) >= 8 and max(answers.count(c) for c in CHOICES) <= len(answers) / 2


def test_the_valid_count_prediction_is_what_sort_photos_does(tmp_path):
    from PIL import Image

    from lessonlib.photos import sort_photos
    sources, rng = {}, np.random.default_rng(0)
    for cls, n in (("a", 23), ("b", 12)):
        folder = tmp_path / "inbox" / cls
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        sources[cls] = folder
    sort_photos(sources, tmp_path / "sorted")
    counted = tuple(len(list((tmp_path / "sorted" / "valid" / cls).iterdir())) for cls in ("a", "b"))
    assert check("10-valid-count", counted) is True


def test_the_valid_count_takes_counts_of_photos_whole_in_any_number_type():
    """A count of photos is a whole number: 5 and 5.0 (np.round's) are the same count; 5.4 is not a count, and
    int() once cut it quietly to 5 and accepted it."""
    assert check("10-valid-count", (5, 2)) is True
    assert check("10-valid-count", (5.0, 2.0)) is True
    assert check("10-valid-count", tuple(np.round([0.2 * 23, 0.2 * 12]))) is True
    assert check("10-valid-count", (np.int64(5), np.int64(2))) is True
    assert check("10-valid-count", (5.4, 2.0)) is False
    assert check("10-valid-count", (5.9, 2.3)) is False
    assert check("10-valid-count", (0.2 * 23, 0.2 * 12)) is False   # 4.6 and 2.4 photos: not yet rounded


def test_the_batches_per_epoch_prediction_is_what_the_loader_does():
    from torch.utils.data import DataLoader
    batches = [len(b) for b in DataLoader(list(range(800)), batch_size=64)]
    assert check("01-batches-per-epoch", (len(batches), batches[-1])) is True


def test_the_freeze_to_prediction_is_what_freeze_to_does(learner):
    from lessonlib.learner import GROUP_NAMES
    learn = learner
    learn.freeze_to(2)
    training = [name for name, group in zip(GROUP_NAMES, learn.layer_groups)
                if any(p.requires_grad for p in group.parameters())]
    letter = {("head",): "a", ("late body", "head"): "b", ("early body", "late body", "head"): "c"}[tuple(training)]
    assert check("08-freeze-to", letter) is True
