"""lessonlib's settings: every environment variable it reads, read here and nowhere else, and checked.

| variable | what it sets | default |
| --- | --- | --- |
| LESSONLIB_SMOKE | smoke mode: tiny data, small images, one short epoch (CI) | 0 |
| LESSONLIB_HOME | the one writable folder for caches and saved models | ~/.cache/lessonlib |
| LESSONLIB_DATA | where data sets are downloaded or derived | LESSONLIB_HOME/data |
| LESSONLIB_DATA_MIRROR | a read-only folder with data sets and `weights/` (a classroom) | none |
| LESSONLIB_OFFLINE | never try a download | 0 |
| LESSONLIB_WEIGHTS | `imagenet` (pretrained) or `random` (untrained, for timing) | imagenet |
| LESSONLIB_PRECISION | `bf16`, `fp16` or `fp32` in every stage | chosen for the device |
| LESSONLIB_IMAGE_CACHE_MB | megabytes of decoded images kept in memory on a GPU | 512 |
| LESSONLIB_CUDNN_BENCHMARK | let cuDNN time its kernels once (fixed image sizes) | 1 |
| LESSONLIB_CLASS_LOG | keep each `check()` result in LESSONLIB_HOME/exercise-log.jsonl for the teacher's class report | 0 |
| LESSONLIB_CLASS_ANSWERS | with the class log: keep the answers too, not only right or not | 0 |
| LESSONLIB_LANG | the language of lessonlib's messages, hints and widgets: `en` or `zh` (Simplified Chinese) | en |
| LESSONLIB_APP_MODEL | the export a page of `python -m lessonlib app` shows (the command sets it for its server) | none |

`settings()` parses them the first time it is asked and again only when one of them has changed since (a
notebook's `%env` takes effect at once). A value that makes no sense is a `SettingsError` that names the
variable, all of them at once, instead of quietly meaning the default. Variables that belong to other
programs (torchrun's ranks, Kaggle's marker, Keras's backend) are read and written here too.
"""
import os
from dataclasses import dataclass

__all__ = ["LANGUAGES", "PRECISIONS", "Settings", "SettingsError", "VARIABLES", "child_environ", "on_kaggle",
           "set_keras_backend", "settings", "torchrun"]

PRECISIONS = ("bf16", "fp16", "fp32")
WEIGHTS = ("imagenet", "random")
LANGUAGES = ("en", "zh")
_LANGUAGE_NAMES = {"zh-cn": "zh", "zh_cn": "zh", "zh-hans": "zh", "cn": "zh", "english": "en", "en-us": "en"}
VARIABLES = ("LESSONLIB_SMOKE", "LESSONLIB_HOME", "LESSONLIB_DATA", "LESSONLIB_DATA_MIRROR", "LESSONLIB_OFFLINE",
             "LESSONLIB_WEIGHTS", "LESSONLIB_PRECISION", "LESSONLIB_IMAGE_CACHE_MB", "LESSONLIB_CUDNN_BENCHMARK",
             "LESSONLIB_LANG", "LESSONLIB_CLASS_LOG", "LESSONLIB_CLASS_ANSWERS", "LESSONLIB_APP_MODEL")
TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class SettingsError(ValueError):
    """One or more LESSONLIB_* variables hold a value lessonlib cannot use; the message names each."""


@dataclass(frozen=True)
class Settings:
    """The LESSONLIB_* variables, parsed: None where a variable is unset and the default depends on the machine."""
    smoke: bool = False
    home: str = None
    data: str = None
    data_mirror: str = None
    offline: bool = False
    weights: str = "imagenet"
    precision: str = None
    image_cache_mb: float = None
    cudnn_benchmark: bool = True
    lang: str = "en"
    class_log: bool = False
    class_answers: bool = False
    app_model: str = None

    @classmethod
    def from_environ(cls, environ):
        """Parse the variables of `environ` (a mapping); a `SettingsError` lists every bad one."""
        problems = []

        def read(name, parse, default):
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError as e:
                problems.append(f"{name}={environ[name]!r}: {e}")
                return default

        found = cls(
            smoke=read("LESSONLIB_SMOKE", _yes_no, False),
            home=read("LESSONLIB_HOME", str, None),       # " ~/lessons" (a stray space) is ~/lessons
            data=read("LESSONLIB_DATA", str, None),
            data_mirror=read("LESSONLIB_DATA_MIRROR", str, None),
            offline=read("LESSONLIB_OFFLINE", _yes_no, False),
            weights=read("LESSONLIB_WEIGHTS", lambda v: _one_of(v.lower(), WEIGHTS, WEIGHTS_HELP), "imagenet"),
            precision=read("LESSONLIB_PRECISION", lambda v: _one_of(v.lower(), PRECISIONS, "choose one of "
                                                                      f"{PRECISIONS}"), None),
            image_cache_mb=read("LESSONLIB_IMAGE_CACHE_MB", _megabytes, None),
            cudnn_benchmark=read("LESSONLIB_CUDNN_BENCHMARK", _yes_no, True),
            lang=read("LESSONLIB_LANG", _language, "en"),
            class_log=read("LESSONLIB_CLASS_LOG", _yes_no, False),
            class_answers=read("LESSONLIB_CLASS_ANSWERS", _yes_no, False),
            app_model=read("LESSONLIB_APP_MODEL", str, None),
        )
        if problems:
            raise SettingsError("; ".join(problems))
        return found

    def rows(self):
        """[(variable, value in effect)] for `doctor`."""
        return [(name, getattr(self, name[len("LESSONLIB_"):].lower())) for name in VARIABLES]


WEIGHTS_HELP = "use 'imagenet' (pretrained) or 'random' (untrained, for timing)"
_parsed = (None, None)   # (the raw values, their Settings): parsed again only when a value changes


def settings():
    """The settings in effect now (see the table above); a `SettingsError` names any bad value."""
    global _parsed
    raw = tuple(os.environ.get(name) for name in VARIABLES)
    if raw != _parsed[0]:
        _parsed = (raw, Settings.from_environ(os.environ))
    return _parsed[1]


def child_environ(**variables):
    """This process's environment with `variables` (names of VARIABLES) set: for a process lessonlib starts."""
    unknown = sorted(set(variables) - set(VARIABLES))
    if unknown:
        raise ValueError(f"not lessonlib settings: {unknown}")
    return {**os.environ, **{name: str(value) for name, value in variables.items()}}


def torchrun():
    """{variable: value} of the torchrun variables present (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
    return {name: os.environ[name] for name in TORCHRUN if name in os.environ}


def on_kaggle():
    """True inside a Kaggle notebook (Kaggle sets KAGGLE_KERNEL_RUN_TYPE)."""
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def set_keras_backend(force=False):
    """Ask Keras (imported after this) to run on PyTorch; `force` overrides a backend already chosen.
    Returns the backend asked for."""
    if force:
        os.environ["KERAS_BACKEND"] = "torch"
    return os.environ.setdefault("KERAS_BACKEND", "torch")


def _yes_no(raw):
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("use 1 (yes) or 0 (no)")


def _one_of(value, allowed, help_text):
    if value not in allowed:
        raise ValueError(help_text)
    return value


def _language(raw):
    value = raw.lower()
    return _one_of(_LANGUAGE_NAMES.get(value, value), LANGUAGES, "use en (English) or zh (Simplified Chinese)")


def _megabytes(raw):
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise ValueError("use a number of megabytes such as 512 (0: none)")
    return value
