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
