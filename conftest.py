"""Test settings shared by the unit tests and the notebook runs (nbval kernels inherit os.environ)."""
import os
import tempfile

os.environ.setdefault("LESSONLIB_SMOKE", "1")
os.environ.setdefault("LESSONLIB_HOME", tempfile.mkdtemp(prefix="lessonlib-test-"))
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption("--cpu-bf16", choices=("machine", "native", "none"), default="machine",
                     help="what lessonlib.engine.policy.cpu_bf16() reports: this machine's CPU (default), or a CPU that "
                          "computes bfloat16 natively / one that does not; the precision policy then chooses as "
                          "it would there (unit tests only: notebooks run in kernels of their own)")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `gpu` where there is no CUDA device."""
    import pytest
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
