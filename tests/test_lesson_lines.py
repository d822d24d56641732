"""What lessons 06 to 09 print and draw through lessonlib: the English lessons' own words, unchanged, and the Chinese
lessons' text in Chinese (issue 43), from the same code cells."""
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from lessonlib import convviz, keras_compare, training
from lessonlib.engine.language import say
from lessonlib.engine.tables import Table
from lessonlib.metrics import (describe_baseline, describe_common_and_rare, describe_predicting_nothing,
                               describe_resizing, describe_tags_per_image, per_tag_report)
from lessonlib.viz import describe_targets, plot_tag_counts, plot_threshold_scores, tag_titles

matplotlib.use("Agg")


@pytest.fixture(params=["en", "zh"])
def lang(request, monkeypatch):
    monkeypatch.setenv("LESSONLIB_LANG", request.param)
    return request.param


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_lesson_06_lines_and_plots(lang):
    digit = np.zeros((28, 28))
    conv = convviz.conv2d_valid(digit, convviz.kernel("top_edge"))
    lines = [convviz.describe_cell(conv, 2.7712), convviz.describe_difference(conv, conv + 1e-16),
             convviz.describe_formula("conv1", "=MAX(0,SUMPRODUCT(A2:C4,$AE$2:$AG$4))"),
             training.accuracy_after(pd.DataFrame({"accuracy": [0.5, 0.57]})),
             convviz.describe_responses({70: [0, 1, 2, 3, 4], 8: [5, 4, 3, 2, 1]}, torch.zeros(32, 112))]
    shown = _titles(convviz.show_digit(digit, 7, rows=(4, 16), cols=(4, 16)))
    filters = convviz.show_filters(np.zeros((8, 3, 3)), ["top_edge", "blur"])
    responses = convviz.show_responses(torch.rand(10, 3, 8, 8), {70: [0, 1, 2, 3, 4], 8: [5, 4, 3, 2, 1]})
    names = [convviz.digit_title(3), convviz.photo_title("cats"), convviz.kernel_name("sharpen")]
    if lang == "en":   # what the lesson printed and drew before, word for word
        assert lines == ["the whole feature map: (26, 26); this cell: 2.77", "max difference from PyTorch: 1e-16",
                         "first conv1 cell: =MAX(0,SUMPRODUCT(A2:C4,$AE$2:$AG$4))",
                         "validation accuracy after 2 epochs: 57.0%",
                         "112 channels in this layer; for 2 of them, the 5 photos (of 32) they respond to most:"]
        assert shown == ["a 7, 28x28", "rows 4-15, columns 4-15"]
        assert _titles(filters)[7:] == ["learned 8", "top_edge", "blur"]
        assert filters._suptitle.get_text() == "first-layer filters: learned (top) and hand-made (bottom)"
        assert [ax.get_ylabel() for ax in responses.axes if ax.get_ylabel()] == ["channel 70", "channel 8"]
        assert responses._suptitle.get_text() == "what 2 channels of a deep layer respond to most"
        assert names == ["digit 3", "a cat", "sharpen"]
    else:
        assert lines[0] == "整张特征图：(26, 26)；这个单元格：2.77" and lines[3] == "2 个迭代周期后的验证准确率：57.0%"
        assert shown == ["数字 7，28x28", "第 4-15 行，第 4-15 列"]
        assert _titles(filters)[7:] == ["学到的 8", "top_edge", "模糊"]   # a name a student types stays as typed
        assert [ax.get_ylabel() for ax in responses.axes if ax.get_ylabel()] == ["第 70 通道", "第 8 通道"]
        assert names == ["数字 3", "一只猫", "锐化"]
    bottom_left = filters.axes[8]   # the hand-made kernel drawn is the one named
    assert np.array_equal(bottom_left.images[0].get_array(), convviz.kernel("top_edge"))


