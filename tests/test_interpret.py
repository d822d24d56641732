import numpy as np
import pytest
import torch

from lessonlib.data import ImageClassifierData
from lessonlib.interpret import (grad_cam, most_by_correct, most_uncertain, plot_confusion_matrix, plot_heatmaps,
                                 plot_top_losses, random_by_correct, top_losses)
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders

PROBS = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3], [0.55, 0.45]])
Y = np.array([0, 0, 1, 1, 0])   # rows 1 and 3 are wrong


def test_selections():
    preds = PROBS.argmax(1)
    assert sorted(random_by_correct(preds, Y, False)) == [1, 3]
    assert list(most_by_correct(PROBS, Y, 0, True)) == [0, 4]
    assert list(most_by_correct(PROBS, Y, 1, False)) == [3]
    assert list(most_uncertain(PROBS, 2)) == [4, 1]
    idxs, losses = top_losses(np.log(PROBS), Y, 2)
    assert list(idxs) == [3, 1] and np.allclose(losses, [-np.log(0.3), -np.log(0.4)])


def test_confusion_matrix_plot_counts():
    ax = plot_confusion_matrix(Y, PROBS.argmax(1), ["cats", "dogs"])
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["1", "1", "1", "2"]


@pytest.fixture
def learn(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    make_folders(tmp_path / "pets", n_train=8, n_valid=3)
    tfms = tfms_from_model("efficientnet_lite0", 64, aug_tfms=transforms_side_on)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8)
    torch.manual_seed(0)
    return ConvLearner.pretrained("efficientnet_lite0", data)


def test_grad_cam_matches_the_hook_recipe(learn):
    x = learn.data.val_ds[0][0]
    cam = grad_cam(learn, x, cls=1)
    # the usual recipe, independently: hooks on the last feature block of the whole model
    saved = {}
    block = learn.body.late

    def keep(module, inputs, out):
        saved["a"] = out
        out.register_hook(lambda g: saved.update(g=g))
    handle = block.register_forward_hook(keep)
    learn.model.eval()
    with torch.enable_grad():
        learn.model((x[None].float() / 255).requires_grad_(True))[0, 1].backward()   # the body is frozen
    handle.remove()
    expected = torch.relu((saved["g"].mean((2, 3), keepdim=True) * saved["a"]).sum(1))[0].detach()
    expected = (expected / expected.max()).numpy()
    assert cam.shape == (2, 2) and np.allclose(cam, expected, atol=1e-5)
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)


