"""The glossary: the Chinese study notes' terms in English and in lessonlib, readable in any notebook.

`notebooks/glossary.md` is a copy of `lessonlib/glossary.md` for JupyterLab's file browser; a hosted notebook
(Colab, Kaggle) has no such file beside it, so `glossary()` shows the one that comes with lessonlib.
"""
import difflib
import re
from dataclasses import dataclass
from importlib import resources

from lessonlib.engine.language import problem

__all__ = ["Term", "glossary", "glossary_terms", "glossary_text", "term"]


def glossary_text():
    """The glossary as Markdown text."""
    return resources.files("lessonlib").joinpath("glossary.md").read_text(encoding="utf-8")


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
    zh: str           # the notes' word, with the standard term in [brackets] where it differs
    en: str
    lessonlib: str
    meaning: str

    def __repr__(self):
        where = self.lessonlib if self.lessonlib.startswith("(") else f"({self.lessonlib})"
        return f"{self.zh} = {self.en}  {where}: {self.meaning}"


def _rows(text=None):
    table = (text or glossary_text()).split("## Terms", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] not in ("English", "---"):
            yield Term(*cells)


def _words(cell):
    """The separate words of a cell: '训练集 / 验证集 [迭代周期] (epoch)' -> 训练集, 验证集, 迭代周期, epoch."""
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
    exact = [r for r in rows if key in _words(r.zh) + _words(r.en) + _words(r.lessonlib)]
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
    word (the notes' word, and the standard one in brackets): the terms a translation must use consistently.
    `text`: a glossary's Markdown (default: lessonlib's own)."""
    terms = {}
    for row in _rows(text):
        if re.search(r"[/,`]", row.en):
            continue
        english = re.sub(r"\s*\(.*?\)", "", row.en).strip()
        words = [re.sub(r"\[.*?\]|\(.*?\)", "", row.zh).strip(), *re.findall(r"\[([^\]]+)\]", row.zh)]
        words = [w for w in words if re.search(r"[\u4e00-\u9fff]", w)]
        if english and words:
            terms[english] = words
    return terms
