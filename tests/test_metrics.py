import numpy as np
import pytest
from sklearn.metrics import fbeta_score

from lessonlib.metrics import best_threshold, f2, fbeta, per_tag_report


@pytest.fixture
def random_tags():
    rng = np.random.default_rng(0)
    targs = (rng.random((60, 7)) < 0.3).astype(np.float32)
    targs[0] = 0                                   # an image with no true tag
    preds = np.clip(targs * 0.5 + rng.random((60, 7)) * 0.6, 0, 1)
    preds[:, 6] = 0.0                              # a tag never predicted
    return preds, targs


@pytest.mark.parametrize("average", ["samples", "micro", "macro"])
@pytest.mark.parametrize("beta, thresh", [(2, 0.2), (1, 0.5), (0.5, 0.35)])
def test_fbeta_matches_scikit_learn(random_tags, average, beta, thresh):
    preds, targs = random_tags
    expected = fbeta_score(targs.astype(int), (preds > thresh).astype(int), beta=beta, average=average,
                           zero_division=0)
    assert fbeta(preds, targs, beta, thresh, average) == pytest.approx(expected, abs=1e-6)


def test_f2_takes_the_best_threshold_between_017_and_024(random_tags):
    preds, targs = random_tags
    scores = [fbeta(preds, targs, 2, t) for t in np.arange(0.17, 0.2401, 0.01)]
    assert len(scores) == 8 and f2(preds, targs) == pytest.approx(max(scores))


def test_a_small_example_by_hand():
    targs = np.array([[1, 1, 0, 0]])
    preds = np.array([[0.9, 0.1, 0.8, 0.0]])        # predicts tags 0 and 2: 1 right, 1 wrong, 1 missed
    precision, recall = 1 / 2, 1 / 2
    assert fbeta(preds, targs) == pytest.approx(5 * precision * recall / (4 * precision + recall))


def test_threshold_sweep_and_report(random_tags):
    preds, targs = random_tags
    thresh, best, scores = best_threshold(preds, targs)
    assert best == pytest.approx(scores.max()) and fbeta(preds, targs, 2, thresh) == pytest.approx(best)
    report = per_tag_report(preds, targs, list("abcdefg"))
    assert list(report.columns) == ["tag", "images", "precision", "recall", "f2"]
    assert report.images.sum() == targs.sum()
    assert report.set_index("tag").loc["g", "recall"] == 0


def test_bad_shapes_and_average():
    with pytest.raises(ValueError, match="images, tags"):
        fbeta(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="average"):
        fbeta(np.zeros((2, 2)), np.zeros((2, 2)), average="weighted")


def test_accuracy_metric():
    import torch

    from lessonlib.metrics import accuracy
    log_preds = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    assert accuracy(log_preds, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("right, n", [(199, 200), (200, 200), (0, 10), (5, 10), (1990, 2000), (1, 1)])
def test_binomial_interval_is_wilsons_as_scipy_computes_it(right, n):
    from scipy import stats

    from lessonlib.metrics import binomial_interval
    expected = stats.binomtest(right, n).proportion_ci(method="wilson")
    assert np.allclose(binomial_interval(right / n, n), (expected.low, expected.high), atol=1e-12)


def test_binomial_interval_refuses_what_is_not_an_accuracy():
    from lessonlib.metrics import binomial_interval
    with pytest.raises(ValueError, match="n >= 1"):
        binomial_interval(0.9, 0)
    with pytest.raises(ValueError, match="from 0 to 1"):
        binomial_interval(1.5, 10)


def test_bootstrap_interval_agrees_with_scipys_percentile_bootstrap():
    from scipy import stats

    from lessonlib.metrics import bootstrap_interval
    values = np.random.default_rng(1).uniform(0.6, 1.0, 80)
    ours = bootstrap_interval(values)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                             random_state=np.random.default_rng(2)).confidence_interval
    assert ours[0] < values.mean() < ours[1]
    assert abs(ours[0] - theirs.low) < 0.005 and abs(ours[1] - theirs.high) < 0.005


def test_per_image_fbeta_averages_to_the_samples_score():
    from lessonlib.metrics import fbeta_per_image
    rng = np.random.default_rng(0)
    preds, targs = rng.uniform(size=(30, 5)), (rng.uniform(size=(30, 5)) > 0.6).astype(float)
    per_image = fbeta_per_image(preds, targs, 2, 0.3)
    assert per_image.shape == (30,) and np.isclose(per_image.mean(), fbeta(preds, targs, 2, 0.3))
    from sklearn.metrics import fbeta_score
    assert np.isclose(per_image.mean(), fbeta_score(targs, preds > 0.3, beta=2, average="samples", zero_division=0))


def test_beside_the_notes_says_whether_their_number_is_inside_the_noise():
    from types import SimpleNamespace

    from lessonlib.metrics import beside_the_notes, binomial_interval
    learn = SimpleNamespace(arch="efficientnet_lite0", data=SimpleNamespace(val_ds=range(200)))
    table = beside_the_notes(learn, {"a": (0.995, binomial_interval(0.995, 200), 0.98975, "ResNet34", 2000),
                                     "b": (0.80, binomial_interval(0.80, 200), 0.99365, "ResNet34", 2000)})
    assert table.loc["a", "within the noise"] and not table.loc["b", "within the noise"]
    assert table.loc["a", "one image moves yours by"] == 0.005


