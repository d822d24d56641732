"""Where lessonlib runs: smoke mode, its writable home, the device, and `setup()`."""
import os
import platform
import random
from pathlib import Path

import numpy as np
import torch


def smoke_mode():
    """True when `LESSONLIB_SMOKE=1`: tiny data, small images, one short epoch (for CI)."""
    return os.environ.get("LESSONLIB_SMOKE", "").strip().lower() in {"1", "true", "yes"}


class HomeError(OSError):
    """LESSONLIB_HOME cannot be used; the message says why and what to set instead."""


def home():
    """The one writable folder for caches and saved models (`LESSONLIB_HOME`, default ~/.cache/lessonlib)."""
    value = os.environ.get("LESSONLIB_HOME")
    root = Path(value or Path.home() / ".cache" / "lessonlib").expanduser()
    setting = f"LESSONLIB_HOME={value}" if value else f"the default LESSONLIB_HOME ({root})"
    fix = "set LESSONLIB_HOME to a folder you can write to, e.g. `export LESSONLIB_HOME=$HOME/lessonlib-home`"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise HomeError(f"{setting} is a file, not a folder: {fix}") from None
    except OSError as e:
        raise HomeError(f"{setting} cannot be created ({e.strerror or e}): {fix}") from None
    if not root.is_dir():
        raise HomeError(f"{setting} is not a folder: {fix}")
    if not os.access(root, os.W_OK | os.X_OK):
        raise HomeError(f"{setting} is not writable: {fix}")
    return root


def default_device():
    """The best device present right now: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed):
    """Seed Python's, NumPy's and PyTorch's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed=42):
    """Seed every random generator, pick plot defaults; call it in the first cell of a notebook.

    Returns True in smoke mode, so a notebook can write `SMOKE = setup()`.
    """
    seed_everything(seed)
    if torch.cuda.is_available():
        # Fixed image sizes: let cuDNN pick the fastest kernels once.
        torch.backends.cudnn.benchmark = True
    try:
        import matplotlib.pyplot as plt
        plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
    except ImportError:
        pass
    return smoke_mode()


def _home_report():
    try:
        return f"{home()} (writable)"
    except HomeError as e:
        return f"PROBLEM: {e}"


def doctor():
    """A short report of the environment, as a dict (also what `python -m lessonlib doctor` prints)."""
    device = default_device()
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "none",
        "bf16 on GPU": bool(device.type == "cuda" and torch.cuda.is_bf16_supported()),
        "cpu cores": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "smoke mode": smoke_mode(),
        "lessonlib home": _home_report(),
        "data mirror": os.environ.get("LESSONLIB_DATA_MIRROR") or "not set",
    }
    try:
        import torchvision
        report["torchvision"] = torchvision.__version__
    except ImportError:
        report["torchvision"] = "missing"
    return report
