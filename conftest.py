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
    """Skip tests marked `gpu` where there is no CUDA device. Run the Chinese lessons that
    tests/test_english_share.py measures once: when it runs them (and fails on a cell that raises, as nbval does),
    nbval does not run them again."""
    import pytest
    import torch

    if any("test_chinese_lessons_show_little_english" in item.nodeid for item in items):
        from tests.test_english_share import measured_notebooks
        measured = {str(path) for path in measured_notebooks()}
        twice = [item for item in items if str(item.path) in measured]
        if twice:
            items[:] = [item for item in items if str(item.path) not in measured]
            config.hook.pytest_deselected(items=twice)

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
