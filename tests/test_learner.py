import math
import warnings

import numpy as np
import pytest
import torch

from lessonlib import models, precompute, training
from lessonlib.data import DeviceAugmentedBatches, ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.recorder import Recorder
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


def body_state(learn):
    return {k: v.clone() for k, v in learn.body.state_dict().items()}


def same_state(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_precompute_is_cached_on_disk_and_reused(data, home, monkeypatch):
    torch.manual_seed(0)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert len(list((home / "precompute").glob("*.pt"))) == 3   # train, valid, test
    x, y = learn.activations("train")
    assert x.shape == (24, 2560) and y.tolist() == list(data.trn_y)

    monkeypatch.setattr(precompute, "get_preds", lambda *a, **k: pytest.fail("activations must come from disk"))
    again = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert torch.equal(again.activations("train")[0], x)


def test_the_precompute_advice_comes_once_per_learner_and_not_for_the_lessons_recipe(data, home):
    """pretrained(..., precompute=True) on augmented data is the lesson's recipe (precompute first, augmentation
    after): no advice. Switching precompute back on later stops augmentation: said once per learner, where the
    student's line is."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
        again = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
        for _ in range(3):
            learn.precompute = False
            learn.precompute = True
        again.precompute = True
    advice = [w for w in caught if "augmentation does nothing" in str(w.message)]
    assert [w.filename for w in advice] == [__file__, __file__]     # learn once, again once, at the student's line
    plain = ImageClassifierData.from_paths(data.path, tfms=tfms_from_model("efficientnet_lite0", 32), bs=8,
                                           device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet = ConvLearner.pretrained("efficientnet_lite0", plain)
        quiet.precompute = True                                       # nothing to lose: no augmentation
    assert not [w for w in caught if "augmentation does nothing" in str(w.message)]


def test_the_same_seed_trains_the_same_whether_activations_are_computed_or_read_from_disk(data, home):
    """Computing activations iterates DataLoaders, which draw from the global random generator; reading them from
    disk does not. The first fit after creating a learner must not depend on which happened."""
    results = []
    for _ in range(2):   # the first computes the activations, the second reads them
        torch.manual_seed(0)
        learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
        learn.fit(1e-2, 1)
        results.append(learn.history.trn_loss.tolist())
    assert results[0] == results[1]


def test_fit_prints_the_lesson_table_and_keeps_history(data, capsys):
    torch.manual_seed(0)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = body_state(learn)
    learn.fit(1e-2, 3)
    out = capsys.readouterr().out
    assert out.split("\n")[0].split()[:4] == ["epoch", "trn_loss", "val_loss", "accuracy"]
    assert list(learn.history.columns) == ["fit", "epoch", "trn_loss", "val_loss", "accuracy", "time"]
    assert learn.history.epoch.tolist() == [0, 1, 2]
    assert learn.history.val_loss.iloc[-1] < math.log(2) and learn.history.accuracy.iloc[-1] >= 0.9
    assert same_state(before, body_state(learn))   # the head trained, the body did not
    learn.fit(1e-2, 1)
    assert learn.history.fit.tolist() == [1, 1, 1, 2]


def test_full_forward_with_frozen_body_leaves_body_and_bn_stats_alone(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    before = body_state(learn)
    learn.fit(1e-2, 1)
    assert same_state(before, body_state(learn))


def test_unfreeze_and_one_rate_per_layer_group(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.unfreeze()
    assert not learn.precompute
    assert all(p.requires_grad for p in learn.model.parameters())
    learn.fit(np.array([1e-4, 1e-3, 1e-2]), 1)
    assert learn.sched.lrs[0] == [1e-4, 1e-3, 1e-2]
    assert learn.sched.group_names == ["early body", "late body", "head"]
    with pytest.raises(ValueError, match="got 2 learning rates but this model has 3 layer groups"):
        learn.fit([1e-3, 1e-2], 1)
    learn.freeze_to(1)
    assert not any(p.requires_grad for p in learn.layer_groups[0].parameters())
    assert all(p.requires_grad for p in learn.layer_groups[1].parameters())


def test_precompute_needs_a_frozen_body(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.unfreeze()
    with pytest.raises(ValueError, match="freeze"):
        learn.precompute = True


def test_sgdr_rates_follow_cosine_with_restarts(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 2, cycle_len=1, cycle_mult=2)   # 1 + 2 = 3 epochs
    per_epoch = 3   # 24 images, bs 8
    assert len(learn.history) == 3
    expected = []
    for cycle_epochs in (1, 2):
        T = cycle_epochs * per_epoch
        expected += [0.5 * 1e-2 * (1 + math.cos(math.pi * t / T)) for t in range(T)]
    got = [row[0] for row in learn.sched.lrs]
    assert np.allclose(got, expected, rtol=0, atol=1e-9)


def test_bn_freeze_keeps_running_statistics(data):
    def bn_stats(learn):
        return [m.running_mean.clone() for m in models.batchnorm_layers(learn.body)]

    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.unfreeze()
    learn.bn_freeze(True)
    before = bn_stats(learn)
    learn.fit(1e-4, 1)
    assert all(torch.equal(a, b) for a, b in zip(before, bn_stats(learn)))
    learn.bn_freeze(False)
    learn.fit(1e-4, 1)
    assert not all(torch.equal(a, b) for a, b in zip(before, bn_stats(learn)))


def test_predict_returns_log_probabilities(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    log_preds = learn.predict()
    assert log_preds.shape == (12, 2) and np.allclose(np.exp(log_preds).sum(1), 1, atol=1e-5)
    assert learn.predict(is_test=True).shape == (3, 2)
    learn.precompute = False
    assert np.allclose(learn.predict(), log_preds, atol=1e-4)   # the same model, with or without the cache


def test_predict_on_missing_test_set(data, tmp_path):
    tfms = tfms_from_model("efficientnet_lite0", 32)
    no_test = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8)
    learn = ConvLearner.pretrained("efficientnet_lite0", no_test)
    with pytest.raises(ValueError, match="test_name='test'"):
        learn.predict(is_test=True)


def test_save_and_load(data, home, capsys):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 1)
    path = learn.save("224_lastlayer")
    assert str(path) in capsys.readouterr().out and path.parent == home / "models"
    assert [p.name for p in path.parent.iterdir()] == ["224_lastlayer.pt"]   # no temporary file left
    other = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    other.load("224_lastlayer")
    assert np.allclose(other.predict(), learn.predict(), atol=1e-6)
    with pytest.raises(FileNotFoundError, match=r"saved models: \['224_lastlayer'\]"):
        other.load("nothing")
    with pytest.raises(ValueError, match="plain name"):
        other.save("../outside")


def test_ctrl_c_keeps_finished_epochs_and_a_consistent_model(data, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    calls = {"n": 0}
    original = Recorder.on_batch

    def interrupt_in_second_epoch(self, loss):
        original(self, loss)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
    monkeypatch.setattr(Recorder, "on_batch", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1e-2, 3)
    assert len(learn.history) == 1 and not learn.model.training
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_a_diverging_loss_says_what_to_do(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.objective = training.Objective(lambda out, y: out.sum() * float("nan"))
    with pytest.raises(FloatingPointError, match="learning rate is probably too high"):
        learn.fit(1e-2, 1)


def test_bad_fit_arguments(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    with pytest.raises(ValueError, match="n_cycle"):
        learn.fit(1e-2, 0)
    with pytest.raises(ValueError, match="cycle_mult"):
        learn.fit(1e-2, 2, cycle_len=1, cycle_mult=1.5)


def test_tta_stacks_plain_and_augmented_predictions(data):
    from PIL import Image
    rng = np.random.default_rng(0)
    for f in data.val_ds.fnames:   # textured images, so that crops and flips change them
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(f)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 1)
    log_preds, y = learn.TTA(n_aug=3)
    assert log_preds.shape == (4, 12, 2) and list(y) == list(data.val_y)
    assert np.allclose(log_preds[0], learn.predict(), atol=1e-4)   # the first is the plain prediction
    assert not np.allclose(log_preds[1], log_preds[2])             # augmented copies differ
    probs = np.mean(np.exp(log_preds), 0)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert learn.TTA(n_aug=1, is_test=True)[0].shape == (2, 3, 2)


def test_tta_needs_augmentation(tmp_path, home):
    make_folders(tmp_path / "plain")
    data = ImageClassifierData.from_paths(tmp_path / "plain", tfms=tfms_from_model("efficientnet_lite0", 32), bs=4)
    with pytest.raises(ValueError, match="aug_tfms"):
        ConvLearner.pretrained("efficientnet_lite0", data).TTA()


def test_multi_label_learner_uses_sigmoid_and_f2(tmp_path, home):
    from tests.test_data import make_csv_set

    rows = [f"t{i},{'warm' if i % 2 else 'cool'}{' big' if i % 3 == 0 else ''}" for i in range(30)]
    make_csv_set(tmp_path / "tags", rows)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on)
    data = ImageClassifierData.from_csv(tmp_path / "tags", "imgs", "labels.csv", tfms=tfms, bs=8)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert isinstance(learn.objective.loss_fn, torch.nn.BCEWithLogitsLoss)
    freq = data.trn_y.mean(0)   # each tag's output starts at its frequency, not at 50%
    assert np.allclose(torch.sigmoid(learn.head[-1].bias).detach().numpy(), np.clip(freq, 1e-3, 1 - 1e-3), atol=1e-6)
    learn.fit(1e-2, 2)
    assert list(learn.history.columns) == ["fit", "epoch", "trn_loss", "val_loss", "f2", "time"]
    probs = learn.predict()
    assert probs.shape == (6, 3) and probs.min() >= 0 and probs.max() <= 1
    tta, y = learn.TTA(n_aug=2)
    assert tta.shape == (3, 6, 3) and y.shape == (6, 3)
    bigger = data.set_size(tfms_from_model("efficientnet_lite0", 48, aug_tfms=transforms_side_on))
    learn.set_data(bigger)
    assert learn.activations("train")[0].shape == (24, learn.body.n_features)
    with pytest.raises(ValueError, match="same classes"):
        learn.set_data(ImageClassifierData.from_paths(make_folders(tmp_path / "pets"), tfms=tfms, bs=8))


def test_per_batch_augmentation_path_trains_and_keeps_labels(tmp_path, home, cpu):
    make_folders(tmp_path / "pets", n_train=12, n_valid=6)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    on_device = cpu.but(augment_on_device=True)     # what the policy of a CUDA GPU chooses
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8, device=on_device)
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    batches = learn._batches("train", shuffle=True)
    assert isinstance(batches, DeviceAugmentedBatches)
    ys = torch.cat([y for _, y in batches])
    assert sorted(ys.tolist()) == sorted(data.trn_y.tolist())
    learn.fit(1e-2, 1)
    assert len(learn.history) == 1
    learn.policy = cpu                                 # the CPU's own policy augments image by image
    data.policy = cpu
    assert not isinstance(learn._batches("train", shuffle=True), DeviceAugmentedBatches)


def test_pieces_by_default_only_when_they_give_the_same_update(data, cpu, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    assert learn._run_policy().body_piece == 8                  # a frozen body (its BatchNorm fixed): forward in pieces
    learn.precompute = True
    assert learn._run_policy().body_piece is None               # the head trains on cached activations
    learn.precompute = False
    learn.unfreeze()
    assert learn._run_policy().body_piece is None               # the body's BatchNorm trains: pieces would change it
    learn.bn_freeze(True)
    assert learn._run_policy().body_piece == 8                  # fixed BatchNorm on a CPU: pieces of 8, same update
    learn.policy = cpu.but(body_piece=None)          # a GPU's policy: whole mini-batches
    assert learn._run_policy().body_piece is None
    learn.policy = cpu
    learn.body_piece = None
    assert learn._run_policy().body_piece is None
    for wrong in (0, 2.5, True, "16"):
        learn.body_piece = wrong
        with pytest.raises(ValueError, match="learn.body_piece"):
            learn._run_policy().body_piece
    learn.body_piece = 2
    learn.bn_freeze(False)
    assert learn._run_policy().body_piece == 2                  # a number forces pieces
    seen, step = [], training.train_step
    monkeypatch.setattr(training, "train_step", lambda *a: seen.append(a[0].pieces.piece) or step(*a))   # the model's
    learn.fit(1e-3, 1)                                  # the data's mini-batches of 4 go in pieces of 2
    assert seen and set(seen) == {2}
    assert len(learn.history) == 1 and np.isfinite(learn.history.trn_loss.iloc[-1])


def test_compile_trains_the_same_modules_in_place(data, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = set(learn.model.state_dict())
    assert learn.compile() is learn                    # real torch.compile (inductor); the head compiles in seconds
    assert learn.body._compiled_call_impl is not None and learn.head._compiled_call_impl is not None
    learn.fit(1e-2, 2)                                 # the head trains compiled, on cached activations
    assert len(learn.history) == 2 and learn.history.trn_loss.notna().all()
    assert set(learn.model.state_dict()) == before     # save and load see the same weights
    x = learn.activations("valid")[0][:4]
    learn.head.eval()
    with torch.no_grad():
        assert torch.allclose(learn.head(x), learn.head.forward(x), atol=1e-5)   # compiled == eager
    learn.policy = learn.policy.but(compile_missing="no C++ compiler here")
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler here"):
        learn.compile()


def test_the_layer_groups_table_counts_every_parameter_and_speaks_the_readers_language(data, monkeypatch):
    from lessonlib.learner import describe_start, layer_groups_table
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    lr = np.array([1e-4, 1e-3, 1e-2])
    frozen = layer_groups_table(learn, lr)
    assert frozen.trains.tolist() == [False, False, True]   # the body is frozen at first
    learn.unfreeze()
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    table = layer_groups_table(learn, lr)
    assert table.trains.all() and table.parameters.sum() == sum(p.numel() for p in learn.model.parameters())
    assert list(table.shown().columns) == ["layer group", "parameters", "trains", "learning rate"]
    assert table.learning_rate.tolist() == lr.tolist() and table["layer group"].tolist() == ["early body", "late body", "head"]
    assert describe_start("04", loaded=True) == "starting from lesson 04's weights"
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    shown = layer_groups_table(learn, lr).shown()
    assert list(shown.columns) == ["层组", "参数个数", "参与训练", "学习率"]
    assert shown["层组"].tolist() == ["浅层主干", "深层主干", "头部"] and shown["参与训练"].tolist() == ["是", "是", "是"]
    assert describe_start("04", loaded=False).startswith("第 04 课的权重不在这里")


def test_the_precompute_lines_speak_the_readers_language(data, monkeypatch):
    from types import SimpleNamespace

    from lessonlib.precompute import describe_head_inputs, describe_rows, describe_speedup, describe_stored_row
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    features, _ = learn.activations("valid")
    monkeypatch.setenv("LESSONLIB_LANG", "en")
    assert describe_rows(learn.arch, features, "valid") == (
        f"efficientnet_lite0: 2560 numbers per photo, stored for {len(data.val_ds)} validation photos")
    assert describe_speedup(0.5, 10.0).endswith("precompute is 20x faster here")
    assert describe_head_inputs(True, False) == "precompute on: the head's inputs in two epochs are identical; off: different"
    assert repr(data).startswith(f"ImageClassifierData({data.path}: classes ['cats', 'dogs']; train 24, valid ")
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    assert describe_rows(learn.arch, learn.activations("train")[0], "train") == (
        "efficientnet_lite0：每张照片 2560 个数，为 24 张训练照片存了下来")
    assert describe_speedup(0.5, 10.0).endswith("在这里预计算快 20 倍")
    assert describe_stored_row(1e-7, 0.25, SimpleNamespace(precision="fp32", rounding=1e-6)).split("\n") == [
        "存下的那一行与主干在原图上的输出相差 1.0e-07；与增强后的版本相差 0.25", "数值精度 fp32：舍入误差最多 1e-06"]
    assert "训练集 24 张" in repr(data) and "classes" not in repr(data)
