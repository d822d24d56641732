"""The notebooks as files: committed without outputs, and built the way every lesson is."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_lessons():
    assert [nb.name[:3] for nb in NOTEBOOKS][:2] == ["00_", "01_"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{nb.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_shape(nb):
    cells = json.loads(nb.read_text())["cells"]
    text = lambda c: "".join(c["source"])
    code = [text(c) for c in cells if c["cell_type"] == "code"]
    prose = "\n".join(text(c) for c in cells if c["cell_type"] == "markdown")
    assert "What you will learn" in text(cells[0]) and "What it needs" in text(cells[0])
    assert "SMOKE = setup()" in code[0], "the first code cell calls setup()"
    assert "Exercise" in prose and sum("check(" in c for c in code) >= 2, "at least two checked exercises"
    assert sum("assert" in c for c in code) >= 2, "cells that matter assert what they show"
    assert not any("import *" in c for c in code)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_that_time_the_machine_are_tagged_timing(nb):
    """tools/compare_editions.py and compare_lessons.py leave out what a `timing` cell prints: it is the
    machine's speed, not the lesson's result. A cell that reads a clock, or reveals what one measured, says so (IPython's `%time` lines are left out without a tag)."""
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    clocks = {"perf_counter", "time.time(", "timeit", "head_epoch", "full_epoch", "per_second", "time/epoch"}
    untagged = [c["id"] for c in cells if any(word in "".join(c["source"]) for word in clocks)
                and "timing" not in c.get("metadata", {}).get("tags", [])]
    assert not untagged, f"{nb.name}: cells {untagged} time the machine; tag them `timing`"


@pytest.mark.parametrize("platform, env, says", [
    ("google.colab", {}, "In Colab"), (None, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "In Kaggle"),
    (None, {}, "make lab")])
def test_the_first_cells_say_how_to_install_lessonlib_where_it_is_missing(tmp_path, platform, env, says):
    """Run all, in a kernel without lessonlib: the first cell prints a one-line hint, the collapsed cell after it
    the steps for this platform, and stops there."""
    import os
    import subprocess
    import sys

    cells = json.loads(NOTEBOOKS[1].read_text())["cells"]
    i = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    first, steps = ("".join(c["source"]) for c in cells[i:i + 2])
    fake = "import sys, types\nsys.modules['lessonlib'] = None   # not installed\n"
    if platform:
        fake += f"sys.modules[{platform!r}] = types.ModuleType({platform!r})\n"
    environ = {k: v for k, v in os.environ.items() if k != "KAGGLE_KERNEL_RUN_TYPE"} | env
    proc = subprocess.run([sys.executable, "-c", fake + first + "\n" + steps], cwd=tmp_path, env=environ,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("lessonlib is not installed in this kernel: the next cell says how to install it\n")
    assert says in proc.stdout and proc.returncode != 0
    assert "lessonlib is missing" in proc.stderr and "Traceback" not in proc.stderr


LESSONS = sorted(NOTEBOOKS[0].parent.glob("[0-9][0-9]_*.ipynb")) + sorted(NOTEBOOKS[0].parent.glob("zh/[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: str(p.relative_to(p.parents[1] if p.parent.name == "zh" else p.parent)))
def test_the_first_code_cell_is_at_most_five_lines(nb):
    """The first screen is the lesson: the first code cell (in the Chinese edition, also the first after the one
    that sets LESSONLIB_LANG) has at most 5 lines; how to install lessonlib is in a collapsed cell after it."""
    code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    lesson = [c for c in code if c.get("id") != "zh-language"]
    for cell in {id(code[0]): code[0], id(lesson[0]): lesson[0]}.values():
        lines = "".join(cell["source"]).splitlines()
        assert len(lines) <= 5, f"{nb.name}: the first code cell has {len(lines)} lines"
    assert lesson[1]["metadata"].get("jupyter", {}).get("source_hidden") is True, "the install help is collapsed"


def _code_statements(cells):
    """Every top-level statement of the notebook's code cells, cell by cell (IPython lines left out)."""
    import ast
    for c in cells:
        if c["cell_type"] != "code":
            continue
        source = "\n".join(line for line in "".join(c["source"]).splitlines()
                           if not line.lstrip().startswith(("%", "!", "?")))
        yield ast.parse(source).body


def _is_module(name):
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def asserts_that_cannot_fail(cells):
    """Asserts that check nothing the lesson computed: (1) the expression uses only imported modules, builtins and
    literals (`assert torch.ones(2, 2).sum() == 4`); (2) it compares a name with the very expression the statement
    before it assigned to that name (`x = f(a)` then `assert x == f(a)`, or `np.allclose(x, f(a))`)."""
    import ast
    import builtins
    modules, found = set(), []
    for body in _code_statements(cells):
        for node in body:
            if isinstance(node, ast.Import):
                modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:   # `from lessonlib import convviz`: a module too
                modules |= {a.asname or a.name for a in node.names if _is_module(f"{node.module}.{a.name}")}
        for before, node in zip([None] + body[:-1], body):
            if not isinstance(node, ast.Assert):
                continue
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            if names <= modules | set(dir(builtins)):
                found.append(ast.unparse(node.test))
            elif isinstance(before, ast.Assign) and len(before.targets) == 1 and isinstance(before.targets[0], ast.Name):
                target, value = before.targets[0].id, ast.dump(before.value)
                test = node.test
                pairs = ([(test.left, test.comparators[0])] if isinstance(test, ast.Compare) and len(test.comparators) == 1
                         else [tuple(test.args[:2])] if isinstance(test, ast.Call) and len(test.args) >= 2 else [])
                for a, b in pairs:
                    for x, y in ((a, b), (b, a)):
                        if isinstance(x, ast.Name) and x.id == target and ast.dump(y) == value:
                            found.append(ast.unparse(node.test))
    return found


def test_the_cannot_fail_check_catches_both_kinds():
    cells = [{"cell_type": "code", "source": "import numpy as np\nimport torch\nx = np.arange(3)\n"
                                             "assert torch.ones(2, 2).sum().item() == 4\n"},
             {"cell_type": "code", "source": "y = np.log10(x + 1)\nassert np.allclose(y, np.log10(x + 1))\n"
                                             "z = y.sum()\nassert z < 2, 'a real check'\n"}]
    assert asserts_that_cannot_fail(cells) == ["torch.ones(2, 2).sum().item() == 4", "np.allclose(y, np.log10(x + 1))"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_no_lesson_asserts_what_cannot_fail(nb):
    found = asserts_that_cannot_fail(json.loads(nb.read_text())["cells"])
    assert not found, f"{nb.name}: these asserts check nothing the lesson computed: {found}"


EDITIONS = NOTEBOOKS + sorted((NOTEBOOKS[0].parent / "zh").glob("*.ipynb"))
ENGINE_IMPORT = re.compile(r"^\s*(?:from\s+lessonlib\.engine\b|import\s+lessonlib\.engine\b|from\s+lessonlib\s+import\s+"
                           r"(?:\(?\s*)?(?:[\w\s,]*,\s*)?engine\b)", re.MULTILINE)


def test_the_engine_import_check_catches_each_form():
    caught = ["from lessonlib.engine.runtime import home", "import lessonlib.engine.policy", "  from lessonlib import engine",
              "from lessonlib import home, engine"]
    passed = ["from lessonlib import home", "from lessonlib.models import create_body", "# see lessonlib.engine.policy"]
    assert all(ENGINE_IMPORT.search(s) for s in caught) and not any(ENGINE_IMPORT.search(s) for s in passed)


@pytest.mark.parametrize("nb", EDITIONS, ids=lambda p: str(p.relative_to(NOTEBOOKS[0].parent)))
def test_notebooks_import_only_public_names(nb):
    """A lesson imports lessonlib's public names (`from lessonlib import home`), never the engine beneath them."""
    cells = json.loads(nb.read_text())["cells"]
    found = [m.group(0).strip() for c in cells if c["cell_type"] == "code"
             for m in ENGINE_IMPORT.finditer("".join(c["source"]))]
    assert not found, f"{nb.name} imports lessonlib's engine: {found}; import the public name instead"


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: str(p.relative_to(p.parents[1] if p.parent.name == "zh" else p.parent)))
def test_every_lesson_but_the_last_ends_with_next_naming_the_next_notebook(nb):
    lessons = sorted(nb.parent.glob("[0-9][0-9]_*.ipynb"))
    i = lessons.index(nb)
    last = json.loads(nb.read_text())["cells"][-1]
    lines = [line for line in "".join(last["source"]).splitlines() if line.strip()]
    if i == len(lessons) - 1:
        return   # the course ends here
    word = "下一课：" if nb.parent.name == "zh" else "Next: "
    assert last["cell_type"] == "markdown" and lines[-1].startswith(word), f"{nb.name} does not end with {word!r}"
    assert f"`{lessons[i + 1].name}`" in lines[-1], f"{nb.name}'s last line does not name {lessons[i + 1].name}"


def test_lesson_01_computes_softmax_and_cross_entropy_by_hand_before_using_probabilities():
    """Softmax and cross-entropy are written out (exp, divide by the sum, -log) and checked against PyTorch's before
    the lesson turns predictions into probabilities."""
    cells = [c for c in json.loads(NOTEBOOKS[1].read_text())["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in cells]
    by_hand = next(i for i, s in enumerate(sources) if "torch.softmax(" in s)
    first_probabilities = next(i for i, s in enumerate(sources) if "class_probs(" in s or "np.exp(" in s)
    assert by_hand < first_probabilities
    s = sources[by_hand]
    assert ".exp()" in s and ".sum(dim=1" in s and ".log()" in s, "written out, not called"
    assert "assert torch.allclose(" in s and "F.cross_entropy(" in s and "assert not torch.allclose(" in s
