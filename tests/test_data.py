import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lessonlib.data import ImageClassifierData
from lessonlib.engine.policy import resolve_policy
from lessonlib.folders import check_layout, folder_summary
from lessonlib.images import load_image
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import csv_set, make_folders, write_image

TFMS = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on)


def test_reads_the_dogscats_layout(tmp_path):
    make_folders(tmp_path, n_train=5, n_valid=3, n_test=4)
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=4, test_name="test")
    assert data.classes == ["cats", "dogs"] and data.c == 2
    assert (len(data.trn_ds), len(data.val_ds), len(data.test_ds)) == (10, 6, 4)
    assert list(data.val_y) == [0, 0, 0, 1, 1, 1]
    x, y = next(iter(data.val_dl))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8 and y.tolist() == [0, 0, 0, 1]
    assert sum(len(b[0]) for b in data.trn_dl) == 10
    assert folder_summary(tmp_path).images.sum() == 20


def test_other_folder_names(tmp_path):
    make_folders(tmp_path)
    (tmp_path / "train").rename(tmp_path / "training")
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=4, trn_name="training")
    assert len(data.trn_ds) == 12


def test_a_last_batch_of_one_is_dropped_only_when_shuffling(tmp_path):
    make_folders(tmp_path, n_train=5, n_valid=5)   # 10 images, bs 3: 3+3+3+1
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=3)
    assert [len(y) for _, y in data.trn_dl] == [3, 3, 3]
    assert [len(y) for _, y in data.val_dl] == [3, 3, 3, 1]


@pytest.mark.parametrize("breakage, error, match", [
    (lambda p: __import__("shutil").rmtree(p / "train"), FileNotFoundError, r"no train/ folder in .* \['valid'\]"),
    (lambda p: __import__("shutil").rmtree(p / "valid"), FileNotFoundError, "no valid/ folder"),
    (lambda p: (p / "valid" / "dogs").rename(p / "valid" / "dog"), ValueError,
     r"valid/ has classes \['cats', 'dog'\] but train/ has \['cats', 'dogs'\]: the folder names"),
    (lambda p: [f.unlink() for f in (p / "train" / "dogs").iterdir()], ValueError, "train/dogs/ has no images"),
    (lambda p: __import__("shutil").rmtree(p / "train" / "dogs") or __import__("shutil").rmtree(p / "valid" / "dogs"),
     ValueError, "at least two class folders"),
])
def test_broken_layouts_give_clear_errors(tmp_path, breakage, error, match):
    make_folders(tmp_path)
    breakage(tmp_path)
    with pytest.raises(error, match=match):
        ImageClassifierData.from_paths(tmp_path, tfms=TFMS)


def test_images_directly_in_train(tmp_path):
    for i in range(3):
        write_image(tmp_path / "train" / f"{i}.jpg", (1, 2, 3))
    (tmp_path / "valid").mkdir()
    with pytest.raises(ValueError, match="train/ has no class folders but 3 loose images"):
        check_layout(tmp_path)


def test_missing_path_and_missing_test_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageClassifierData.from_paths(tmp_path / "nope", tfms=TFMS)
    make_folders(tmp_path)
    with pytest.raises(FileNotFoundError, match="no test/ folder"):
        ImageClassifierData.from_paths(tmp_path, tfms=TFMS, test_name="test")


def test_bad_arguments(tmp_path):
    make_folders(tmp_path)
    with pytest.raises(TypeError, match="tfms_from_model"):
        ImageClassifierData.from_paths(tmp_path, tfms=None)
    with pytest.raises(ValueError, match="bs=0"):
        ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=0)


def test_undecodable_files_are_skipped_with_one_warning(tmp_path):
    make_folders(tmp_path)
    good = (tmp_path / "train" / "cats" / "cats.0.jpg").read_bytes()
    (tmp_path / "train" / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "train" / "dogs" / "notes.jpg").write_text("this is a text file, not a photo")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=4)
    messages = [str(w.message) for w in caught if "cannot be used" in str(w.message)]
    assert len(messages) == 1
    assert "truncated.jpg" in messages[0] and "notes.jpg" in messages[0] and "skipping 2 image(s)" in messages[0]
    assert len(data.trn_ds) == 12
    assert sum(len(y) for _, y in data.trn_dl) == 12   # a full epoch, no crash in the loader


