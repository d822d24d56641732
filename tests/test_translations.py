"""The Chinese edition is built from the English lessons and kept in step with them (scripts/translations.py)."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tr(tmp_path, monkeypatch):
    """The script, pointed at a copy of the notebooks and translations."""
    spec = importlib.util.spec_from_file_location("translations", ROOT / "scripts" / "translations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "translations", tmp_path / "translations")
    monkeypatch.setattr(module, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(module, "TRANSLATIONS", tmp_path / "translations" / "zh")
    monkeypatch.setattr(module, "OUT", tmp_path / "notebooks" / "zh")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    shutil.copy(ROOT / "lessonlib" / "glossary.md", tmp_path / "glossary.md")
    monkeypatch.setattr(module, "GLOSSARY", tmp_path / "glossary.md")
    return module


def _edit(path, cell_id, change):
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["id"] == cell_id)
    cell["source"] = change("".join(cell["source"])).splitlines(True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def test_the_chinese_edition_is_in_step_with_the_english(capsys):
    spec = importlib.util.spec_from_file_location("translations", ROOT / "scripts" / "translations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.check() == 0, capsys.readouterr().out
    for english, _ in module.lessons():
        zh = json.loads((module.OUT / english.name).read_text())
        en = json.loads(english.read_text())
        assert zh["cells"][0]["id"] == "zh-language" and "%env LESSONLIB_LANG=zh" in "".join(zh["cells"][0]["source"])
        assert [c["source"] for c in zh["cells"][1:] if c["cell_type"] == "code"] == \
               [c["source"] for c in en["cells"] if c["cell_type"] == "code"]   # the same code, byte for byte


def test_an_english_cell_changed_after_its_translation_is_named_stale_until_stamped(tr, capsys):
    lesson = tr.NOTEBOOKS / "00_start_here.ipynb"
    _edit(lesson, "eaea02a4", lambda s: s + "\nA new sentence.\n")
    assert tr.check() == 1
    assert "00_start_here: cell eaea02a4: stale" in capsys.readouterr().out
    tr.stamp("00", "eaea02a4")            # the translator updated the Chinese text, then says so
    assert tr.check() == 0


def test_a_code_cell_changed_on_either_side_is_caught(tr, capsys):
    lesson, zh = tr.NOTEBOOKS / "00_start_here.ipynb", tr.OUT / "00_start_here.ipynb"
    code = next(c["id"] for c in json.loads(lesson.read_text())["cells"] if c["cell_type"] == "code")
    _edit(zh, code, lambda s: s + "\nprint('edited in the Chinese notebook only')\n")
    assert tr.check() == 1 and "is not what the translation builds" in capsys.readouterr().out
    tr.build()
    assert tr.check() == 0
    _edit(lesson, code, lambda s: s + "\n# changed in English\n")
    assert tr.check() == 1                # the Chinese notebook must be rebuilt
    tr.build()
    assert tr.check() == 0 and "# changed in English" in (tr.OUT / "00_start_here.ipynb").read_text()


def test_a_translation_that_drops_a_name_or_a_number_is_caught(tr, capsys):
    path = tr.TRANSLATIONS / "00_start_here.json"
    translation = json.loads(path.read_text())
    translation["cells"]["eaea02a4"]["zh"] = translation["cells"]["eaea02a4"]["zh"].replace("`doctor()`", "doctor")
    translation["cells"]["659b02f9"]["zh"] = translation["cells"]["659b02f9"]["zh"].replace("11 s", "几秒")
    path.write_text(json.dumps(translation, ensure_ascii=False))
    tr.build()
    assert tr.check() == 1
    out = capsys.readouterr().out
    assert "cell eaea02a4: the translation lacks ['doctor()']" in out and "cell 659b02f9: the translation lacks" in out


def test_a_glossary_term_changed_without_the_translations_is_caught(tr, capsys):
    glossary = tr.GLOSSARY.read_text()
    assert "| 学习率 | learning rate |" in glossary
    tr.GLOSSARY.write_text(glossary.replace("| 学习率 | learning rate |", "| 学习速率 | learning rate |"))
    assert tr.check() == 1
    assert "'learning rate' is translated without the glossary's 学习速率" in capsys.readouterr().out


# One Chinese word per idea (issue 43): the glossary's first column is the lessons' word; the rest only as one gloss.
ENGLISH = {"c1": "Train the head for one epoch with the learner; the body is frozen.\n",
           "c2": "Each SGDR cycle lasts one epoch, and the head trains at a rate ten times higher.\n"}
GOOD = {"c1": "用学习器（learner）把头部训练一个迭代周期（epoch）；主干（body）是冻结的。\n",
        "c2": "SGDR 的每个循环持续一个迭代周期，头部的学习率高 10 倍。\n"}


@pytest.fixture
def tiny(tr):
    """A one-lesson edition (a synthetic English lesson of two cells and its translation); returns a function that
    writes `zh` ({cell: Chinese}), builds it, and gives check()'s exit status."""
    for path in list(tr.TRANSLATIONS.glob("*.json")) + list(tr.OUT.glob("*.ipynb")):
        path.unlink()
    cells = [{"cell_type": "markdown", "id": cid, "metadata": {}, "source": text.splitlines(True)}
             for cid, text in ENGLISH.items()]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tr.NOTEBOOKS / "99_tiny.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

    def check(**zh):
        cells = {cid: {"en_sha256": tr.sha(ENGLISH[cid]), "zh": zh.get(cid, GOOD[cid])} for cid in ENGLISH}
        (tr.TRANSLATIONS / "99_tiny.json").write_text(json.dumps({"cells": cells}, ensure_ascii=False))
        tr.build()
        return tr.check()
    return check


