import copy
import math
import os
import signal

import numpy as np
import pytest
import torch

from lessonlib import learner as learner_module
from lessonlib import models, training
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def data(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=12, n_valid=6, n_test=3)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    return ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8, test_name="test")


def body_state(learn):
    return {k: v.clone() for k, v in learn.body.module.state_dict().items()}


def same_state(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_precompute_is_cached_on_disk_and_reused(data, home, monkeypatch, capsys):
    torch.manual_seed(0)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert "augmentation does nothing" in capsys.readouterr().out
    assert len(list((home / "precompute").glob("*.pt"))) == 3   # train, valid, test
    x, y = learn.activations("train")
    assert x.shape == (24, 2560) and y.tolist() == list(data.trn_y)

    monkeypatch.setattr(training, "get_preds", lambda *a, **k: pytest.fail("activations must come from disk"))
    again = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert torch.equal(again.activations("train")[0], x)


def test_fit_prints_the_lesson_table_and_keeps_history(data, capsys):
    torch.manual_seed(0)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = body_state(learn)
    learn.fit(1e-2, 3)
    out = capsys.readouterr().out
    assert out.split("\n")[1].split()[:4] == ["epoch", "trn_loss", "val_loss", "accuracy"]
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
        return [m.running_mean.clone() for m in learn.body.module.modules()
                if isinstance(m, torch.nn.BatchNorm2d)]

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
    original = learner_module.Recorder.on_batch

    def interrupt_in_second_epoch(self, loss):
        original(self, loss)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
    monkeypatch.setattr(learner_module.Recorder, "on_batch", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1e-2, 3)
    assert len(learn.history) == 1 and not learn.model.training
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_an_interrupt_waits_for_the_optimizer_step():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with training.deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("finished the step")
    assert steps == ["finished the step"]


def test_a_diverging_loss_says_what_to_do(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.loss_fn = lambda out, y: out.sum() * float("nan")
    with pytest.raises(FloatingPointError, match="learning rate is probably too high"):
        learn.fit(1e-2, 1)


def test_bad_fit_arguments(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    with pytest.raises(ValueError, match="n_cycle"):
        learn.fit(1e-2, 0)
    with pytest.raises(ValueError, match="cycle_mult"):
        learn.fit(1e-2, 2, cycle_len=1, cycle_mult=1.5)


def test_accuracy_metric():
    log_preds = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    assert training.accuracy(log_preds, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


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
    assert isinstance(learn.loss_fn, torch.nn.BCEWithLogitsLoss)
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


def test_per_batch_augmentation_path_trains_and_keeps_labels(data):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.augment_on_device = True     # what happens by default on a CUDA GPU
    batches = learn._batches("train", shuffle=True)
    assert isinstance(batches, learner_module.DeviceAugmentedBatches)
    ys = torch.cat([y for _, y in batches])
    assert sorted(ys.tolist()) == sorted(data.trn_y.tolist())
    learn.fit(1e-2, 1)
    assert len(learn.history) == 1
    learn.augment_on_device = None
    assert not isinstance(learn._batches("train"), learner_module.DeviceAugmentedBatches)   # CPU: per image


def _body_and_head(body_dropout=0.0):
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Dropout(body_dropout), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return torch.nn.Sequential(body, models.create_head(4, 2, hidden=8))


def _one_step(model, x, y, micro_bs, seed=1):
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    autocast, _ = training.autocast_for(torch.device("cpu"))
    loss = training.train_step(model, x, y, torch.nn.functional.cross_entropy, opt, torch.device("cpu"), autocast,
                               micro_bs=micro_bs)
    return float(loss), [p.detach().clone() for p in model.parameters()]


def test_body_in_pieces_gives_the_whole_batch_update_when_its_batchnorm_is_fixed():
    net = _body_and_head()
    x, y = torch.randn(10, 3, 8, 8), torch.randint(0, 2, (10,))
    results = []
    for micro_bs in (None, 4):   # 10 images in pieces of 4, 4 and 2; the head (BatchNorm, dropout) sees all 10
        model = copy.deepcopy(net).train()
        model[0][1].eval()       # what learn.bn_freeze(True) does to the body's BatchNorm
        results.append(_one_step(model, x, y, micro_bs))
    (whole_loss, whole), (split_loss, split) = results
    assert abs(whole_loss - split_loss) < 1e-6
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, split))
    assert not torch.equal(whole[0], net[0][0].weight)   # the step did change the weights
    model = copy.deepcopy(net).train()                     # the head's BatchNorm in pieces would differ:
    model[0][1].eval()                                     # this test can tell the two ways apart
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(1)
    for xs, ys in zip(x.split(4), y.split(4)):
        (torch.nn.functional.cross_entropy(model(xs), ys) * len(xs) / len(x)).backward()
    opt.step()
    assert not torch.allclose(list(model.parameters())[-1], split[-1], atol=1e-4)


def test_pieces_replay_the_body_randomness_and_count_batchnorm_statistics_once():
    net = _body_and_head(body_dropout=0.5)
    x, y = torch.randn(10, 3, 8, 8), torch.randint(0, 2, (10,))
    model = copy.deepcopy(net).train()
    _one_step(model, x, y, micro_bs=4)
    grads = [p.grad.clone() for p in model.parameters()]
    # the same computation with every piece's graph kept in memory at once: the gradients must agree
    reference = copy.deepcopy(net).train()
    torch.manual_seed(1)
    pieces = training.to_device(x, torch.device("cpu")).split(4)   # channels_last, as train_step makes them
    features = torch.cat([reference[0](piece) for piece in pieces])
    torch.nn.functional.cross_entropy(reference[1](features), y).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads, reference.parameters()))
    # running statistics: updated by the first pass over the pieces only, not again by the second
    bn, ref_bn = model[0][1], reference[0][1]
    assert int(bn.num_batches_tracked) == 3 == int(ref_bn.num_batches_tracked)
    assert torch.allclose(bn.running_mean, ref_bn.running_mean) and torch.allclose(bn.running_var, ref_bn.running_var)


