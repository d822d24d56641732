"""The glossary travels with lessonlib and can be read in any notebook; it covers the terms a reader meets."""
import pytest

import re

from lessonlib.glossary import glossary, glossary_rows, glossary_text


def test_a_term_shows_only_its_rows(capsys):
    glossary("学习率")
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert rows[0].startswith("| 中文") and len(rows) > 2
    assert all("学习率" in row for row in rows[1:])


def test_an_unknown_term_is_named():
    with pytest.raises(ValueError, match="no row of the glossary mentions 'zebra'"):
        glossary("zebra")


@pytest.mark.parametrize("term", [
    # the notes' own words
    "震荡", "指数级别", "浅层", "深层", "标签", "损失函数", "评估指标", "数据生成器", "微调", "超参数",
    # the standard terms of other Chinese material (Dive into Deep Learning's term list)
    "迭代周期", "小批量", "动量法", "迁移学习", "发散", "收敛", "交叉熵", "丢弃法", "批量规范化",
])
def test_the_glossary_has_a_row_for(term):
    assert any(term in line for line in glossary_text().splitlines() if line.startswith("| "))


def test_the_copies_beside_the_lessons_are_the_packaged_ones():
    from pathlib import Path
    beside = Path(__file__).resolve().parent.parent / "notebooks"
    assert (beside / "glossary.md").read_text(encoding="utf-8") == glossary_text("en")
    assert (beside / "glossary.zh.md").read_text(encoding="utf-8") == glossary_text("zh")


def test_term_answers_in_chinese_under_lessonlib_lang_zh(monkeypatch):
    from lessonlib import term
    assert "one pass over every training image" in repr(term("epoch"))
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert repr(term("epoch")) == "迭代周期（笔记：训练次数） = epoch（`epoch`、`learn.history`）：把每张训练图片都过一遍。笔记叫它“训练次数”"
    assert term("收拢").en == "converge" and "训练稳定在一个较低的损失上" in repr(term("收拢"))
    assert term("周期").en == "cycle"     # a word the lessons do not use still finds its row
    assert term("body").words == ["主干"] and "主体" in term("body").others


def test_every_term_has_its_chinese_explanation_and_the_chinese_page_reads_in_chinese(monkeypatch):
    rows = glossary_rows()
    assert rows and all(re.search(r"[\u4e00-\u9fff]", r.meaning_zh) for r in rows), \
        [r.en for r in rows if not r.meaning_zh]
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    text = glossary_text()
    assert text.startswith("# 术语表") and "## 笔记哪里错了或过时了" in text
    table = [line for line in text.splitlines() if line.startswith("| 迭代周期")]
    assert table == ["| 迭代周期（笔记：训练次数） | epoch | `epoch`、`learn.history` | 把每张训练图片都过一遍。笔记叫它“训练次数” "
                     "| 训练次数、epoch、轮次 |"]   # the words from glossary.md, the explanation from glossary.zh.md


def test_each_idea_has_one_word_in_the_lessons():
    words = [w for r in glossary_rows() for w in r.words]
    others = {w for r in glossary_rows() for w in r.others}
    assert len(words) == len(set(words)) and not others & set(words), "a word chosen twice, or chosen and refused"


def test_a_term_shows_its_rows_in_chinese_under_lessonlib_lang_zh(monkeypatch, capsys):
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    glossary("周期")     # not a word the lessons use: the row that says so, and the epoch's row
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| 中文（课文用词）")
    assert any(r.startswith("| 循环 | cycle |") and "SGDR 的学习率从高处降到接近零的一次" in r for r in rows)
