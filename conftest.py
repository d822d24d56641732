"""Test settings shared by the unit tests and the notebook runs (nbval kernels inherit os.environ)."""
import os
import tempfile

os.environ.setdefault("LESSONLIB_SMOKE", "1")
os.environ.setdefault("LESSONLIB_HOME", tempfile.mkdtemp(prefix="lessonlib-test-"))
os.environ.setdefault("MPLBACKEND", "Agg")


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
