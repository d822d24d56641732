"""The Chinese edition of the lessons, built from the English ones and kept in step with them.

English is the source. For each lesson with a translation, `translations/zh/<lesson>.json` holds, per markdown
cell id, the Chinese text and the SHA-256 of the English text it translates. `build` writes
`notebooks/zh/<lesson>.ipynb`: the English notebook with each markdown cell's text replaced by its translation;
code cells are the English ones, byte for byte. `check` fails (exit 1, naming each cell) when:
- an English markdown cell changed after its translation was written (its hash no longer matches: stale),
  or has no translation, or a translation's cell is gone from the English lesson;
- a backticked name (`learn.fit`), a number or a formula ($...$) of the English cell is missing from its
  translation;
- an English cell uses a term of the glossary (`lessonlib/glossary.md`, its rows with one English term) and its
  translation has neither one of the glossary's Chinese words for it (the notes' word, or the standard one in
  brackets) nor the English term itself, or the lesson's translation never gives a glossary word for it;
- a Chinese lesson uses another word for an idea the glossary gives one word: its table's first column is the word
  the lessons use; the notes' word `(the notes: …)`, the standard term `[…]` and the words of its last column may
  appear only as a gloss, in brackets right after the word (迭代周期（epoch）) or with the word in brackets after
  them (BatchNorm（批归一化）), at most once per idea and lesson, and at the idea's first use there; so English "epoch" or "learner" in the prose
  (outside `code`) fails, and so does 周期 (the SGDR cycle is 循环; 周期 inside 迭代周期 is the epoch's word);
- a Chinese lesson writes a multiplier as "10x" rather than "10 倍";
- one of lessonlib's own Chinese messages (`lessonlib/locale/zh.json`) breaks those two rules, each message read on its
  own as a lesson is (its {fields} are not words);
- `notebooks/zh/` differs from what `build` writes (a Chinese notebook edited by hand, a code cell changed).

    python scripts/translations.py build            # after editing a translation (make translations)
    python scripts/translations.py check            # what the test runs
    python scripts/translations.py stamp 00 eaea02a4   # a translation brought up to date with its English cell
"""
import hashlib
import json
import re
import string
import sys
from functools import lru_cache
from pathlib import Path

from lessonlib.glossary import glossary_rows as _glossary_rows
from lessonlib.glossary import glossary_terms as _glossary_terms

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TRANSLATIONS = ROOT / "translations" / "zh"
OUT = NOTEBOOKS / "zh"
GLOSSARY = ROOT / "lessonlib" / "glossary.md"
MESSAGES = ROOT / "lessonlib" / "locale" / "zh.json"

BACKTICKED = re.compile(r"`([^`\n]+)`")
FORMULA = re.compile(r"\$\$?[^$]+\$\$?")
NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def text(cell):
    return "".join(cell["source"])


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def lessons():
    """[(English notebook, translation file)] for every lesson that has a translation."""
    return [(NOTEBOOKS / f"{p.stem}.ipynb", p) for p in sorted(TRANSLATIONS.glob("*.json"))]


def must_keep(english):
    """What a translation has to carry over unchanged: backticked names, formulas and numbers."""
    spans = BACKTICKED.findall(english) + FORMULA.findall(english)
    bare = BACKTICKED.sub(" ", FORMULA.sub(" ", english))
    return spans + NUMBER.findall(re.sub(r"\]\([^)]*\)|<!--.*?-->", " ", bare))


def glossary_terms():
    """{English term: [its Chinese words]} of the glossary file (lessonlib.glossary reads its table)."""
    return _glossary_terms(GLOSSARY.read_text(encoding="utf-8"))


def glossary_rows():
    """The glossary file's rows (`lessonlib.glossary.Term`): the lessons' words and the others for each idea."""
    return _glossary_rows(GLOSSARY.read_text(encoding="utf-8"))


def prose(zh):
    """The Chinese text a reader reads as prose: code (`...`, fenced blocks), formulas, link targets and HTML
    comments blanked out."""
    for pattern in (r"```.*?```", r"`[^`\n]+`", r"\$\$?[^$]+\$\$?", r"\]\([^)]*\)", r"<!--.*?-->"):
        zh = re.sub(pattern, lambda m: " " * len(m.group()), zh, flags=re.S)
    return zh


def _word(w):
    """A regex for a word of the glossary: Chinese as it is; Latin as a whole word, any case, plural too."""
    if re.search(r"[A-Za-z]", w):
        return rf"(?<![A-Za-z0-9_-]){re.escape(w)}(?:e?s)?(?![A-Za-z0-9_])"
    return re.escape(w)


