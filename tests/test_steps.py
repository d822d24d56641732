"""lessonlib/engine/steps.py: a step whose loss or gradients are not finite is refused and undone, and says what to do."""
import numpy as np
import pytest
import torch

from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model
from tests.helpers import make_folders

TFMS = tfms_from_model("efficientnet_lite0", 32)


@pytest.mark.parametrize("precompute_on", [True, False])
def test_after_divergence_a_smaller_rate_just_works(data, precompute_on):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=precompute_on)
    with pytest.raises(FloatingPointError, match="ten times smaller"):
        learn.fit(3e38, 2)   # finite, but far beyond anything a loss survives
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    learn.fit(1e-2, 1)
    assert np.isfinite(learn.predict()).all() and np.isfinite(learn.history.val_loss.iloc[-1])


def test_one_mini_batch_per_epoch_is_watched_too(tmp_path, home):
    make_folders(tmp_path / "few", n_train=3, n_valid=2)
    data = ImageClassifierData.from_paths(tmp_path / "few", tfms=TFMS, bs=8, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(FloatingPointError):
        learn.fit(3e38, 1)
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