def test_the_tiny_edition_passes_with_the_glossary_words(tiny, capsys):
    assert tiny() == 0, capsys.readouterr().out


def test_a_second_word_for_a_glossary_idea_is_caught(tiny, capsys):
    assert tiny(c1="用学习器（learner）把头部训练一个迭代周期（epoch）；主体（body）是冻结的。\n") == 1
    assert "cell c1: '主体' is another word for body: the lessons say 主干" in capsys.readouterr().out


@pytest.mark.parametrize("english", ["epoch", "learner"])
def test_english_epoch_or_learner_in_chinese_prose_is_caught(tiny, capsys, english):
    c2 = GOOD["c2"].replace("头部", "这个 learner 的头部") if english == "learner" else GOOD["c2"].replace("迭代周期", "epoch")
    assert tiny(c2=c2) == 1
    assert f"cell c2: '{english}' is another word for {english}" in capsys.readouterr().out
    assert tiny(c2=GOOD["c2"] + "（`learn` 是一个学习器，`epoch` 是 `learn.history` 的一列。）\n") == 0   # code is not prose


def test_the_sgdr_cycle_and_the_epoch_do_not_share_a_word(tiny, capsys):
    assert tiny(c2="SGDR 的每个周期持续一个迭代周期，头部的学习率高 10 倍。\n") == 1
    out = capsys.readouterr().out
    assert "cell c2: '周期' is another word for cycle: the lessons say 循环" in out and out.count("周期") == 2


def test_a_gloss_is_given_only_at_the_first_use(tiny, capsys):
    assert tiny(c2="SGDR 的每个循环持续一个迭代周期（epoch），头部的学习率高 10 倍。\n") == 1
    assert "cells c1, c2: '迭代周期' is glossed in brackets 2 times" in capsys.readouterr().out
    assert tiny(c2="SGDR 的每个循环持续一个迭代周期（把每张图片过一遍），头部的学习率高 10 倍。\n") == 0   # an explanation


def test_a_multiplier_is_written_bei(tiny, capsys):
    assert tiny(c2="SGDR 的每个循环持续一个迭代周期，头部的学习率高 10x。\n") == 1
    assert "cell c2: '10x': a multiplier is written 倍" in capsys.readouterr().out
    assert tiny(c2=GOOD["c2"] + "一个 3x3 的卷积核，28x28 的图片。\n") == 0   # sizes are not multipliers


def test_a_gloss_given_after_the_first_use_is_caught(tiny, capsys):
    c1 = "用学习器（learner）把头部训练一个迭代周期；主干（body）是冻结的。\n"
    c2 = "SGDR 的每个循环持续一个迭代周期（epoch），头部的学习率高 10 倍。\n"
    assert tiny(c1=c1, c2=c2) == 1
    assert "cell c2: '迭代周期' is glossed in brackets after its first use (cell c1): gloss it there" in capsys.readouterr().out
