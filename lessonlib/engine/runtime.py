"""Where lessonlib runs: smoke mode, its writable home, the device present, notebooks, and `setup()`."""
import os
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say
from lessonlib.engine.settings import on_kaggle, settings

__all__ = ["HomeError", "default_device", "home", "in_notebook", "mirror", "offer_download", "output_path",
           "seed_everything", "setup", "smoke_mode"]


def smoke_mode():
    """True when `LESSONLIB_SMOKE=1`: tiny data, small images, one short epoch (for CI)."""
    return settings().smoke


class HomeError(OSError):
    """LESSONLIB_HOME cannot be used; the message says why and what to set instead."""


def home():
    """The one writable folder for caches and saved models (`LESSONLIB_HOME`, default ~/.cache/lessonlib)."""
    value = settings().home
    root = Path(value or Path.home() / ".cache" / "lessonlib").expanduser()
    setting = f"LESSONLIB_HOME={value}" if value else say("the default LESSONLIB_HOME ({root})", root=root)
    fix = say("set LESSONLIB_HOME to a folder you can write to, e.g. `export LESSONLIB_HOME=$HOME/lessonlib-home`")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise HomeError(problem("{setting} is a file, not a folder: {fix}", setting=setting, fix=fix)) from None
    except OSError as e:
        raise HomeError(problem("{setting} cannot be created ({reason}): {fix}",
                                setting=setting, reason=e.strerror or e, fix=fix)) from None
    if not root.is_dir():
        raise HomeError(problem("{setting} is not a folder: {fix}", setting=setting, fix=fix))
    try:   # try it each time: permissions alone do not tell (root, read-only disks, /proc), and a disk can change
        with tempfile.NamedTemporaryFile(dir=root, prefix=".lessonlib-write-test-"):
            pass
    except OSError as e:
        raise HomeError(problem("{setting} is not writable ({reason}): {fix}",
                                setting=setting, reason=e.strerror or e, fix=fix)) from None
    return root


def mirror():
    """The read-only mirror folder named by `LESSONLIB_DATA_MIRROR`, or None (with a warning when it is set to
    something that is not a folder: a typo there would otherwise send every lesson to the network)."""
    value = settings().data_mirror
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        warnings.warn(problem("LESSONLIB_DATA_MIRROR={value} is not a folder here (missing, or not readable): it "
                              "is ignored, and data sets and weights come from lessonlib's own copies or a download",
                              value=value), stacklevel=2)
        return None
    return path


def output_path(name):
    """Where to write a file the student takes away (a submission, a workbook): the notebook's own folder, which
    Colab's Files pane shows, or Kaggle's `/kaggle/working` (its Output); LESSONLIB_HOME if neither is writable."""
    kaggle = [Path("/kaggle/working")] if on_kaggle() else []
    for folder in kaggle + [Path.cwd()]:
        if folder.is_dir() and os.access(folder, os.W_OK):
            return folder / name
    return home() / name


def offer_download(path):
    """Say where a written file is; in Colab also the line that downloads it to your computer."""
    print(say("wrote {path}", path=path))
    if "google.colab" in sys.modules:
        print(say("to download it: from google.colab import files; files.download({path!r})", path=str(path)))


def default_device():
    """The best device present right now: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def in_notebook():
    """True inside a Jupyter kernel: its shell is Jupyter's `ZMQInteractiveShell` or a subclass of it (Colab's,
    Kaggle's), decided by the type, not by its name."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    try:
        from ipykernel.zmqshell import ZMQInteractiveShell
    except ImportError:   # a kernel without ipykernel installed alongside: go by the class hierarchy
        return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)
    return isinstance(shell, ZMQInteractiveShell)


def seed_everything(seed):
    """Seed Python's, NumPy's and PyTorch's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed=42):
    """Seed every random generator, pick plot defaults (with a font for Chinese, Japanese and Korean text); call
    it in the first cell of a notebook. In a language other than English, printed pandas tables pad Chinese
    characters as two columns wide, so their columns line up.

    Returns True in smoke mode, so a notebook can write `SMOKE = setup()`.
    """
    seed_everything(seed)
    try:
        import matplotlib.pyplot as plt
        plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
        use_cjk_font()
    except ImportError:
        pass
    if settings().lang != "en":
        import pandas as pd
        pd.set_option("display.unicode.east_asian_width", True)
    return smoke_mode()
