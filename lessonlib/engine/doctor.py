"""`doctor()`: what lessonlib sees on this machine, and how it will use it (`python -m lessonlib doctor`)."""
import os
import platform

import torch

from lessonlib.engine.policy import cpu_workers, resolve_policy
from lessonlib.engine.runtime import HomeError, home
from lessonlib.engine.settings import SettingsError, settings

__all__ = ["doctor"]


def _home_report():
    try:
        return f"{home()} (writable)"
    except HomeError as e:
        return f"PROBLEM: {e}"


def doctor(device=None):
    """A short report of the environment, as a dict (also what `python -m lessonlib doctor` prints).

    Its "settings" are the LESSONLIB_* variables in effect (a bad value is shown as a PROBLEM, naming the
    variable, instead of stopping the report); its "policy" is how lessonlib will use this machine
    (`lessonlib.engine.policy.resolve_policy(device)`).
    """
    report = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        current = settings()
    except SettingsError as e:
        report["settings"] = f"PROBLEM: {e}"
        return report   # everything below depends on them
    policy = resolve_policy(device)
    device = policy.device
    report.update({
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none",
        "cpu cores": f"{os.cpu_count()} ({cpu_workers()} usable by this process)",
        "torch threads": torch.get_num_threads(),
        "smoke mode": current.smoke,
        "lessonlib home": _home_report(),
        "data mirror": current.data_mirror or "not set",
        "settings": ", ".join(f"{name}={value}" for name, value in current.rows()),
    })
    try:
        import torchvision
        report["torchvision"] = torchvision.__version__
    except ImportError:
        report["torchvision"] = "missing"
    report["policy"] = policy
    return report