OPEN, CLOSE = r"（(\[", r"）)\]"   # for character classes: [{OPEN}]
MULTIPLIER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?[x×](?![A-Za-z0-9_]|\s?\d)")


def glosses(text, row):
    """[(start, end)] of the bracket glosses of `row` in `text`: the word then, in brackets, an English name or one
    of its other words (迭代周期（epoch）, 收敛 [收拢]); or an English name or other word then the word in brackets
    (BatchNorm（批归一化）, **dropout [丢弃法]**)."""
    pattern = _gloss_pattern(row)
    return [m.span() for m in pattern.finditer(text)] if pattern else []


@lru_cache(maxsize=None)
def _gloss_pattern(row):
    """The regex `glosses` looks for, made once per row of the glossary (None where the row has no words)."""
    english = [w for w in re.split(r"[^A-Za-z-]+", re.sub(r"\(.*?\)", "", row.en)) if len(w) > 2]
    english += [n for n in re.findall(r"`([A-Za-z]+)`", row.lessonlib)]   # a layer's name: BatchNorm（批归一化）
    names = "|".join(_word(w) for w in sorted(set(row.others + english), key=len, reverse=True))
    words = "|".join(re.escape(w) for w in sorted(row.words, key=len, reverse=True))
    if not names or not words:
        return None
    inside = rf"[^{CLOSE}\n]{{0,40}}"
    forward = rf"(?:{words})\**\s?[{OPEN}]\**(?={inside}(?:{names}))({inside})[{CLOSE}]"
    backward = rf"(?:{names})\**\s?[{OPEN}]\**(?:{words})\**[{CLOSE}]"
    return re.compile(f"{forward}|{backward}", re.IGNORECASE)


def word_problems(translation, rows=None, unit="cell"):
    """One word per idea in one Chinese lesson: other words only as one gloss per idea; multipliers as 倍.
    `unit`: what a problem names its place by ('cell', or 'message' for `message_problems`)."""
    rows = glossary_rows() if rows is None else rows
    found, glossed, seen = [], {}, {}
    chosen = sorted({w for row in rows for w in row.words if len(w) > 1}, key=len, reverse=True)
    for cell_id, cell in translation["cells"].items():
        text = prose(cell["zh"])
        for m in MULTIPLIER.finditer(text):
            found.append(f"{unit} {cell_id}: '{m.group().strip()}': a multiplier is written 倍 ('10 倍', not '10x')")
        spans = []
        for row in rows:
            word, uses = row.words[0] if row.words else "", [text.find(w) for w in row.words if w in text]
            for start, end in glosses(text, row):
                if word not in glossed and (word in seen or any(u < start for u in uses)):
                    found.append(f"{unit} {cell_id}: '{word}' is glossed in brackets after its first use "
                                 f"({unit} {seen.get(word, cell_id)}): gloss it there")
                glossed.setdefault(word, []).append(cell_id)
                spans.append((start, end))
            if uses:
                seen.setdefault(word, cell_id)
        for start, end in spans:
            text = text[:start] + " " * (end - start) + text[end:]
        for w in chosen:   # 周期 inside 迭代周期 is the epoch's word, not another word for the cycle
            text = text.replace(w, " " * len(w))
        for row in rows:
            for other in row.others:
                for m in re.finditer(_word(other), text, re.IGNORECASE):
                    found.append(f"{unit} {cell_id}: '{m.group()}' is another word for {row.en}: the lessons say "
                                 f"{' / '.join(row.words)} (the glossary's word; {other} only in brackets, once, "
                                 f"at its first use)")
    for word, where in glossed.items():
        if len(where) > 1:
            found.append(f"{unit}s {', '.join(where)}: '{word}' is glossed in brackets {len(where)} times: only at its "
                         f"first use in a lesson, then the word alone")
    return found


def message_problems(messages, rows=None):
    """The same rule for lessonlib's own Chinese messages ({English template: Chinese}, `lessonlib/locale/zh.json`):
    each message is read on its own, as a lesson is, with its {fields} left out ({epoch} is a number, not a word)."""
    rows = glossary_rows() if rows is None else rows
    found = []
    for english, zh in messages.items():
        text = " ".join(literal for literal, *_ in string.Formatter().parse(zh))   # {{ }} are text, {x} not
        found += word_problems({"cells": {repr(english): {"zh": text}}}, rows, unit="message")
    return found