def test_the_scan_finds_truncated_files_and_leaves_pils_switch_as_it_was(tmp_path, monkeypatch):
    from PIL import ImageFile

    from lessonlib.images import find_unreadable
    make_folders(tmp_path)
    good = (tmp_path / "train" / "cats" / "cats.0.jpg").read_bytes()
    (tmp_path / "train" / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)   # a student's own choice, for their own code
    bad = find_unreadable(sorted((tmp_path / "train" / "cats").iterdir()))
    assert [Path(f).name for f in bad] == ["truncated.jpg"]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_a_class_with_only_broken_images_is_an_error(tmp_path):
    make_folders(tmp_path)
    for f in (tmp_path / "valid" / "dogs").iterdir():
        f.write_text("broken")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="valid/dogs/ has no readable images left"):
            ImageClassifierData.from_paths(tmp_path, tfms=TFMS)


def test_image_modes_become_rgb(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))      # fully transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))               # one opaque blue pixel
    rgba.save(tmp_path / "alpha.png")
    Image.new("L", (4, 4), 77).save(tmp_path / "grey.jpg")
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.save(tmp_path / "palette.png")
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")

    alpha = load_image(tmp_path / "alpha.png")
    assert alpha.mode == "RGB"
    assert alpha.getpixel((0, 0)) == (0, 0, 255) and alpha.getpixel((3, 3)) == (255, 255, 255)
    grey = load_image(tmp_path / "grey.jpg")
    assert grey.mode == "RGB" and all(abs(v - 77) <= 2 for v in grey.getpixel((1, 1)))
    red = load_image(tmp_path / "cmyk.jpg").getpixel((1, 1))
    assert red[0] > 200 and red[1] < 40 and red[2] < 40
    assert load_image(tmp_path / "palette.png").getpixel((2, 2)) == (10, 200, 30)
    assert load_image(tmp_path / "deep.png").getpixel((0, 0)) == (255, 255, 255)


def test_mixed_modes_train_side_by_side(tmp_path):
    make_folders(tmp_path)
    write_image(tmp_path / "train" / "cats" / "alpha.png", (200, 80, 40, 128), mode="RGBA")
    write_image(tmp_path / "train" / "dogs" / "grey.jpg", 90, mode="L")
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=14)
    x, _ = next(iter(data.fix_dl))
    assert x.shape == (14, 3, 32, 32)


def make_csv_set(root, rows, files=None):
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    for name in files if files is not None else [r.split(",")[0] for r in rows]:
        write_image(root / "imgs" / f"{name}.jpg", (len(name) * 20 % 255, 90, 30))
    (root / "labels.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    return root


def test_from_csv_multi_label(tmp_path):
    rows = [f"img{i},{'clear primary' if i % 2 else 'cloudy'}{' water' if i % 3 == 0 else ''}" for i in range(20)]
    make_csv_set(tmp_path, rows)
    data = ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=4)
    assert data.is_multi and data.classes == ["clear", "cloudy", "primary", "water"]
    assert (len(data.trn_ds), len(data.val_ds)) == (16, 4)
    again = ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=4)
    assert [f.name for f in again.val_ds.fnames] == [f.name for f in data.val_ds.fnames]   # reproducible split
    x, y = next(iter(data.trn_dl))
    assert y.dtype == torch.float32 and y.shape == (4, 4) and set(y.unique().tolist()) <= {0.0, 1.0}
    i = [f.name for f in data.trn_ds.fnames].index("img3.jpg")
    assert data.trn_ds.y[i].tolist() == [1, 0, 1, 1]
    chosen = ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=4, val_idxs=[0, 1])
    assert [f.name for f in chosen.val_ds.fnames] == ["img0.jpg", "img1.jpg"]


def test_from_csv_single_label_is_not_multi(tmp_path):
    make_csv_set(tmp_path, [f"a{i},{'cat' if i % 2 else 'dog'}" for i in range(10)])
    data = ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=4)
    assert not data.is_multi and data.classes == ["cat", "dog"]


@pytest.mark.parametrize("rows, files, error, match", [
    (["a,x", "b,y", "a,z"], ["a", "b"], ValueError, r"listed twice, e\.g\. \['a'\]"),
    (["a,x", "b,", "c,y"], ["a", "b", "c"], ValueError, r"have no tags, e\.g\. \['b'\]"),
    (["a,x", "b,y", "c,y"], ["a", "b"], FileNotFoundError, r"not in .*imgs, e\.g\. \['c\.jpg'\]"),
])
def test_from_csv_errors(tmp_path, rows, files, error, match):
    make_csv_set(tmp_path, rows, files)
    with pytest.raises(error, match=match):
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS)


