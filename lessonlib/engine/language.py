"""The reader's language: lessonlib's messages in English (the source) or Chinese (`LESSONLIB_LANG=zh`).

Every message is written in English where it is used, as a template with named fields, and passed through
one of two functions:

- `say(template, **fields)`: text for people to read (exercise feedback, hints, widget labels, advice);
- `problem(template, **fields)`: the text of a warning or an error. In Chinese it ends with the English
  original on its own line, so the message can still be searched for.

The translations live in `lessonlib/locale/<lang>.json`, one entry per English template. A test walks the
library for every `say(...)` and `problem(...)` and checks each has a translation with the same fields, so a
new message without one fails the tests; a template with no translation is shown in English, never dropped.

    >>> say("Correct!")                              # 'Correct!', or '正确！' with LESSONLIB_LANG=zh
"""
import json
import unicodedata
from functools import lru_cache
from importlib import resources

from lessonlib.engine.settings import LANGUAGES, settings

__all__ = ["LANGUAGES", "catalog", "language", "problem", "say", "shown_width", "translate"]


def language():
    """The language lessonlib speaks now: 'en' (default) or 'zh' (`LESSONLIB_LANG`)."""
    return settings().lang


@lru_cache(maxsize=None)
def catalog(lang):
    """{English template: translation} for `lang` ({} for English, the source)."""
    if lang == "en":
        return {}
    text = resources.files("lessonlib").joinpath("locale").joinpath(f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)


def translate(template, lang, **fields):
    """`template` in `lang`, its fields filled in; English when it has no translation."""
    text = catalog(lang).get(template, template)
    return text.format(**fields)


class Said(str):
    """A translated text that remembers its English, so that a message built from it can quote the English."""
    english = None


def _english(template, fields):
    return template.format(**{k: v.english if isinstance(v, Said) else v for k, v in fields.items()})


def say(template, **fields):
    """Text for people to read, in the reader's language. Example: `print(say("Correct!"))`."""
    said = Said(translate(template, language(), **fields))
    said.english = _english(template, fields)
    return said


def problem(template, **fields):
    """The text of a warning or an error in the reader's language; in a language other than English it is
    followed by the English original, which is what a search engine knows."""
    lang = language()
    english = _english(template, fields)
    if lang == "en" or template not in catalog(lang):
        return english
    return f"{translate(template, lang, **fields)}\n(English: {english})"


def shown_width(text):
    """How many columns `text` takes in a monospaced font: Chinese characters take two (for aligning labels)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))
