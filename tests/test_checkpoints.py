"""lessonlib/engine/checkpoints.py: learn.save refuses what it cannot save well, and learn.load is all or nothing."""
import pytest
import torch

from lessonlib.engine import checkpoints
from lessonlib.learner import ConvLearner


def test_a_model_with_nan_weights_is_not_saved(data, home):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    with torch.no_grad():
        learn.head[-1].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="not saving"):
        learn.save("broken")
    assert not (home / "models" / "broken.pt").exists()


def test_a_truncated_saved_model_is_a_clear_error(data, home):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    path = learn.save("m")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=f"{path} cannot be read as a saved model.*damaged or incomplete"):
        learn.load("m")


def _weights(learn):
    return {k: v.clone() for k, v in learn.model.state_dict().items()}


def _unchanged(learn, before):
    return all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())


def _learner(data, **kwargs):
    return ConvLearner.pretrained("efficientnet_lite0", data, **kwargs)


@pytest.mark.parametrize("saved_with, loaded_with", [({"xtra_fc": 256}, {}), ({}, {"xtra_fc": 128})])
def test_a_model_saved_with_another_head_leaves_the_learner_as_it_was(data, saved_with, loaded_with):
    _learner(data, **saved_with).save("other-head")
    learn = _learner(data, precompute=True, **loaded_with)
    cached, _ = learn.activations("train")
    before = _weights(learn)
    with pytest.raises(ValueError, match=r"differently built efficientnet_lite0 .*in the file.*here.*unchanged"):
        learn.load("other-head")
    assert _unchanged(learn, before)                      # not one tensor copied, the body included
    assert torch.equal(learn.activations("train")[0], cached)


def test_non_finite_weights_in_a_file_are_refused(data):
    learn = _learner(data)
    state = {"model": learn.model.state_dict(), "arch": "efficientnet_lite0", "classes": list(data.classes)}
    state["model"] = {k: v.clone() for k, v in state["model"].items()}
    next(v for k, v in state["model"].items() if v.is_floating_point()).view(-1)[0] = float("nan")
    checkpoints.model_path("nan").parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, checkpoints.model_path("nan"))
    before = _weights(learn)
    with pytest.raises(ValueError, match="infinite or NaN"):
        learn.load("nan")
    assert _unchanged(learn, before)


@pytest.mark.parametrize("content, says", [
    (lambda learn: learn.model.state_dict(), "plain state_dict"),
    (lambda learn: [1, 2, 3], "holds a list"),
    (lambda learn: {"weights": 1}, "holds a dict with keys"),
])
def test_a_file_that_is_not_a_saved_model_says_what_it_holds(data, content, says):
    learn = _learner(data)
    checkpoints.model_path("odd").parent.mkdir(parents=True, exist_ok=True)
    torch.save(content(learn), checkpoints.model_path("odd"))
    before = _weights(learn)
    with pytest.raises(ValueError, match=f"{says}.*not a model saved by learn.save"):
        learn.load("odd")
    assert _unchanged(learn, before)


def test_a_model_saved_and_loaded_round_trips(data):
    learn = _learner(data)
    learn.save("round")
    other = _learner(data)
    other.load("round")
    assert _unchanged(other, _weights(learn))
