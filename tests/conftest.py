"""Fixtures shared by the unit tests (the settings every test run needs are in the project's conftest.py)."""
import pytest

from lessonlib.data import ImageClassifierData
from lessonlib.engine.policy import resolve_policy
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh LESSONLIB_HOME for one test."""
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cpu():
    """The policy of a run on the CPU, whatever the machine has (bfloat16 forward passes where it is native)."""
    return resolve_policy("cpu")


@pytest.fixture
def cpu_fp32():
    """A CPU run in float32 in every stage: for tests of exact identities."""
    return resolve_policy("cpu", precision="fp32")


def tolerance(precision):
    """How far two computations of the same thing may differ in `precision`: float32's reordered sums stay within
    1e-6 here; bfloat16 keeps 8 significant bits (each rounding up to 2**-8, about 0.4%), and a few roundings
    in a row (conv, BatchNorm, linear) stay within 3%."""
    return {"fp32": 1e-6, "bf16": 3e-2}[precision]


@pytest.fixture(autouse=True)
def _cpu_bf16_option(request, monkeypatch):
    """`pytest --cpu-bf16=native|none`: every test sees that CPU, except those that test the detection itself
    (marked `real_cpu_bf16`)."""
    choice = request.config.getoption("--cpu-bf16")
    if choice != "machine" and "real_cpu_bf16" not in request.keywords:
        from lessonlib.engine import policy
        faked = (choice == "native", f"faked by pytest --cpu-bf16={choice}")
        monkeypatch.setattr(policy, "cpu_bf16", lambda: faked)


@pytest.fixture
def fake_cpu_bf16(monkeypatch):
    """Call with True or False: lessonlib's policy then sees a CPU that computes bfloat16 natively, or one that
    does not (`policy.cpu_bf16`, the one place it asks)."""
    from lessonlib.engine import policy

    def fake(native):
        monkeypatch.setattr(policy, "cpu_bf16", lambda: (native, f"faked: native bfloat16 {native}"))
    return fake


@pytest.fixture
def data(tmp_path, home):
    """12 training, 6 validation and 3 test images of two classes at 32 px, mini-batches of 8, on the CPU."""
    make_folders(tmp_path / "pets", n_train=12, n_valid=6, n_test=3)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    return ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8, test_name="test", device="cpu")
