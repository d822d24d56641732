"""The notebooks as files: committed without outputs, and built the way every lesson is."""
import json
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


@pytest.mark.parametrize("platform, env, says", [
    ("google.colab", {}, "In Colab"), (None, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "In Kaggle"),
    (None, {}, "make lab")])
def test_the_first_cell_says_how_to_install_lessonlib_where_it_is_missing(tmp_path, platform, env, says):
    import os
    import subprocess
    import sys

    cells = json.loads(NOTEBOOKS[1].read_text())["cells"]
    first = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    fake = "import sys, types\nsys.modules['lessonlib'] = None   # not installed\n"
    if platform:
        fake += f"sys.modules[{platform!r}] = types.ModuleType({platform!r})\n"
    environ = {k: v for k, v in os.environ.items() if k != "KAGGLE_KERNEL_RUN_TYPE"} | env
    proc = subprocess.run([sys.executable, "-c", fake + first], cwd=tmp_path, env=environ, capture_output=True,
                          text=True)
    assert says in proc.stdout and proc.returncode != 0
    assert "lessonlib is missing" in proc.stderr and "Traceback" not in proc.stderr
