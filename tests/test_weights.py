"""lessonlib/engine/weights.py: the weights setting (LESSONLIB_WEIGHTS)."""
import pytest

from lessonlib.learner import ConvLearner


def test_a_junk_weights_setting_names_its_setting(data, monkeypatch):
    monkeypatch.setenv("LESSONLIB_WEIGHTS", "imagenett")
    with pytest.raises(ValueError, match="LESSONLIB_WEIGHTS='imagenett'"):
        ConvLearner.pretrained("efficientnet_lite0", data)