def test_the_kernel_editor_labels_its_presets_for_people_and_keeps_their_names_for_code(lang):
    pytest.importorskip("ipywidgets")
    from lessonlib.widgets import KernelEditor
    editor = KernelEditor([np.zeros((8, 8))])
    presets = editor.widget().children[1]
    assert list(presets._options_values) == list(convviz.KERNELS)
    assert ("模糊" in presets._options_labels) == (lang == "zh") and "top_edge" in presets._options_labels


def test_lesson_07_lines(lang):
    lines = [training.describe_fine_tuning(0.99, 0.995, 200), training.describe_tta(0.99, 1.0),
             training.recipe_took(4.53)]
    if lang == "en":
        assert lines == ["after the head: 0.990; after fine-tuning: 0.995 (one photo is 0.5%)",
                         "validation accuracy: plain 0.990, with TTA 1.000",
                         "the whole recipe took 4.5 minutes on this machine"]
    else:
        assert lines == ["只训练头部后：0.990；微调后：0.995（一张照片占 0.5%）",
                         "验证准确率：直接预测 0.990，使用 TTA 1.000", "整个流程在这台机器上用了 4.5 分钟"]


def _comparison():
    """A table shaped like keras_compare.compare's, with made-up times and accuracies (no training)."""
    rows = []
    for p, tuned in [(keras_compare.LESSONLIB, 0.9), (keras_compare.KERAS, 0.5),
                     (keras_compare.KERAS_LOW_RATE, 0.85)]:
        lines, settings = keras_compare.user_code_stats(p)
        rows.append({"framework": p.name, "lines of user code": lines, "settings chosen": len(settings),
                     "data + model (s)": 1.0, "head: time/epoch (s)": 2.0 if p is keras_compare.LESSONLIB else 1.6,
                     "head: val accuracy": 0.5, "fine-tune: time/epoch (s)": 3.0, "fine-tune: val accuracy": tuned,
                     "BatchNorm stats moved": False, "BatchNorm when unfreezing": p.bn_handling})
    return Table(pd.DataFrame(rows).set_index("framework"), labels={c: say(c) for c in rows[0]},
                 cells={"BatchNorm stats moved": {True: say("True"), False: say("False")},
                        "BatchNorm when unfreezing": keras_compare._bn_handling_shown()})


def test_lesson_08_table_lines_and_plot(lang):
    table = _comparison()
    side = keras_compare.side_by_side(table)
    fig = keras_compare.plot_comparison(table)
    lines = (keras_compare.describe_comparison(table).split("\n")
             + keras_compare.describe_drift(65.9, "3.15.1", 3).split("\n"))
    code = keras_compare.describe_code(keras_compare.KERAS)
    if lang == "en":   # what `table.T`, the lesson's prints and its plot showed
        assert side.to_string() == pd.DataFrame(table).T.to_string()
        assert lines == ["after fine-tuning with rmsprop's default rate the lesson's Keras code is at 0.500 validation "
                         "accuracy (head alone: 0.500); at 1e-5: 0.850",
                         "Keras needs 3.1x the lines and 3.2x the settings; its head epoch takes 0.80x lessonlib's "
                         "time.",
                         "Keras 3.15.1: largest change of a BatchNorm running statistic after 3 mini-batches: 65.9000",
                         "This Keras still has the trap: with training=False alone, fit() updates the torch body's "
                         "BatchNorm."]
        assert code.startswith("Keras 3 (torch backend): 28 lines, 29 settings: ['/train', '/valid'")
        assert [ax.get_title() for ax in fig.axes] == ["what you type", "seconds per epoch", "validation accuracy"]
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()][1] == "Keras 3\n(torch backend)"
    else:
        assert list(side.columns) == ["lessonlib", "Keras 3（torch 后端）", "Keras 3，以 1e-5 微调"]
        assert side.loc["批归一化统计量变了"].tolist() == ["否"] * 3 and "主干" in side.iloc[-1, 0]
        assert lines[1] == ("Keras 需要 3.1 倍的代码行数和 3.2 倍的设置；它训练头部的一个迭代周期用时是 lessonlib 的 "
                            "0.80 倍。")
        assert code.startswith("Keras 3（torch 后端）：28 行，29 个设置：")
        assert [ax.get_title() for ax in fig.axes] == ["你要写的", "每个迭代周期的秒数", "验证集准确率"]
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["用户代码行数", "要选的设置数"]
    assert table.loc[keras_compare.KERAS.name, "fine-tune: val accuracy"] == 0.5   # code reads English names


