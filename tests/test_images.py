"""lessonlib/images.py: reading image files (the scan cache, names that are not UTF-8, images too elongated to resize)."""
import os

import pytest
from PIL import Image

from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model
from tests.helpers import make_folders

TFMS = tfms_from_model("efficientnet_lite0", 32)


def test_a_truncated_scan_cache_is_recomputed(tmp_path, home, capsys):
    make_folders(tmp_path / "pets")
    ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    for f in (home / "scans").glob("*.json"):
        f.write_text('{"unfinished')
    ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    assert "image scan cache" in capsys.readouterr().out


def test_file_names_that_are_not_utf8_work_and_are_shown(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    folder = os.fsencode(tmp_path / "pets" / "train" / "cats")
    with open(os.path.join(folder, b"caf\xe9.jpg"), "wb") as f:   # Latin-1, as archives made on Windows hold
        Image.new("RGB", (40, 30), (200, 60, 40)).save(f, "JPEG")
    with open(os.path.join(folder, b"broken\xff.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    with pytest.warns(UserWarning, match=r"broken\\xff\.jpg"):
        data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    assert len(data.trn_ds) == 9
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 1)
    assert learn.activations("train")[0].shape[0] == 9


def test_an_extremely_elongated_image_is_skipped_with_the_unreadable_ones(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    Image.new("RGB", (1, 5000), (9, 9, 9)).save(tmp_path / "pets" / "train" / "dogs" / "strip.png")
    with pytest.warns(UserWarning, match=r"cannot be used:\n.*strip\.png: .*1x5000 px is more elongated than 20:1.*MB"):
        data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms_from_model("efficientnet_lite0", 224),
                                              bs=4, device="cpu")
    assert all("strip" not in f.name for f in data.trn_ds.fnames)
