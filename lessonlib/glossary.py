"""The glossary: the Chinese study notes' terms in English and in lessonlib, readable in any notebook.

`lessonlib/glossary.md`'s table of terms is the one source of the Chinese words: the translations check
(scripts/translations.py) holds the Chinese lessons to its first column, and `glossary.zh.md` (the glossary in
Chinese) takes its table's words from it and adds only the explanations in Chinese. `glossary()` and `term()` answer
in the reader's language (`LESSONLIB_LANG`). `notebooks/glossary.md` and `notebooks/glossary.zh.md` are copies for
JupyterLab's file browser (scripts/hosted.py writes them); a hosted notebook (Colab, Kaggle) has no such file beside
it, so `glossary()` shows the one that comes with lessonlib.
"""
import difflib
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

from lessonlib.engine.language import language, problem

__all__ = ["Term", "glossary", "glossary_rows", "glossary_terms", "glossary_text", "term"]


ZH_TABLE = "<!-- terms: the words come from glossary.md's table (one source for them); here, each English term's 说明 -->"


def _read(name):
    return resources.files("lessonlib").joinpath(name).read_text(encoding="utf-8")


def glossary_text(lang=None):
    """The glossary as Markdown text, in `lang` ('en' or 'zh'; default: the reader's language, `LESSONLIB_LANG`)."""
    if (lang or language()) != "zh":
        return _read("glossary.md")
    return render_zh(_read("glossary.md"), _read("glossary.zh.md"))


def render_zh(english, chinese):
    """The Chinese glossary: `glossary.zh.md` with its table of explanations made into the table of terms, whose
    words come from `glossary.md` (`english`), so that the lessons' check, `term()` and both pages read one table."""
    head, rest = chinese.split(ZH_TABLE, 1)
    table, after = rest.lstrip("\n").split("\n\n", 1)
    meanings = {c[0]: c[1] for c in map(_cells, table.splitlines()) if len(c) == 2 and c[0] not in ("English", "---")}
    lines = ["| 中文（课文用词） | English | lessonlib | 说明 | 课文不用的说法 |",
             "| --- | --- | --- | --- | --- |"]
    for row in _rows(english):
        zh = re.sub(r" ?\(the notes: ([^)]*(?:\([^)]*\))?[^)]*)\)", r"（笔记：\1）", row.zh)
        names = "、".join(f"`{n}`" for n in re.findall(r"`([^`]+)`", row.lessonlib)) or row.lessonlib
        lines.append(f"| {zh} | {row.en} | {names} | {meanings.get(row.en, row.meaning)} | "
                     f"{'、'.join(row.others)} |")
    return head + "\n".join(lines) + "\n\n" + after


def glossary(term=None):
    """Show the glossary in the notebook; with `term` (Chinese or English), only the rows that mention it.

    Example:
        >>> from lessonlib.glossary import glossary
        >>> glossary("学习率")          # every row about the learning rate
    """
    text = glossary_text()
    if term is not None:
        lines = text.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("| 中文"))
        rows = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")
                and term.casefold() in line.casefold()]
        if not rows:
            raise ValueError(problem("no row of the glossary mentions {term!r}; glossary() shows all of it",
                                     term=term))
        text = "\n".join(lines[header:header + 2] + [r for r in rows if r != lines[header]])
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        if get_ipython() is not None:
            display(Markdown(text))
            return None
    except ImportError:
        pass
    print(text)
    return None