def test_every_pipeline_is_shown_in_chinese(monkeypatch):
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    shown = keras_compare._bn_handling_shown()
    for p in keras_compare.PIPELINES:
        assert p.bn_handling in shown and shown[p.bn_handling] != p.bn_handling
        assert p is keras_compare.LESSONLIB or keras_compare.pipeline_name(p.name) != p.name


def test_lesson_09_lines_tables_and_plots(lang):
    classes = ["clear", "haze", "primary"]
    targs = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1]])
    probs = np.array([[0.9, 0.1, 0.9], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])
    report = per_tag_report(probs, targs, classes, 0.2)
    common, rare = report[report.images >= 2], report[(report.images > 0) & (report.images < 2)]
    lines = [describe_targets(classes, torch.tensor([1.0, 0.0, 1.0])), describe_tags_per_image([1, 2, 4]),
             describe_predicting_nothing(np.zeros_like(targs), targs), describe_resizing(64, 0.5, 128, 0.6),
             describe_baseline(pd.Index(["primary", "clear"]), 0.7, 0.8),
             describe_common_and_rare(common, rare, min_images=2)]
    titles = tag_titles(classes, targs[:2], np.array([[True, False, False], [False, False, False]]))
    counts = plot_tag_counts(pd.Series({"primary": 30, "clear": 20, "haze": 3}).rename_axis("tags"), 40)
    sweep = plot_threshold_scores(np.arange(0.05, 0.95, 0.01), np.zeros(90), 0.2, 0.8)
    shown = report.round(2).to_string()
    history = training.history_table(pd.DataFrame([{"epoch": 0, "trn_loss": 0.3, "val_loss": 0.2, "f2": 0.8,
                                                     "recall": 0.9, "time": 1.5}]))
    if lang == "en":
        assert lines == ["targets of the first chip: [1.0, 0.0, 1.0] -> clear primary",
                         "tags per chip: 1 to 4, 2.3 on average",
                         "per-tag accuracy of predicting nothing: 33.3%; its F2: 0.00",
                         "F2 at 64 px: 0.500; after 128 px: 0.600",
                         "always 'primary clear': F2 = 0.700; the model: F2 = 0.800",
                         "mean F2 of the 2 tags on 2 or more chips: 0.63; of the 1 rarer ones: 1.00"]
        assert titles == ["true: clear primary\npred: clear", "true: haze primary\npred: (none)"]
        assert (counts.get_title(), counts.get_ylabel()) == ("40 chips, 3 tags", "tags")
        assert (sweep.get_title(), sweep.get_xlabel(), sweep.get_ylabel()) == ("best: 0.800 at 0.20", "threshold",
                                                                               "F2 (validation)")
        assert shown == pd.DataFrame(report).round(2).to_string()
        assert repr(history) == repr(pd.DataFrame(history))
    else:
        assert lines[0] == "第一张图块的目标：[1.0, 0.0, 1.0] -> clear primary"   # tags: the data's own names
        assert lines[2] == "什么标签都不预测时，逐个标签的准确率：33.3%；它的 F2：0.00"
        assert titles[1] == "真实：haze primary\n预测：（无）"
        assert (counts.get_title(), counts.get_ylabel()) == ("40 张图块，3 种标签", "标签")
        assert (sweep.get_xlabel(), sweep.get_ylabel()) == ("阈值", "F2（验证集）")
        assert shown.split("\n")[0].split() == ["标签", "图片数", "精确率", "召回率", "f2"]
        assert repr(history).split("\n")[0].split() == ["迭代周期", "trn_loss", "val_loss", "f2", "召回率", "用时"]
    assert [t.get_text() for t in counts.get_yticklabels()] == ["primary", "clear", "haze"]
    assert list(report.columns) == ["tag", "images", "precision", "recall", "f2"]   # code reads English names
