"""The glossary travels with lessonlib and can be read in any notebook; it covers the terms a reader meets."""
import pytest

from lessonlib.glossary import glossary, glossary_text


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


def test_the_copy_beside_the_lessons_is_the_packaged_one():
    from pathlib import Path
    beside = Path(__file__).resolve().parent.parent / "notebooks" / "glossary.md"
    assert beside.read_text(encoding="utf-8") == glossary_text()
