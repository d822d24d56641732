"""lessonlib/precompute.py: activations cached on disk follow the data (tags, labels, pixels) and a cache that cannot be written or read is said and computed again."""
import errno
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lessonlib import precompute
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model
from tests.helpers import csv_set, disk_fills_after, make_folders

TFMS = tfms_from_model("efficientnet_lite0", 32)


def test_edited_tags_reach_the_cached_activations(tmp_path, home):
    rows = [f"t{i},{'warm' if i % 2 else 'cool'}{' big' if i % 3 == 0 else ''}" for i in range(24)]
    csv_set(tmp_path, rows)
    data = ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=8, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert learn.activations("train")[1].shape[1] == 3
    edited = [r.replace("cool", "cold") + (" wet" if i == 5 else "") for i, r in enumerate(rows)]
    keep_times(tmp_path / "labels.csv", lambda: csv_set(tmp_path, edited))   # same file times, new tags
    again = ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=8, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", again, precompute=True)
    x, y = learn.activations("train")
    assert again.classes == ["big", "cold", "warm", "wet"] and y.shape[1] == 4
    assert np.array_equal(y.numpy(), again.trn_y)
    learn.fit(1e-2, 1)   # a new tag no longer crashes on a shape mismatch
    assert len(learn.history) == 1


def keep_times(path, action):
    """Do `action()` (which rewrites `path`) and put `path`'s modification time back."""
    st = os.stat(path)
    action()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_photo_moved_to_the_other_class_changes_its_cached_label(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=6, n_valid=3)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    moved = tmp_path / "pets" / "train" / "cats" / "cats.0.jpg"
    st = os.stat(moved)
    target = tmp_path / "pets" / "train" / "dogs" / "cats.0.jpg"
    shutil.move(moved, target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    y = ConvLearner.pretrained("efficientnet_lite0", again, precompute=True).activations("train")[1]
    assert y.tolist() == list(again.trn_y) and int((y == 1).sum()) == 7


def test_a_full_disk_names_the_folder_and_leaves_no_partial_file(data, home, monkeypatch):
    def full(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(precompute.torch, "save", full)
    with pytest.warns(UserWarning, match=r"could not be cached.*the disk holding .*precompute is full.*LESSONLIB_HOME"):
        ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)   # computed, kept in memory
    assert not [p for p in (home / "precompute").iterdir()]


def test_a_truncated_activation_cache_is_named_deleted_and_computed_again(data, home, capsys):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    expected = learn.activations("valid")[0].clone()
    for f in (home / "precompute").glob("*.pt"):
        f.write_bytes(f.read_bytes()[:100])
    capsys.readouterr()
    again = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    out = capsys.readouterr().out
    assert "cached activations" in out and "could not be read" in out and str(home / "precompute") in out
    assert torch.allclose(again.activations("valid")[0], expected)
    again2 = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)   # and the new file is whole
    assert "could not be read" not in capsys.readouterr().out and again2.precompute


def test_an_image_swapped_for_another_of_the_same_size_and_time_is_not_served_stale(tmp_path, home):
    import io as bytes_io
    from PIL import Image
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    victim = sorted((tmp_path / "pets" / "train" / "cats").iterdir())[0]
    tfms = tfms_from_model("efficientnet_lite0", 32)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = learn.activations("train")[0].clone()
    other = bytes_io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(other, format="JPEG", quality=50)   # a smaller file ...
    old, new = victim.read_bytes(), other.getvalue()
    assert len(new) < len(old)
    new += b"\0" * (len(old) - len(new))                 # ... padded to the old size (JPEG ignores the tail)
    st = victim.stat()
    victim.write_bytes(new)                               # the same size ...
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same modification time
    assert victim.stat().st_size == st.st_size and victim.stat().st_mtime_ns == st.st_mtime_ns
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    assert not torch.allclose(learn.activations("train")[0], before)


def test_precompute_on_a_full_disk_keeps_what_it_computed_and_trains(data, home, monkeypatch):
    disk_fills_after(monkeypatch, 1000)
    with pytest.warns(UserWarning) as warned:
        learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    said = [str(w.message) for w in warned if "could not be cached" in str(w.message)]
    assert len(said) == 1, said   # one line, not one per split
    assert re.search(r"activations of train could not be cached on disk \(the disk holding .*precompute is full.*\); "
                     r"they are kept in memory", said[0])
    assert not list((home / "precompute").iterdir())
    x, y = learn.activations("train")
    assert len(x) == len(data.trn_ds) and np.array_equal(y.numpy(), data.trn_y)
    learn.fit(1e-2, 1)   # on the activations in memory
    assert len(learn.history) == 1
