"""Keras 3 (PyTorch backend) against lessonlib: the counting, the measured table, the BatchNorm trap."""
import numpy as np
import pytest

from lessonlib import keras_compare
from lessonlib.keras_compare import Pipeline, user_code_stats
from tests.helpers import make_folders, needs_keras


@pytest.fixture(autouse=True)
def keras():
    """Every test here needs Keras, an optional extra (pip install lessonlib[keras])."""
    return needs_keras()

ARCH = "efficientnet_lite0"   # the packaged weights: no download attempt in tests


@pytest.fixture
def images(tmp_path):
    return make_folders(tmp_path / "pets", n_train=8, n_valid=4, size=(48, 40))


def _stage_a(path, sz, bs, arch):
    """A docstring is not user code."""
    # a comment is not code either
    x = dict(lr=0.1,
             name="adam")
    return x


def _stage_b(data, sz, arch):
    train_dl, valid_dl = data   # unpacking the stage's argument is glue, not code
    flag = True
    return [train_dl, valid_dl, flag, None]


def test_user_code_stats_counts_lines_and_literal_settings():
    toy = Pipeline("toy", _stage_a, _stage_b, _stage_a, _stage_b, "-")
    lines, settings = user_code_stats(toy)
    # per _stage_a: 2 lines of the dict call + return; per _stage_b: flag line + return
    assert lines == 2 * 3 + 2 * 2
    assert settings == [0.1, "adam", True] * 2   # None is not a setting


def test_lessonlib_needs_fewer_lines_and_settings_than_keras():
    ours, theirs = user_code_stats(keras_compare.LESSONLIB), user_code_stats(keras_compare.KERAS)
    assert ours[0] < theirs[0] / 2 and len(ours[1]) < len(theirs[1]) / 2
    assert "rmsprop" in theirs[1] and 1024 in theirs[1] and 1e-2 in ours[1]


def test_compare_runs_both_pipelines_on_the_same_data(images, capsys):
    table = keras_compare.compare(images, sz=32, bs=4, head_epochs=1, fine_tune_epochs=1, arch=ARCH,
                                  keras_resnet50=False)
    assert list(table.index) == ["lessonlib", "Keras 3 (torch backend)", "Keras 3, fine-tune at 1e-5"]
    assert (table["head: time/epoch (s)"] > 0).all() and (table["fine-tune: time/epoch (s)"] > 0).all()
    for col in ("head: val accuracy", "fine-tune: val accuracy"):
        assert table[col].between(0, 1).all()
    assert not table["BatchNorm stats moved"].any()
    out = capsys.readouterr().out
    assert "trn_loss" in out and "val_accuracy" in out   # each framework printed its own progress


def test_keras_model_trains_the_head_then_the_late_body(images):
    data = keras_compare.keras_data(images, 32, 4, ARCH)
    model = keras_compare.keras_model(data, 32, ARCH)
    keras_compare.keras_train_head(model, data, 1)
    trainable = {layer.name for layer in model.layers if layer.trainable_weights}
    assert trainable == {model.layers[-2].name, model.layers[-1].name}
    keras_compare.keras_fine_tune(model, data, 1)
    trainable = {layer.name for layer in model.layers if layer.trainable_weights}
    assert "late_body" in trainable and "early_body" not in trainable
    late = model.get_layer("late_body").module
    assert all(p.requires_grad for p in late.parameters())


def test_training_false_alone_lets_keras_move_the_torch_batchnorm(images):
    """Keras's guide says training=False; Keras 3's fit overrides it (keras-team/keras#20285)."""
    keras = keras_compare.import_keras()
    data = keras_compare.keras_data(images, 32, 4, ARCH)
    drift = keras_compare.bn_drift_with_training_false(data, ARCH, steps=2)
    version = tuple(int(part) for part in keras.__version__.split(".")[:3] if part.isdigit())
    if version <= (3, 15, 1):   # the versions seen with the bug; lesson 08 explains either outcome
        assert drift > 0
    else:
        assert np.isfinite(drift)


def _fake_resnet50_weights(tmp_path, monkeypatch):
    """Serve Keras a ResNet50 'notop' weights file (random, saved in its download format) as if downloaded."""
    keras = keras_compare.import_keras()
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.utils import file_utils
    import h5py

    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    source = keras.applications.ResNet50(weights=None, include_top=False)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: str(path))
    return source


def test_keras_resnet50_path_loads_weights_and_keeps_batchnorm_fixed(images, tmp_path, monkeypatch):
    source = _fake_resnet50_weights(tmp_path, monkeypatch)
    assert keras_compare.keras_resnet50_available()
    data = keras_compare.keras_data(images, 32, 4, ARCH)
    model = keras_compare.keras_resnet50_model(data, 32, ARCH)
    base = model.get_layer("resnet50")
    np.testing.assert_array_equal(base.weights[0].value.detach().numpy(), source.weights[0].value.detach().numpy())   # weights loaded
    keras_compare.keras_train_head(model, data, 1)
    before = keras_compare._bn_buffers(model)
    keras_compare.keras_resnet50_fine_tune(model, data, 1)
    assert keras_compare._bn_change(before, keras_compare._bn_buffers(model)) == 0
    assert not any(layer.trainable_weights for layer in base.layers[:140])
    assert any(layer.trainable_weights for layer in base.layers[140:])


def test_unavailable_resnet50_weights_are_announced(monkeypatch, capsys):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/notop.h5: None -- no network")
    monkeypatch.setattr(file_utils, "get_file", offline)
    assert keras_compare.keras_resnet50_available() is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "cannot be loaded here" in out and "lessonlib's pretrained body" in out
