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
- `notebooks/zh/` differs from what `build` writes (a Chinese notebook edited by hand, a code cell changed).

    python scripts/translations.py build            # after editing a translation (make translations)
    python scripts/translations.py check            # what the test runs
    python scripts/translations.py stamp 00 eaea02a4   # a translation brought up to date with its English cell
"""
import hashlib
import json
import re
import sys
from pathlib import Path

from lessonlib.glossary import glossary_terms as _glossary_terms

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TRANSLATIONS = ROOT / "translations" / "zh"
OUT = NOTEBOOKS / "zh"
GLOSSARY = ROOT / "lessonlib" / "glossary.md"

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
            if re.search(rf"\b{re.escape(term)}", english, re.IGNORECASE):
                used.setdefault(term, []).append(cell_id)
                if not any(w in zh for w in words) and term.lower() not in zh.lower():
                    found.append(f"cell {cell_id}: '{term}' is translated without the glossary's {' or '.join(words)}")
    everything = "".join(c["zh"] for c in cells.values())
    for term, where in used.items():   # kept in English in a cell is fine, once the lesson has said its Chinese
        words = glossary_terms()[term]
        if not any(w in everything for w in words):
            found.append(f"cells {', '.join(where)}: '{term}' is never given the glossary's {' or '.join(words)}")
    found += [f"cell {cell_id}: translated, but not in the English lesson" for cell_id in cells if cell_id not in markdown]
    return found


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