def test_set_size_keeps_images_and_labels(tmp_path):
    make_folders(tmp_path)
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=4)
    bigger = data.set_size(tfms_from_model("efficientnet_lite0", 48, aug_tfms=transforms_side_on))
    assert bigger.sz == 48 and bigger.trn_ds.fnames == data.trn_ds.fnames and next(iter(bigger.val_dl))[0].shape[-1] == 48


def test_submission_frame(tmp_path):
    from lessonlib.data import submission_frame

    make_folders(tmp_path, n_test=3)
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=4, test_name="test")
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    sub = submission_frame(data, probs, "dogs")
    assert list(sub.columns) == ["id", "label"] and sub.id.tolist() == [0, 1, 2]
    assert sub.label.tolist() == [0.1, 0.8, 0.5]
    with pytest.raises(ValueError, match="probs must be"):
        submission_frame(data, probs[:2], "dogs")


def test_submission_ids_never_merge_two_images(tmp_path):
    from lessonlib.data import submission_frame

    make_folders(tmp_path, n_test=0)
    for name in ("1.jpg", "001.jpg", "01.jpg"):
        write_image(tmp_path / "test" / name, (90, 90, 90), (40, 30))
    data = ImageClassifierData.from_paths(tmp_path, tfms=TFMS, bs=4, test_name="test")
    sub = submission_frame(data, np.full((3, 2), 0.5), "dogs")
    assert sorted(sub.id.tolist()) == ["001", "01", "1"] and sub.id.is_unique


def _noise_folders(root, n=4, size=(48, 36)):
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for cls in ("cats", "dogs"):
            for i in range(n):
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
                    root / split / cls / f"{i}.jpg", quality=95)
    return root


def test_image_cache_decodes_each_photo_once_and_changes_nothing(tmp_path, monkeypatch):
    from lessonlib import data as data_module

    path = _noise_folders(tmp_path / "pets")
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    cpu = resolve_policy("cpu").but(num_workers=0)
    plain = ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=cpu.but(image_cache_mb=0))
    assert plain.image_cache is None
    def items(data):
        out = []
        for epoch in range(3):
            for ds in (data.trn_ds, data.val_ds):
                for i in range(len(ds)):
                    torch.manual_seed(epoch * 100 + i)
                    out.append(ds[i])
            out.append(next(iter(data.fix_dl)))
        return out
    expected = items(plain)
    decoded = []
    real_load = data_module.load_image
    monkeypatch.setattr(data_module, "load_image", lambda *a: decoded.append(a[0]) or real_load(*a))
    cached = ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=cpu.but(image_cache_mb=512))
    decoded.clear()                                  # (from_paths decodes every file once to check it)
    got = items(cached)
    assert all(torch.equal(a[0], b[0]) and torch.equal(torch.as_tensor(a[1]), torch.as_tensor(b[1]))
               for a, b in zip(expected, got))      # the same pixels, the same random augmentations
    files = cached.trn_ds.fnames + cached.val_ds.fnames
    assert sorted(decoded) == sorted(files)        # train, fix and valid share one decoded copy per file
    assert len(cached.image_cache) == len(files)
    torch.manual_seed(0)
    a = cached.trn_ds[0][0]
    assert not all(torch.equal(a, cached.trn_ds[0][0]) for _ in range(5))   # the cache holds the resize only


def test_image_cache_when_the_policy_has_a_budget_and_the_images_fit_in_it(tmp_path):
    path = _noise_folders(tmp_path / "pets")
    tfms = tfms_from_model("efficientnet_lite0", 32)
    cpu = resolve_policy("cpu").but(num_workers=0)
    assert cpu.image_cache_mb == 0                                   # a CPU spends its time in the model
    assert ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=cpu).image_cache is None
    gpu_like = cpu.but(image_cache_mb=512)                           # what a CUDA GPU's policy holds
    assert ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=gpu_like).image_cache is not None
    tight = cpu.but(image_cache_mb=0.01)                             # 16 images of 32x42 px need 0.06 MB
    assert ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=tight).image_cache is None


