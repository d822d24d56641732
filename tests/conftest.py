"""Fixtures shared by the unit tests (the settings every test run needs are in the project's conftest.py)."""
import pytest

from lessonlib.data import ImageClassifierData
from lessonlib.policy import resolve_policy
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh LESSONLIB_HOME for one test."""
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cpu():
    """The policy of a run on the CPU, whatever the machine has."""
    return resolve_policy("cpu")


@pytest.fixture
def data(tmp_path, home):
    """12 training, 6 validation and 3 test images of two classes at 32 px, mini-batches of 8, on the CPU."""
    make_folders(tmp_path / "pets", n_train=12, n_valid=6, n_test=3)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    return ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8, test_name="test", device="cpu")
