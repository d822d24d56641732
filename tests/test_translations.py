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
