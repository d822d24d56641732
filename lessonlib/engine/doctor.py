"""`doctor()`: what lessonlib sees on this machine, and how it will use it (`python -m lessonlib doctor`)."""
import os
import platform

import torch

from lessonlib.engine.language import say, shown_width
from lessonlib.engine.policy import cpu_workers, resolve_policy
from lessonlib.engine.runtime import HomeError, home
from lessonlib.engine.settings import SettingsError, settings

__all__ = ["Report", "doctor"]


def _labels():
    """{key: its label in the reader's language} (the keys are what code reads; the labels what people read);
    English when a setting is wrong (the language is one of them)."""
    try:
        settings()
    except SettingsError:
        return {}
    return {"device": say("device"), "gpu": say("gpu"),
            "cpu cores": say("cpu cores"), "torch threads": say("torch threads"), "smoke mode": say("smoke mode"),
            "lessonlib home": say("lessonlib home"), "data mirror": say("data mirror"), "settings": say("settings")}


class Report(dict):
    """`doctor()`'s report: a dict whose keys and values code reads (`report["device"]`), printed as one line per
    entry in the reader's language, the policy last (`print(report)`)."""

    def __init__(self):
        super().__init__()
        self.shown = {}

    def add(self, key, value, shown=None):
        """Set `key` to `value`, shown to people as `shown` (default: the value itself)."""
        self[key] = value
        self.shown[key] = value if shown is None else shown

    def text(self, width=15):
        """The report as lines `label: value`, labels right-aligned to `width` columns, then the policy."""
        labels = _labels()
        lines = []
        for key, value in self.items():
            if key == "policy":
                continue
            label = labels.get(key, key)
            lines.append(f"{' ' * (width - shown_width(label))}{label}: {self.shown.get(key, value)}")
        if "policy" in self:
            lines.append(str(self["policy"]))
        return "\n".join(lines)

    def __str__(self):
        return self.text()

    def line(self, label, value, width=15):
        """One more line shaped like the report's own (`label: value`, right-aligned to `width` columns), True
        and False in the reader's words: `print(report.line("SMOKE", SMOKE))`."""
        shown = (say("True") if value else say("False")) if isinstance(value, bool) else value
        return f"{' ' * (width - shown_width(label))}{label}: {shown}"

    @staticmethod
    def computed(result):
        """What a first computation gave and where it ran, in the reader's words: "14 computed on cuda:0"."""
        return say("{result} computed on {device}", result=f"{result.item():.0f}", device=result.device)


def _home_report():
    try:
        where = home()
        return f"{where} (writable)", say("{home} (writable)", home=where)
    except HomeError as e:
        return f"PROBLEM: {e}", say("PROBLEM: {e}", e=e)


def doctor(device=None):
    """A short report of the environment, as a dict (also what `python -m lessonlib doctor` prints).

    Its "settings" are the LESSONLIB_* variables in effect (a bad value is shown as a PROBLEM, naming the
    variable, instead of stopping the report); its "policy" is how lessonlib will use this machine
    (`lessonlib.engine.policy.resolve_policy(device)`).
    """
    report = Report()
    report.add("python", platform.python_version())
    report.add("torch", torch.__version__)
    try:
        current = settings()
    except SettingsError as e:
        report.add("settings", f"PROBLEM: {e}")   # in English: LESSONLIB_LANG may be the setting that is wrong
        return report   # everything below depends on them
    policy = resolve_policy(device)
    device = policy.device
    cuda = device.type == "cuda"
    report.add("device", str(device))
    report.add("gpu", torch.cuda.get_device_name(device) if cuda else "none", None if cuda else say("none"))
    cores, usable = os.cpu_count(), cpu_workers()
    report.add("cpu cores", f"{cores} ({usable} usable by this process)",
               say("{cores} ({usable} usable by this process)", cores=cores, usable=usable))
    report.add("torch threads", torch.get_num_threads())
    report.add("smoke mode", current.smoke, say("True") if current.smoke else say("False"))
    report.add("lessonlib home", *_home_report())
    report.add("data mirror", current.data_mirror or "not set", None if current.data_mirror else say("not set"))
    report.add("settings", ", ".join(f"{name}={value}" for name, value in current.rows()))
    try:
        import torchvision
        report.add("torchvision", torchvision.__version__)
    except ImportError:
        report.add("torchvision", "missing", say("missing"))
    report["policy"] = policy
    return report