def test_beside_the_notes_names_the_network_and_validation_size_of_each_side():
    from types import SimpleNamespace

    from lessonlib.metrics import beside_the_notes, binomial_interval
    learn = SimpleNamespace(arch="efficientnet_lite0", data=SimpleNamespace(val_ds=range(150)))
    table = beside_the_notes(learn, {"a": (0.99, binomial_interval(0.99, 150), 0.98975, "ResNet34", 2000)})
    row = table.loc["a"]
    assert (row["your network"], row["your validation images"]) == ("efficientnet_lite0", 150)
    assert (row["their network"], row["their validation images"]) == ("ResNet34", 2000)
    assert row["one image moves yours by"] == 1 / 150


def test_beside_the_notes_speaks_the_readers_language_while_code_reads_english(monkeypatch):
    from types import SimpleNamespace

    from lessonlib.metrics import beside_the_notes, binomial_interval
    learn = SimpleNamespace(arch="efficientnet_lite0", data=SimpleNamespace(val_ds=range(200)))
    rows = {"a": (0.995, binomial_interval(0.995, 200), 0.98975, "ResNet34", 2000),
            "b": (0.80, binomial_interval(0.80, 200), 0.99365, "ResNet34", 2000)}
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    english = beside_the_notes(learn, rows)
    assert "your 95% interval" in repr(english) and "0.972 to 0.999" in english.to_string()
    assert "True" in english._repr_html_() and "False" in english._repr_html_()
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    table = beside_the_notes(learn, rows)
    shown = table.shown()
    assert shown.index.name == "结果" and list(shown.columns) == [
        "你的数值", "你的 95% 置信区间", "你的网络", "你的验证集图片数", "笔记（2018 年）", "笔记的网络", "笔记的验证集图片数",
        "一张图片让你的数值变动", "在噪声范围内"]
    assert shown["在噪声范围内"].tolist() == ["是", "否"] and shown.loc["a", "你的 95% 置信区间"] == "0.972 到 0.999"
    assert "在噪声范围内" in table._repr_html_() and "否" in repr(table) and "to" not in table.to_string().split()
    # code reads the English names and the truth values, in Chinese too
    assert table.loc["a", "within the noise"] and not table.loc["b", "within the noise"]
    assert table.loc["a", "your validation images"] == 200 and table["within the noise"].dtype == bool


def test_the_lessons_result_lines_speak_the_readers_language(monkeypatch):
    """The lines lessons 01, 04 and 05 print about their accuracies, in English as they read before and in Chinese;
    a name lessonlib does not know is shown as given."""
    from lessonlib.metrics import accuracies, difference_in_photos, seeds_spread, wrong_of
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    assert difference_in_photos(0.99365, 0.99316, 2000) == "0.99365 - 0.99316 = 0.00049: 1.0 of about 2,000 photos"
    assert accuracies({"head only": 0.99, "fine-tuned": 0.995}) == "head only: 0.990; fine-tuned: 0.995"
    assert accuracies({"plain": 0.99, "TTA": 0.995}, n=200) == "plain: 0.990; TTA: 0.995 (200 photos: one is 0.5%)"
    assert seeds_spread([0.975, 0.99, 0.98], 200) == "3 seeds: 0.975 to 0.990, 3 photos apart of 200"
    assert wrong_of(2, 16) == "2 of 16 validation images are wrong"
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert accuracies({"head only": 0.99, "fine-tuned": 0.995}) == "只训练头部：0.990；微调后：0.995"
    assert accuracies({"plain": 0.99, "TTA": 0.995}, n=200) == "直接预测：0.990；TTA：0.995（200 张照片：一张占 0.5%）"
    assert accuracies({"a name of yours": 0.5}) == "a name of yours：0.500"
    assert seeds_spread([0.975, 0.99, 0.98], 200) == "3 个随机种子：0.975 到 0.990，200 张照片中相差 3 张"
    assert difference_in_photos(0.99365, 0.99316, 2000) == "0.99365 - 0.99316 = 0.00049：约 2,000 张照片中的 1.0 张"


def test_beside_the_notes_shows_the_lessons_rows_in_the_readers_words_while_code_reads_english(monkeypatch):
    from types import SimpleNamespace

    from lessonlib.metrics import beside_the_notes, binomial_interval
    learn = SimpleNamespace(arch="efficientnet_lite0", data=SimpleNamespace(val_ds=range(200)))
    rows = {"after one precompute epoch": (0.99, binomial_interval(0.99, 200), 0.98975, "resnet34 (the lecture's)",
                                           "2,000 (the lecture's valid/; not in the notes)"),
            "mine": (0.9, binomial_interval(0.9, 200), 0.98975, "ResNet34", 2000)}
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    assert beside_the_notes(learn, rows).shown().index.tolist() == ["after one precompute epoch", "mine"]
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    table = beside_the_notes(learn, rows)
    shown = table.shown()
    assert shown.index.tolist() == ["预计算训练一个迭代周期之后", "mine"]
    assert shown["笔记的网络"].tolist() == ["resnet34（课上用的）", "ResNet34"]
    assert shown["笔记的验证集图片数"].tolist() == ["2,000（课上的 valid/；笔记里没有写）", 2000]
    assert table.loc["after one precompute epoch", "their network"] == "resnet34 (the lecture's)"   # code: English
