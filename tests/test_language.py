"""lessonlib speaks the reader's language: LESSONLIB_LANG=zh gives Chinese feedback, hints, widgets, warnings and
errors (each error and warning with its English original), English stays the default, and every message has both."""
import ast
import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from lessonlib.engine.language import catalog, problem, say
from lessonlib.engine.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")


def _messages():
    spec = importlib.util.spec_from_file_location("messages", ROOT / "scripts" / "messages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def zh(monkeypatch):
    monkeypatch.setenv("LESSONLIB_LANG", "zh")


def test_every_message_lessonlib_can_show_has_a_chinese_translation_with_the_same_fields():
    messages = _messages()
    assert len(messages.templates()) > 250          # every say/problem call, the hints and the labels
    assert messages.problems("zh") == []


def test_a_new_message_without_translation_a_changed_field_and_a_left_over_entry_are_each_caught(tmp_path,
                                                                                               monkeypatch):
    messages = _messages()
    entries = json.loads((messages.LOCALE / "zh.json").read_text(encoding="utf-8"))
    del entries["Correct!"]                                                  # a message without translation
    entries["saved to {path}"] = "已保存到 {where}"                          # a field renamed
    entries["a message lessonlib no longer shows"] = "旧的"                  # left over
    (tmp_path / "zh.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(messages, "LOCALE", tmp_path)
    found = "\n".join(messages.problems("zh"))
    assert "no zh translation of 'Correct!'" in found
    assert "'saved to {path}' has fields ['where']" in found
    assert "'a message lessonlib no longer shows' is no longer used" in found


def test_a_translation_that_drops_a_name_or_a_number_is_caught(tmp_path, monkeypatch):
    messages = _messages()
    entries = json.loads((messages.LOCALE / "zh.json").read_text(encoding="utf-8"))
    entries["precompute=True needs a frozen body: call learn.freeze() first"] = "预计算需要冻结的主干"
    (tmp_path / "zh.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(messages, "LOCALE", tmp_path)
    assert any("lacks ['learn.freeze', 'precompute=True']" in p for p in messages.problems("zh"))


def _string(node):
    return isinstance(node, (ast.JoinedStr, ast.BinOp)) or (isinstance(node, ast.Constant) and isinstance(node.value,
                                                                                                          str))


def _outside_messages(node):
    """The nodes under `node`, except those inside say(...) and problem(...) calls."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("say", "problem"):
        return
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _outside_messages(child)


def test_every_error_warning_and_printed_sentence_of_lessonlib_goes_through_say_or_problem():
    """A message written straight into raise, warnings.warn or print would stay English in the Chinese edition.
    (engine/settings.py is the one exception: the language is itself one of the settings it parses.)"""
    plain = []
    for path in sorted((ROOT / "lessonlib").rglob("*.py")):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                if _string(node.exc.args[0]):
                    plain.append(f"{where}: raise")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "warn":
                if node.args and _string(node.args[0]):
                    plain.append(f"{where}: warn")
            elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and \
                    (getattr(node.func, "id", None) or node.func.attr) == "print":
                for arg in node.args:
                    texts = [v.value for v in _outside_messages(arg) if isinstance(v, ast.Constant)
                             and isinstance(v.value, str)]
                    if any(re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", t) for t in texts):
                        plain.append(f"{where}: print")
    assert plain == []


def test_english_is_the_default_and_zh_and_its_other_names_choose_chinese():
    assert Settings.from_environ({}).lang == "en"
    for value in ("zh", "ZH", "zh-CN", "zh_CN", "zh-Hans"):
        assert Settings.from_environ({"LESSONLIB_LANG": value}).lang == "zh"
    with pytest.raises(SettingsError, match="LESSONLIB_LANG='fr'.*en.*zh"):
        Settings.from_environ({"LESSONLIB_LANG": "fr"})


def test_say_and_problem_in_english_and_in_chinese(monkeypatch):
    assert say("saved to {path}", path="/tmp/x.pt") == "saved to /tmp/x.pt"
    assert problem("no label file {csv_path}", csv_path="a.csv") == "no label file a.csv"
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert say("saved to {path}", path="/tmp/x.pt") == "已保存到 /tmp/x.pt"
    text = problem("no label file {csv_path}", csv_path="a.csv")
    assert text.splitlines() == ["没有标签文件 a.csv", "(English: no label file a.csv)"]   # searchable
    # a translated piece inside a message is quoted in English in the English line
    inner = say("the default LESSONLIB_HOME ({root})", root="/h")
    text = problem("{setting} is not a folder: {fix}", setting=inner, fix="x")
    assert "默认的 LESSONLIB_HOME（/h）" in text and "(English: the default LESSONLIB_HOME (/h) is not a folder" in text
    assert say("a sentence no one translated") == "a sentence no one translated"   # never dropped


def test_exercise_feedback_and_hints_in_chinese(zh, capsys):
    from lessonlib.exercise_bank import EXERCISES, PREDICTIONS
    from lessonlib.exercises import check, guess, reveal
    assert check("06-maxpool-shape", None) is False
    assert check("06-maxpool-shape", (2, 14, 13)) is False
    assert check("06-maxpool-shape", (2, 14, 14)) is True
    out = capsys.readouterr().out
    assert "替换 `None`" in out and "还不对。提示：" + catalog("zh")[EXERCISES["06-maxpool-shape"].hint] in out
    assert "正确！" in out
    for key in PREDICTIONS:
        assert catalog("zh")[PREDICTIONS[key].question] and catalog("zh")[PREDICTIONS[key].why]
    guess("06-biggest-layer", "conv1")
    reveal("06-biggest-layer", counts={"conv1": 10, "conv2": 20, "fully connected": 23040})
    out = capsys.readouterr().out
    assert "你的猜测已记下" in out and "你猜的是 'conv1'" in out and "卷积的权重" in out
    assert not re.search(r"\b(Your|guess|Correct|Hint)\b", out)


def test_every_exercise_hint_and_prediction_is_translated():
    from lessonlib.exercise_bank import EXERCISES, PREDICTIONS
    texts = [e.hint for e in EXERCISES.values()] + [p.question for p in PREDICTIONS.values()] + \
            [p.why for p in PREDICTIONS.values()]
    assert all(CJK.search(catalog("zh").get(t, "")) for t in texts)


def test_the_widgets_speak_chinese(zh, tmp_path):
    import torch
    from PIL import Image

    from lessonlib.lr_finder import LRFinder
    from lessonlib.photos import PhotoUploader
    from lessonlib.recorder import Recorder
    from lessonlib.widgets import AugmentationExplorer, KernelEditor, LRExplorer

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    aug = AugmentationExplorer(img, sz=32).widget(n=2)
    sliders = aug.children[0].children[0].children
    assert [s.description for s in sliders] == ["最大缩放", "旋转（°）", "亮度", "对比度", "翻转概率"]
    assert "只做左右镜像" in aug.children[0].children[1].children[1].value
    kernel = KernelEditor([np.zeros((8, 8))]).widget()
    assert KernelEditor([np.zeros((8, 8))]).titles == ["图片 0"]
    assert any(getattr(w, "description", None) == "图片" for w in kernel.children[0].children)

    lrs = np.logspace(-6, 0, 60)
    rec = Recorder(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    for lr, loss in zip(lrs, 1 + (np.log10(lrs) + 2) ** 2 / 4):
        rec.record([lr], loss)

    class Learner:
        def try_lr(self, lr, num_it):
            return np.linspace(1.0, 0.5, num_it)
    slider, text, button, _ = LRExplorer(Learner(), LRFinder(rec, beta=0.0), num_it=5).widget().children
    slider.value = float(lrs[-1])
    assert slider.description == "学习率" and button.description == "以这个学习率训练 5 个小批量"
    assert "<b>太高</b>" in text.value and "已越过最小值" in text.value

    uploader = PhotoUploader(tmp_path / "inbox").widget()
    (name, upload, add), status = uploader.children[0].children, uploader.children[1]
    assert (name.description, upload.description, add.description) == ("类别", "照片", "加到这个类别")
    assert "还没有" in status.value


def test_warnings_and_errors_a_lesson_can_meet_are_chinese_with_the_english_below(zh, tmp_path):
    from lessonlib.folders import check_layout
    with pytest.raises(FileNotFoundError) as e:
        check_layout(tmp_path / "nowhere")
    assert "不存在或不是文件夹" in str(e.value) and "(English: " in str(e.value)
    for cls in ("cats", "dogs"):
        for split in ("train", "valid"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image = __import__("PIL.Image", fromlist=["Image"])
            Image.new("RGB", (8, 8)).save(tmp_path / split / cls / "a.jpg")
    (tmp_path / "train" / "cats" / "notes.txt").write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_layout(tmp_path)
        from lessonlib.folders import _say_unused, unused_files
        _say_unused({r: n for r, n in unused_files(tmp_path / "train" / "cats").items()})
    text = "\n".join(str(w.message) for w in caught)
    assert "不会被使用" in text and "不是这里的 Pillow 能读取的图片格式" in text and "will not be used" in text


def test_the_learning_rate_suggestions_are_explained_in_chinese(zh, capsys):
    import torch

    from lessonlib.lr_finder import LRFinder
    from lessonlib.recorder import Recorder
    lrs = np.logspace(-6, 0, 60)
    rec = Recorder(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    for lr, loss in zip(lrs, 1 + (np.log10(lrs) + 2) ** 2 / 4):
        rec.record([lr], loss)
    LRFinder(rec, beta=0.0).report()
    out = capsys.readouterr().out
    assert "笔记的规则" in out and "除以 10" in out and "<- 默认" in out and "divided by 10" not in out


def test_term_looks_a_word_up_both_ways():
    from lessonlib import term
    assert term("收敛").en == "converge" and term("converge").zh.startswith("收敛")   # the lessons' word first
    assert term("收拢").en == "converge"                       # the notes' own word finds it too
    assert term("Learning rate").zh == "学习率"
    assert "收拢" in repr(term("converge")) and "converge" in repr(term("收拢"))
    with pytest.raises(KeyError, match="converge"):              # a typo gets the closest terms
        term("convergee")


def test_chinese_messages_use_the_glossarys_words_not_english_epoch_or_learner():
    """The translations check keeps English epoch/learner out of the Chinese lessons; the messages lessonlib prints
    in Chinese follow the same rule (code names such as `learn` or {learner} placeholders aside)."""
    zh = json.loads((Path(__file__).resolve().parent.parent / "lessonlib" / "locale" / "zh.json").read_text())
    english = re.compile(r"(?<![A-Za-z_.`{])(epoch|learner)s?(?![A-Za-z_`}])")
    assert not [text for text in zh.values() if english.search(text)]
    assert not [text for text in zh.values() if re.search(r"(?<!迭代)周期", text)]   # 循环 is the SGDR cycle


def test_chinese_messages_keep_one_word_per_idea_as_the_lessons_do():
    """lessonlib's Chinese messages follow the glossary by the translations check's own rule (one word per idea; a
    second word only as a bracket gloss at its first use; 倍 for multipliers), each message read on its own."""
    spec = importlib.util.spec_from_file_location("translations", ROOT / "scripts" / "translations.py")
    translations = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(translations)
    assert translations.message_problems(catalog("zh")) == []
    planted = {"a": "主体的权重不变", "b": "主干（主体）的权重不变", "c": "第 {epoch} 个迭代周期：{{批量归一化: 1}}",
               "d": "学习率小了 10x", "e": "把 learner 存下来", "f": "每个周期 2 个迭代周期", "g": "层 {layer}：`learner.fit`"}
    found = translations.message_problems(planted)
    assert [f.split(":")[0] for f in found] == ["message 'a'", "message 'c'", "message 'd'", "message 'e'",
                                                 "message 'f'"], found
    assert "主体" in found[0] and "批量归一化" in found[1] and "倍" in found[2] and "学习器" in found[3] and "循环" in found[4]


def test_chinese_tables_printed_after_setup_line_up(zh):
    """pandas counts a Chinese character as one column unless told otherwise, and the columns of a printed table
    with Chinese names drift apart; setup() tells it, in a language other than English."""
    import pandas as pd
    from lessonlib import setup
    from lessonlib.engine.language import shown_width
    from lessonlib.interpret import softmax_table
    with pd.option_context("display.unicode.east_asian_width", False):   # restored after the test
        setup()
        table = softmax_table(np.array([[2.0, -1.0], [0.5, 0.25]]), np.array([[0.95, 0.05], [0.56, 0.44]]),
                              [0, 1], np.array([0.05, 0.82]), ["猫", "狗"])
        lines = str(table).splitlines()
        assert any(shown_width(line) != len(line) for line in lines)   # Chinese in it
        assert len({shown_width(line) for line in lines}) == 1, lines   # every line as wide on screen