def problems(english_nb, translation):
    """Everything that keeps the translation of one lesson from being in step with its English."""
    found, cells, used = [], translation["cells"], {}
    markdown = {c["id"]: text(c) for c in english_nb["cells"] if c["cell_type"] == "markdown"}
    for cell_id, english in markdown.items():
        if cell_id not in cells:
            found.append(f"cell {cell_id}: no translation")
            continue
        if cells[cell_id]["en_sha256"] != sha(english):
            found.append(f"cell {cell_id}: stale (its English text changed after the translation was written)")
        zh = cells[cell_id]["zh"]
        missing = [s for s in must_keep(english) if s not in zh]
        if missing:
            found.append(f"cell {cell_id}: the translation lacks {missing[:5]}")
        for term, words in glossary_terms().items():
            if re.search(rf"\b{re.escape(term)}(?:e?s)?\b", english, re.IGNORECASE):
                used.setdefault(term, []).append(cell_id)
                if not any(w in zh for w in words) and term.lower() not in zh.lower():
                    found.append(f"cell {cell_id}: '{term}' is translated without the glossary's {' or '.join(words)}")
    everything = "".join(c["zh"] for c in cells.values())
    for term, where in used.items():   # kept in English in a cell is fine, once the lesson has said its Chinese
        words = glossary_terms()[term]
        if not any(w in everything for w in words):
            found.append(f"cells {', '.join(where)}: '{term}' is never given the glossary's {' or '.join(words)}")
    found += [f"cell {cell_id}: translated, but not in the English lesson" for cell_id in cells if cell_id not in markdown]
    return found + word_problems(translation)


# The one cell the Chinese edition adds, first: lessonlib's messages, hints and widgets in Chinese.
LANGUAGE_CELL = {"cell_type": "code", "execution_count": None, "id": "zh-language", "metadata": {}, "outputs": [],
                 "source": ["# 中文版：lessonlib 的练习反馈、提示、控件和警告都用中文（英文版不设置它，默认是英文）\n",
                            "%env LESSONLIB_LANG=zh"]}


def built(english_nb, translation):
    """The Chinese notebook: the English one with translated markdown (code cells untouched), after a first cell
    that sets LESSONLIB_LANG=zh."""
    nb = json.loads(json.dumps(english_nb))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown" and cell["id"] in translation["cells"]:
            cell["source"] = translation["cells"][cell["id"]]["zh"].splitlines(True)
    nb["cells"].insert(0, json.loads(json.dumps(LANGUAGE_CELL)))
    nb["metadata"]["language_info"] = dict(nb["metadata"].get("language_info", {}), name="python")
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def build():
    OUT.mkdir(exist_ok=True)
    for english, path in lessons():
        (OUT / english.name).write_text(built(json.loads(english.read_text()), json.loads(path.read_text())))
        print(f"wrote {(OUT / english.name).relative_to(ROOT)}")
    return 0


def check():
    bad = []
    for english, path in lessons():
        nb, translation = json.loads(english.read_text()), json.loads(path.read_text())
        bad += [f"{english.stem}: {p}" for p in problems(nb, translation)]
        out = OUT / english.name
        if not out.exists() or out.read_text() != built(nb, translation):
            bad.append(f"{english.stem}: notebooks/zh/{english.name} is not what the translation builds "
                       f"(edited by hand, or not rebuilt): run `python scripts/translations.py build`")
    stray = sorted({p.name for p in OUT.glob("*.ipynb")} - {e.name for e, _ in lessons()})
    bad += [f"notebooks/zh/{name}: no translation file builds it" for name in stray]
    bad += [f"lessonlib/locale/zh.json: {p}" for p in message_problems(json.loads(MESSAGES.read_text(encoding="utf-8")))]
    print("\n".join(bad) if bad else f"{len(lessons())} Chinese lesson(s) in step with the English")
    return 1 if bad else 0


def stamp(lesson, *cell_ids):
    """Record that the translations of `cell_ids` now match their English cells (after updating them)."""
    (english, path), = [(e, p) for e, p in lessons() if e.stem.startswith(lesson)]
    nb, translation = json.loads(english.read_text()), json.loads(path.read_text())
    markdown = {c["id"]: text(c) for c in nb["cells"] if c["cell_type"] == "markdown"}
    for cell_id in cell_ids:
        translation["cells"][cell_id]["en_sha256"] = sha(markdown[cell_id])
    path.write_text(json.dumps(translation, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["check"]
    sys.exit({"build": build, "check": check, "stamp": stamp}[command](*rest))
