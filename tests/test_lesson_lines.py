"""What lessons 06 to 09 print and draw through lessonlib: the English lessons' own words, unchanged, and the Chinese
lessons' text in Chinese (issue 43), from the same code cells."""
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from lessonlib import convviz, training

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