def test_plots_show_the_chosen_images(learn):
    log_preds, y = learn.predict(), learn.data.val_y
    fig = plot_top_losses(learn.data, log_preds, y, n=3)
    idxs, losses = top_losses(log_preds, y, 3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3 and f"loss {losses[0]:.2f}" in titles[0]
    heat = plot_heatmaps(learn, [0, 3])
    assert [ax.get_title() for ax in heat.axes] == [f"true: {learn.data.classes[y[i]]}" for i in (0, 3)]
    assert all(len(ax.get_images()) == 2 for ax in heat.axes)   # the photo and its heat map on top


def test_long_titles_are_wrapped_to_the_width_of_their_image():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lessonlib.viz import plot_images, wrap_title

    tags = "true: agriculture clear cultivation habitation primary road water bare_ground\\npred: clear primary"
    wrapped = wrap_title(tags, size=2.0)
    assert all(len(line) <= 24 for line in wrapped.split("\n")) and wrapped.replace("\n", " ").split() == tags.split()
    fig = plot_images([np.zeros((8, 8, 3), np.uint8)] * 4, [tags] * 4, cols=4, size=2.0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "titles of neighbouring images must not overlap"
    plt.close(fig)


def test_the_notes_titles_are_shown_in_the_readers_language_and_others_as_given(monkeypatch, capsys):
    import matplotlib
    from types import SimpleNamespace

    from lessonlib.interpret import plot_val_with_title
    matplotlib.use("Agg")
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    data = SimpleNamespace(classes=["cats", "dogs"], val_ds=SimpleNamespace(get_image=lambda i: image))
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    assert plot_val_with_title(data, [0], PROBS, "most uncertain")._suptitle.get_text() == "most uncertain"
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert plot_val_with_title(data, [0], PROBS, "most uncertain")._suptitle.get_text() == "最拿不准的"
    assert plot_val_with_title(data, [0], PROBS, "my own title")._suptitle.get_text() == "my own title"
    plot_val_with_title(data, [], PROBS, "incorrectly classified")
    assert capsys.readouterr().out == "分类错误的：没有\n"


def test_the_softmax_and_confusion_tables_name_their_rows_and_columns_in_the_readers_language(monkeypatch):
    from sklearn.metrics import confusion_matrix

    from lessonlib.interpret import confusion_table, softmax_table
    scores = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    probs = torch.softmax(scores, dim=1)
    target = torch.tensor([1, 0])
    loss = -probs[torch.arange(2), target].log()
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    table = softmax_table(scores, probs, target, loss, ["cats", "dogs"])
    assert list(table.columns) == ["score cats", "score dogs", "prob cats", "prob dogs", "right class", "loss"]
    assert table["right class"].tolist() == ["dogs", "cats"] and np.allclose(table["loss"], [0.313, 0.049])
    counts = confusion_matrix(Y, PROBS.argmax(1))
    cm = confusion_table(counts, ["cats", "dogs"])
    assert list(cm.index) == ["true cats", "true dogs"] and cm.loc["true cats", "predicted dogs"] == 1
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert list(softmax_table(scores, probs, target, loss, ["cats", "dogs"]).columns) == [
        "得分 cats", "得分 dogs", "概率 cats", "概率 dogs", "正确类别", "损失值"]
    cm = confusion_table(counts, ["cats", "dogs"])
    assert list(cm.columns) == ["预测为 cats", "预测为 dogs"] and (cm.values == counts).all()
    ax = plot_confusion_matrix(Y, PROBS.argmax(1), ["cats", "dogs"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("预测的类别", "真实类别")


def test_tta_views_are_the_plain_photo_and_copies_drawn_as_tta_draws_them_with_the_models_probabilities(learn, monkeypatch):
    """plot_tta_views draws n_aug + 1 views; each title is the model's probability for that view, and the title
    above is their mean, which is what TTA takes for the photo."""
    import re

    from lessonlib.interpret import plot_tta_views, tta_views
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    tfms, photo = learn.data.tfms, learn.data.val_ds.get_image(1)
    torch.manual_seed(7)
    views, probs = tta_views(learn, 1, n_aug=3)
    torch.manual_seed(7)
    drawn = [tfms.valid(photo)] + [tfms.tta(photo) for _ in range(3)]   # the transforms TTA uses, same draws
    assert views.shape[0] == 4 and all(torch.equal(v, d) for v, d in zip(views, drawn))
    with torch.no_grad():
        direct = torch.softmax(learn.model.eval()(views).float(), 1).numpy()
    assert np.allclose(probs, direct, atol=learn.policy.rounding)
    plain = np.exp(learn.TTA(n_aug=1)[0][0, 1])   # TTA's first slice: the photo as it is
    assert np.allclose(probs[0], plain, atol=learn.policy.rounding)

    fig, shown = plot_tta_views(learn, 1, n_aug=3)
    pictures = [ax for ax in fig.axes if ax.get_images()]
    assert len(pictures) == 4
    cls = int(shown.mean(0).argmax())
    titled = [float(re.search(r"([\d.]+)$", ax.get_title()).group(1)) for ax in pictures]
    assert np.allclose(titled, shown[:, cls], atol=5e-4)
    above = float(re.search(r"([\d.]+)$", fig._suptitle.get_text()).group(1))
    assert above == pytest.approx(shown[:, cls].mean(), abs=5e-4)
    assert fig._suptitle.get_text().startswith("TTA averages the 4 views: " + learn.data.classes[cls])