def test_image_cache_is_filled_before_worker_processes_start(tmp_path):
    path = _noise_folders(tmp_path / "pets")
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=resolve_policy("cpu").but(num_workers=1, image_cache_mb=512))
    assert len(data.image_cache) == len(data.trn_ds) + len(data.val_ds)
    x, y = next(iter(data.trn_dl))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8


@pytest.mark.parametrize("cache_images", [False, True])
def test_a_file_that_vanishes_after_the_check_is_named(tmp_path, cache_images):
    path = _noise_folders(tmp_path / "pets")
    tfms = tfms_from_model("efficientnet_lite0", 32)
    policy = resolve_policy("cpu").but(num_workers=0, image_cache_mb=512 if cache_images else 0)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=4, device=policy)
    gone = data.trn_ds.fnames[0]
    gone.unlink()
    with pytest.raises(RuntimeError, match=f"could not read {gone}"):
        data.trn_ds[0]


def test_loading_and_training_with_workers_started_by_spawn(tmp_path):
    """As on Windows and macOS, where DataLoader workers start by `spawn`: everything they get must pickle."""
    import subprocess
    import sys
    from pathlib import Path

    make_folders(tmp_path / "pets", n_train=8, n_valid=4)
    script = tmp_path / "spawned.py"
    script.write_text(f"""
import multiprocessing, pickle
from lessonlib import ConvLearner, ImageClassifierData, tfms_from_model, transforms_side_on, transforms_top_down
from lessonlib.engine.policy import resolve_policy

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    policy = resolve_policy("cpu").but(num_workers=2)
    for aug in (transforms_side_on, transforms_top_down):
        tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=aug, max_zoom=1.1)
        data = ImageClassifierData.from_paths({str(tmp_path / 'pets')!r}, tfms=tfms, bs=4, device=policy)
        pickle.dumps(data.trn_ds), pickle.dumps(data.val_ds), pickle.dumps(tfms)
        assert sum(len(y) for _, y in data.trn_dl) == 16
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.fit(1e-2, 1)
    print("trained", len(learn.history), data.trn_dl.num_workers, data.trn_dl.multiprocessing_context)
""")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PATH": "/usr/bin:/bin",
           "LESSONLIB_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained 1 2" in proc.stdout


PLAIN = tfms_from_model("efficientnet_lite0", 32)   # no augmentation


@pytest.mark.parametrize("rows, kwargs, match", [
    ([f"t{i},cat" for i in range(10)], {}, "only the class"),
    ([f"t{i},a;b" for i in range(10)], {}, "separated by spaces"),
    (["t0,a b", "t1,a", "t2,b,c"] + [f"t{i},a" for i in range(3, 10)], {}, "separated by spaces"),
    ([f"t{i},{'a' if i % 2 else 'b'}" for i in range(10)], {"val_idxs": list(range(9))}, "at least 2"),
    ([f"t{i},{'a' if i % 2 else 'b'}" for i in range(10)], {"val_idxs": [3, 12]}, "outside 0..9"),
    ([f"t{i},{'a' if i % 2 else 'b'}" for i in range(10)] + ["t10,c"], {"val_idxs": [10, 1]}, r"\['c'\] appear only"),
])
def test_from_csv_refuses_what_cannot_train(tmp_path, rows, kwargs, match):
    csv_set(tmp_path, rows)
    with pytest.raises(ValueError, match=match):
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=PLAIN, bs=4, device="cpu", **kwargs)


def test_a_header_only_csv_is_a_clear_error(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "labels.csv").write_text("image_name,tags\n")
    with pytest.raises(ValueError, match="header but no rows"):
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=PLAIN, device="cpu")
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=PLAIN, device="cpu")


def test_a_mini_batch_of_one_is_refused(tmp_path):
    make_folders(tmp_path / "pets")
    with pytest.raises(ValueError, match="bs=1: the head's BatchNorm"):
        ImageClassifierData.from_paths(tmp_path / "pets", tfms=PLAIN, bs=1, device="cpu")


def test_an_image_removed_after_from_paths_is_named_with_what_to_do(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    tfms = tfms_from_model("efficientnet_lite0", 32)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device="cpu")
    gone = sorted((tmp_path / "pets" / "train" / "dogs").iterdir())[0]
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=rf"changed after the data was read \(train/dogs/{gone.name} removed or "
                                                rf"moved\): build the data again \(.*from_paths"):
        ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)