@dataclass(frozen=True)
class Term:
    """One row of the glossary's table of terms."""
    zh: str           # the lessons' word; (the notes: …) where the notes differ; [the standard term] where it differs
    en: str
    lessonlib: str
    meaning: str
    not_used: str = ""     # words the Chinese lessons never use for it, comma-separated
    meaning_zh: str = ""   # the explanation in Chinese (glossary.zh.md)

    @cached_property   # a check reads them for every cell of every lesson
    def words(self):
        """The Chinese lessons' word(s) for it: '冻结 / 解冻 [x] (the notes: y)' -> ['冻结', '解冻']."""
        bare = re.sub(r"\[[^\]]*\]|\(the notes:[^)]*(?:\([^)]*\))?[^)]*\)|\([^)]*\)", "", self.zh)
        return [w.strip() for w in bare.split(" / ") if w.strip()]

    @cached_property
    def notes(self):
        """What the notes say instead, where they differ."""
        return [w.strip() for m in re.findall(r"\(the notes: ([^)]*)\)", self.zh) for w in m.split(" / ")]

    @cached_property
    def standard(self):
        """The standard term of other Chinese material, where it differs."""
        return [w.strip() for m in re.findall(r"\[([^\]]+)\]", self.zh) for w in m.split(" / ")]

    @cached_property
    def others(self):
        """Every other word for the same idea: the notes', the standard one and the ones listed as not used. A
        Chinese lesson names one of them only in brackets after the word, at its first use."""
        listed = [w.strip() for w in re.split(r"[,，、]", self.not_used) if w.strip()]
        seen = []
        for w in self.notes + self.standard + listed:
            if w and w not in seen and w not in self.words:
                seen.append(w)
        return seen

    def __repr__(self):
        where = self.lessonlib if self.lessonlib.startswith("(") or not self.lessonlib else f"({self.lessonlib})"
        if language() == "zh" and self.meaning_zh:
            zh = re.sub(r" ?\(the notes: ([^)]*(?:\([^)]*\))?[^)]*)\)", r"（笔记：\1）", self.zh)
            names = "、".join(f"`{n}`" for n in re.findall(r"`([^`]+)`", self.lessonlib))
            return f"{zh} = {self.en}{f'（{names}）' if names else ''}：{self.meaning_zh}"
        return f"{self.zh} = {self.en}  {where}: {self.meaning}"


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _meanings_zh():
    """{English term: its explanation in Chinese}, from glossary.zh.md's table."""
    table = _read("glossary.zh.md").split(ZH_TABLE, 1)[1].lstrip("\n").split("\n\n", 1)[0]
    return {c[0]: c[1] for c in map(_cells, table.splitlines()) if len(c) == 2 and c[0] not in ("English", "---")}


def _rows(text=None):
    table = (text or _read("glossary.md")).split("## Terms", 1)[1].split("\n## ", 1)[0]
    meanings = _meanings_zh() if text is None else {}
    for line in table.splitlines():
        cells = _cells(line)
        if len(cells) in (4, 5) and cells[1] not in ("English", "---"):
            yield Term(*cells, meaning_zh=meanings.get(cells[1], ""))


def glossary_rows(text=None):
    """Every row of the glossary's table of terms, as `Term`s. `text`: a glossary's Markdown (default: lessonlib's)."""
    return list(_rows(text))


def _words(cell):
    """The separate words of a cell: '训练集 / 验证集 [迭代周期] (the notes: x)' -> 训练集, 验证集, 迭代周期, x."""
    cell = cell.replace("the notes:", "")
    return [w.strip(" `").casefold() for w in re.split(r"[/,;\[\]()（）]", cell) if w.strip(" `")]


def term(word):
    """Look a word up in the glossary both ways: Chinese gives the English term, English the Chinese one.

    Example:
        >>> from lessonlib import term
        >>> term("收拢")        # 收拢 [收敛] = converge: training settles at a low loss
        >>> term("converge")    # the same row
    """
    key = word.strip().casefold()
    rows = list(_rows())
    exact = [r for r in rows if key in _words(r.zh) + _words(r.en) + _words(r.lessonlib)
             + [w.casefold() for w in r.others]]
    if exact:
        return exact[0] if len(exact) == 1 else exact
    inside = [r for r in rows if key and (key in r.zh.casefold() or key in r.en.casefold())]
    if inside:
        return inside[0] if len(inside) == 1 else inside
    known = [w for r in rows for w in _words(r.zh) + _words(r.en)]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    raise KeyError(problem("{word!r} is not in the glossary's table of terms{close}; glossary() shows all of it",
                           word=word, close=f" ({', '.join(close)}?)" if close else ""))


def glossary_terms(text=None):
    """{English term: [its Chinese words]} for the rows that name one English term and give at least one Chinese
    word (the lessons' word, and the standard one in brackets): the terms a translation must use consistently.
    `text`: a glossary's Markdown (default: lessonlib's own)."""
    terms = {}
    for row in _rows(text):
        if re.search(r"[/,`]", row.en):
            continue
        english = re.sub(r"\s*\(.*?\)", "", row.en).strip()
        words = [w for w in row.words + row.standard if re.search(r"[\u4e00-\u9fff]", w)]
        if english and words:
            terms[english] = words
    return terms
