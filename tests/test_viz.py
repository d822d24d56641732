import matplotlib
import numpy as np

from lessonlib.viz import plot_descent_paths

matplotlib.use("Agg")


def _paths():
    plain = np.array([[-1.0, 0.1], [-0.98, -0.09], [-0.96, 0.081]])
    momentum = np.array([[-1.0, 0.1], [-0.98, -0.09], [-0.942, -0.099]])
    return {0: plain, 0.9: momentum}


def test_descent_paths_draws_each_path_with_its_final_loss(monkeypatch):
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    paths = _paths()
    ax = plot_descent_paths((1, 100), 0.019, paths)
    traces = [line for line in ax.get_lines() if line.get_label() and not line.get_label().startswith("_")]
    assert len(traces) == 2
    for line, path in zip(traces, paths.values()):
        assert np.allclose(np.column_stack(line.get_data()), path)
    loss = [(w1 ** 2 + 100 * w2 ** 2) / 2 for w1, w2 in (p[-1] for p in paths.values())]
    assert [line.get_label() for line in traces] == [
        f"plain gradient descent: loss {loss[0]:.3f} after 2 steps", f"momentum 0.9: loss {loss[1]:.3f} after 2 steps"]
    assert ax.get_title() == "the same learning rate (0.019) on a long, narrow bowl"
    # the contours cover every point of both paths
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 <= -1.0 and x1 >= 1.0 and y0 <= -0.1 and y1 >= 0.1


def test_descent_paths_speaks_chinese(monkeypatch):
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    ax = plot_descent_paths((1, 100), 0.019, _paths())
    assert ax.get_title() == "同一个学习率（0.019），在一个又长又窄的碗里"
    assert ax.get_xlabel() == "w1（沿着谷底）" and ax.get_ylabel() == "w2（横穿山谷）"
    assert ax.get_legend().get_texts()[1].get_text().startswith("动量 0.9：2 步后损失")


def test_photo_sizes_draws_each_photo_with_labels_in_the_readers_language(monkeypatch):
    from lessonlib.viz import plot_photo_sizes
    sizes = [(500, 374), (320, 240), (499, 375)]
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    ax = plot_photo_sizes(sizes, "dog")
    assert np.array_equal(ax.collections[0].get_offsets(), np.array(sizes))
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("sizes of 3 dog photos", "width (px)", "height (px)")
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    ax = plot_photo_sizes(sizes, "dog")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("3 张 dog 照片的尺寸", "宽（像素）", "高（像素）")


def test_doctor_report_adds_a_line_like_its_own_and_the_first_computation_in_the_readers_language(monkeypatch):
    import torch

    from lessonlib import doctor
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    report = doctor()
    x = torch.arange(4.0)
    assert report.line("SMOKE", True) == "          SMOKE: True"   # right-aligned like "smoke mode: ..."
    assert str(report.computed(x @ x)) == "14 computed on cpu"
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert report.line("SMOKE", False) == "          SMOKE: 否"
    assert str(report.computed(x @ x)) == "14，在 cpu 上算出"


def test_loss_runs_draws_every_history_with_text_in_the_readers_language(monkeypatch):
    import pandas as pd

    from lessonlib.viz import plot_loss_runs
    h = pd.DataFrame({"epoch": [1, 2, 3], "trn_loss": [0.9, 0.5, 0.2], "val_loss": [0.8, 0.6, 0.7]})
    runs = {"no augmentation": [h, h], "augmentation": [h]}
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    fig = plot_loss_runs(runs)
    left, right = fig.axes
    assert len(left.get_lines()) == 4 and np.allclose(left.get_lines()[1].get_ydata(), h.val_loss)
    assert (left.get_title(), right.get_title()) == ("no augmentation (2 seeds)", "augmentation (1 seeds)")
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["training loss", "validation loss"]
    assert (left.get_xlabel(), left.get_ylabel()) == ("epoch", "loss")
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    fig = plot_loss_runs({**runs, "mine": [h]})   # a name of the caller's own is shown as given
    left, right = fig.axes[0], fig.axes[2]
    assert left.get_title() == "不做数据增强（2 个随机种子）" and right.get_title() == "mine（1 个随机种子）"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["训练集损失值", "验证集损失值"]


def test_the_seed_spread_plot_and_the_gap_line_speak_the_readers_language(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from lessonlib.viz import describe_gaps, plot_seed_spread
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    ax = plot_seed_spread([0.9, 0.95, 1.0], (0.8, 0.99), 0.98975, 16)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "95% interval of your run (16 photos)", "3 seeds", "the notes (2018)"]
    assert ax.get_xlabel() == "validation accuracy after one precompute epoch"
    assert sorted(ax.lines[0].get_xdata()) == [0.9, 0.95, 1.0] and ax.lines[1].get_xdata()[0] == 0.98975
    assert describe_gaps({"no augmentation": 0.12345, "augmentation": 0.05}) == (
        "validation loss - training loss, last epoch, mean over seeds: {'no augmentation': 0.123, 'augmentation': 0.05}")
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    ax = plot_seed_spread([0.9, 0.95, 1.0], (0.8, 0.99), 0.98975, 16)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "你这次运行的 95% 置信区间（16 张照片）", "3 个随机种子", "笔记（2018 年）"]
    assert ax.get_xlabel() == "预计算训练一个迭代周期之后的验证准确率"
    assert "不做数据增强" in describe_gaps({"no augmentation": 0.1}) and "no augmentation" not in describe_gaps(
        {"no augmentation": 0.1})


def test_body_and_head_are_drawn_from_the_learners_layer_groups(tmp_path, monkeypatch):
    """Each layer group's box is as wide as its share of the parameters (a sliver at the least), labelled with its
    count and whether it trains; the stored activations are marked between the body and the head."""
    import torch
    from matplotlib.patches import Rectangle

    from lessonlib import ConvLearner, ImageClassifierData, tfms_from_model, transforms_side_on
    from lessonlib.viz import plot_body_and_head
    from tests.helpers import make_folders

    monkeypatch.setenv("LESSONLIB_LANG", "en")
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    make_folders(tmp_path / "pets", n_train=8, n_valid=3)
    data = ImageClassifierData.from_paths(tmp_path / "pets", bs=8,
                                          tfms=tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on))
    torch.manual_seed(0)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    sizes = [sum(p.numel() for p in g.parameters()) for g in learn.layer_groups]

    ax = plot_body_and_head(learn)
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    widths = np.array([b.get_width() for b in boxes])
    assert len(boxes) == 3 and np.allclose(widths, np.maximum(0.5, 8.0 * np.array(sizes) / sum(sizes)))
    texts = [t.get_text() for t in ax.texts]
    labels = [t for t in texts if "parameters" in t]
    assert labels == [f"{g}\n{n:,} parameters\n{s}" for g, n, s in
                      zip(["early body", "late body", "head"], sizes, ["frozen", "frozen", "trains"])]
    assert any(f"{learn.body.n_features:,} numbers" in t for t in texts)

    learn.precompute = False
    learn.unfreeze()
    texts = [t.get_text() for t in plot_body_and_head(learn).texts]
    assert [t.rsplit("\n", 1)[1] for t in texts if "parameters" in t] == ["trains"] * 3
    assert not any("numbers" in t for t in texts) and any("precompute off" in t for t in texts)