AUGMENTED = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)


def _count_forward_calls(module, monkeypatch):
    calls, real = [], module.forward

    def forward(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, "forward", forward)
    return calls


def _run(learn, call):
    {"fit": lambda: learn.fit(1e-2, 1), "TTA": lambda: learn.TTA(n_aug=1), "predict": learn.predict,
     "lr_find": lambda: learn.lr_find(num_it=3)}[call]()


@pytest.mark.parametrize("call", ["fit", "TTA", "predict", "lr_find"])
def test_photos_moved_out_after_the_data_was_built_are_named_before_any_mini_batch(tmp_path, home, monkeypatch, call):
    """As lesson 10's Cleaner does: before, a loader failed part way with 'could not read .../cats.0.jpg'."""
    pets = make_folders(tmp_path / "pets", n_train=6, n_valid=3)
    data = ImageClassifierData.from_paths(pets, tfms=AUGMENTED, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data)   # precompute off: every epoch reads the photos
    (pets / "_set_aside").mkdir()
    for moved in (pets / "train" / "cats" / "cats.0.jpg", pets / "valid" / "dogs" / "dogs.1.jpg"):
        moved.rename(pets / "_set_aside" / moved.name)
    calls = _count_forward_calls(learn.model, monkeypatch)
    with pytest.raises(FileNotFoundError, match=r"the images under .*pets changed after the data was read \(train/cats/"
                                                r"cats.0.jpg, valid/dogs/dogs.1.jpg removed or moved\): build the data "
                                                r"again \(ImageClassifierData.from_paths\(...\)"):
        _run(learn, call)
    assert not calls and learn.history.empty


def test_photos_the_cleaner_set_aside_and_relabelled_are_named_and_the_rebuilt_data_trains(tmp_path, home, monkeypatch):
    from lessonlib.photos import Cleaner
    pets = make_folders(tmp_path / "pets", n_train=6, n_valid=3)
    data = ImageClassifierData.from_paths(pets, tfms=AUGMENTED, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    log_preds, y = learn.predict_with_targs()
    cleaner = Cleaner(pets, data.val_ds.fnames, y, np.exp(log_preds), data.classes, n=2)
    first, second = cleaner.candidates.file[:2]
    cleaner.decide(first, "set aside")
    cleaner.decide(second, "cats" if second.parent.name == "dogs" else "dogs")
    cleaner.apply()
    relabelled = Path("valid") / ("cats" if second.parent.name == "dogs" else "dogs") / second.name
    with pytest.raises(FileNotFoundError, match=rf"removed or moved; {re.escape(str(relabelled))} added\): build the "
                                                r"data again"):
        learn.fit(1e-2, 1)
    learn.set_data(ImageClassifierData.from_paths(pets, tfms=AUGMENTED, bs=4, device="cpu"))   # built again
    learn.fit(1e-2, 1)
    assert len(learn.history) == 1


def test_a_photo_added_after_the_data_was_built_is_named(tmp_path, home):
    pets = make_folders(tmp_path / "pets", n_train=6, n_valid=3)
    data = ImageClassifierData.from_paths(pets, tfms=AUGMENTED, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    write_image(pets / "train" / "dogs" / "new.jpg", (40, 60, 220))
    with pytest.raises(FileNotFoundError, match=r"\(train/dogs/new.jpg added\): build the data again"):
        learn.fit(1e-2, 1)


def test_what_is_not_a_change_of_the_data_is_not_named(tmp_path, home):
    """Files that are not images, hidden files, a folder beside the classes, and a move undone, change nothing."""
    pets = make_folders(tmp_path / "pets", n_train=6, n_valid=3)
    data = ImageClassifierData.from_paths(pets, tfms=AUGMENTED, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    (pets / "train" / "cats" / "notes.txt").write_text("taken on the 3rd")
    (pets / "train" / "cats" / ".DS_Store").write_bytes(b"\0")
    (pets / "_set_aside").mkdir()
    photo = pets / "valid" / "cats" / "cats.2.jpg"
    photo.rename(pets / "_set_aside" / photo.name)
    (pets / "_set_aside" / photo.name).rename(photo)   # set aside, then undone
    learn.fit(1e-2, 1)
    assert len(learn.history) == 1
