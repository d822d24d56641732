"""The glossary: the Chinese study notes' terms in English and in lessonlib, readable in any notebook.

`notebooks/glossary.md` is a copy of `lessonlib/glossary.md` for JupyterLab's file browser; a hosted notebook
(Colab, Kaggle) has no such file beside it, so `glossary()` shows the one that comes with lessonlib.
"""
from importlib import resources

__all__ = ["glossary", "glossary_text"]


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
            raise ValueError(f"no row of the glossary mentions {term!r}; glossary() shows all of it")
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
