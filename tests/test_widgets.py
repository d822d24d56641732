import numpy as np
import pytest
import torch

from lessonlib import convviz
from lessonlib.widgets import KernelEditor


def test_kernel_editor_driven_without_a_browser():
    square = np.zeros((10, 10))
    square[3:7, 3:7] = 1
    editor = KernelEditor([square, square.T * 0.5], ["square", "dim square"])
    assert np.array_equal(editor.kernel, convviz.kernel("top_edge"))
    out = editor.outputs()
    assert out["conv"].shape == (8, 8) and out["pooled"].shape == (4, 4)
    assert np.allclose(out["relu"], convviz.relu(convviz.conv2d_valid(square, editor.kernel)))
    editor.set_kernel("identity")
    editor.set_cell(1, 1, 2.0)
    assert np.allclose(editor.outputs()["conv"], 2 * square[1:-1, 1:-1])
    editor.select(1)
    assert editor.outputs()["conv"].max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3x3"):
        editor.set_kernel(np.ones((2, 2)))
    with pytest.raises(IndexError):
        editor.select(5)


def test_kernel_editor_widget_controls_drive_the_state():
    editor = KernelEditor([np.random.default_rng(0).random((12, 12))])
    box = editor.widget()
    grid, _ = box.children[0].children
    presets = box.children[1]
    presets.value = "sobel_x"
    assert np.array_equal(editor.kernel, convviz.kernel("sobel_x"))
    assert [c.value for c in grid.children][:3] == [-1.0, 0.0, 1.0]   # the boxes show the preset
    grid.children[4].value = 7.0                                       # type into the centre box
    assert editor.kernel[1, 1] == 7.0


def test_augmentation_explorer_driven_without_a_browser():
    from PIL import Image

    from lessonlib.widgets import AugmentationExplorer

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    explorer = AugmentationExplorer(img, sz=32)
    first = explorer.samples(4)
    assert len(first) == 4 and all(x.shape == (3, 32, 32) for x in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, explorer.samples(4)))   # same settings, same draws
    explorer.set(rotation=0, zoom=1.0, brightness=0, contrast=0, flip_p=0)
    still = explorer.samples(3)
    assert all(np.array_equal(still[0], s) for s in still)                        # nothing random left
    explorer.set(kind="top_down", flip_p=1.0)
    assert "satellite" in explorer.describe()
    with pytest.raises(ValueError, match="unknown settings"):
        explorer.set(blur=1)
    box = explorer.widget(n=4)
    sliders = box.children[0].children[0].children
    sliders[1].value = 90.0
    assert explorer.params["rotation"] == 90.0


def test_lr_explorer_widget_controls_drive_the_state_and_the_text():
    import torch

    from lessonlib.lr_finder import LRFinder
    from lessonlib.recorder import Recorder
    from lessonlib.widgets import LRExplorer

    lrs = np.logspace(-6, 0, 60)
    rec = Recorder(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    for lr, loss in zip(lrs, 1 + (np.log10(lrs) + 2) ** 2 / 4):   # a bowl with its bottom at 1e-2
        rec.record([lr], loss)
    lrf = LRFinder(rec, beta=0.0)

    class Learner:   # what the explorer asks of a learner
        def try_lr(self, lr, num_it):
            return np.linspace(1.0, 0.5 if lr < 1e-1 else 2.0, num_it)
    explorer = LRExplorer(Learner(), lrf, num_it=5)
    box = explorer.widget()
    slider, text, button, _ = box.children
    slider.value = float(lrs[-1])                       # drag the slider to the top of the sweep
    assert explorer.lr == pytest.approx(lrs[-1]) and explorer.label == "too high"
    assert "too high" in text.value
    button.click()                                      # "train at this rate"
    assert list(explorer.runs) == [explorer.lr] and len(explorer.runs[explorer.lr]) == 5
    slider.value = float(lrf.suggestion)
    assert explorer.label == "good" and "good" in text.value


def test_the_kernel_editor_takes_colour_images_and_refuses_what_it_cannot_show():
    from lessonlib.convviz import conv2d_fast
    from lessonlib.widgets import KernelEditor

    rng = np.random.default_rng(0)
    colour = rng.random((28, 28, 3))
    editor = KernelEditor([colour, colour[None, :, :, 0]])
    assert editor.images[0].shape == (28, 28) and editor.outputs()["conv"].shape == (26, 26)
    assert np.allclose(editor.images[0], colour @ [0.299, 0.587, 0.114])
    assert editor.images[1].shape == (28, 28)
    for bad, says in [(np.zeros((28, 1)), "at least 4x4"), (np.full((8, 8), np.nan), "NaN"),
                      (np.zeros((2, 3, 8, 8)), "shape")]:
        with pytest.raises(ValueError, match=says):
            KernelEditor([bad])
    before = editor.kernel.copy()
    with pytest.raises(ValueError, match="ordinary number"):
        editor.set_cell(1, 1, float("nan"))
    with pytest.raises(IndexError, match="0 to 2"):
        editor.set_cell(-1, 0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        editor.set_kernel(np.full((3, 3), np.inf))
    assert np.array_equal(editor.kernel, before)
    assert np.allclose(editor.outputs()["conv"], conv2d_fast(editor.images[0], before))


def test_the_augmentation_explorer_refuses_settings_it_cannot_show():
    from PIL import Image

    from lessonlib.widgets import AugmentationExplorer

    image = Image.new("RGB", (64, 48), (120, 60, 30))
    for sz in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="sz="):
            AugmentationExplorer(image, sz=sz)
    explorer = AugmentationExplorer(image, sz=32)
    before = dict(explorer.params)
    for setting, value in [("zoom", float("nan")), ("zoom", 0.5), ("rotation", -1), ("flip_p", 2),
                           ("brightness", float("inf")), ("contrast", "high")]:
        with pytest.raises(ValueError, match=f"{setting}="):
            explorer.set(**{setting: value})
    assert explorer.params == before
    with pytest.raises(ValueError, match="n="):
        explorer.samples(0)
    explorer.set(zoom=2, rotation=45, flip_p=1)
    assert len(explorer.samples(3)) == 3 and explorer.samples(1)[0].shape[-1] == 32


@pytest.mark.parametrize("lr", [float("nan"), 0.0, -1e-2, float("inf")])
def test_the_lr_explorer_refuses_a_rate_that_is_not_one(lr):
    from lessonlib.lr_finder import LRFinder, describe_region
    from lessonlib.recorder import Recorder
    from lessonlib.widgets import LRExplorer

    lrs = np.logspace(-6, 0, 60)
    rec = Recorder(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    for rate, loss in zip(lrs, 1 + (np.log10(lrs) + 2) ** 2 / 4):
        rec.record([rate], loss)
    lrf = LRFinder(rec, beta=0.0)
    explorer = LRExplorer(None, lrf)
    label = explorer.set_lr(1e-3)
    with pytest.raises(ValueError, match="positive number"):
        explorer.set_lr(lr)
    with pytest.raises(ValueError, match="positive number"):
        describe_region(lrf, lr)
    assert explorer.lr == pytest.approx(1e-3) and explorer.label == label   # unchanged