def test_pieces_by_default_only_when_they_give_the_same_update(data, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    assert learn._micro_bs() == 8                    # a frozen body (its BatchNorm fixed): forward in pieces
    learn.precompute = True
    assert learn._micro_bs() is None                 # the head trains on cached activations
    learn.precompute = False
    learn.unfreeze()
    assert learn._micro_bs() is None                 # the body's BatchNorm trains: pieces would change it
    learn.bn_freeze(True)
    assert learn._micro_bs() == 8                    # fixed BatchNorm on a CPU: pieces of 8, same update
    monkeypatch.setattr(learner_module, "default_device", lambda: torch.device("cuda"))
    assert learn._micro_bs() is None                 # a GPU has the memory for whole mini-batches
    monkeypatch.undo()
    learn.micro_bs = None
    assert learn._micro_bs() is None
    for wrong in (0, 2.5, True, "16"):
        learn.micro_bs = wrong
        with pytest.raises(ValueError, match="learn.micro_bs"):
            learn._micro_bs()
    learn.micro_bs = 2
    learn.bn_freeze(False)
    assert learn._micro_bs() == 2                    # a number forces pieces
    seen, step = [], training.train_step
    monkeypatch.setattr(training, "train_step", lambda *a: seen.append(a[-1]) or step(*a))
    learn.fit(1e-3, 1)                                  # the data's mini-batches of 4 go in pieces of 2
    assert seen and set(seen) == {2}
    assert len(learn.history) == 1 and np.isfinite(learn.history.trn_loss.iloc[-1])


def test_compile_trains_the_same_modules_in_place(data, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = set(learn.model.state_dict())
    assert learn.compile() is learn                    # real torch.compile (inductor); the head compiles in seconds
    assert learn.body.module._compiled_call_impl is not None and learn.head._compiled_call_impl is not None
    learn.fit(1e-2, 2)                                 # the head trains compiled, on cached activations
    assert len(learn.history) == 2 and learn.history.trn_loss.notna().all()
    assert set(learn.model.state_dict()) == before     # save and load see the same weights
    x = learn.activations("valid")[0][:4]
    learn.head.eval()
    with torch.no_grad():
        assert torch.allclose(learn.head(x), learn.head.forward(x), atol=1e-5)   # compiled == eager
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        learn.compile()


def test_predictions_on_a_cpu_come_in_pieces_with_the_same_outputs():
    model = _body_and_head().eval()
    x = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8).float()
    batches = [(x[:10], torch.zeros(10)), (x[10:], torch.ones(10))]
    calls = []
    model[0].register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    out, y = training.get_preds(model, batches, torch.device("cpu"))
    assert calls == [8, 2, 8, 2]                     # CPU_PIECE = 8 images at a time
    with torch.no_grad():
        assert torch.allclose(out, model(x), atol=1e-6) and y.tolist() == [0] * 10 + [1] * 10
