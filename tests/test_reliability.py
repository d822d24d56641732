"""Never a silent wrong result, never a random crash on a shared machine (the faults of issue 16)."""
import errno
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lessonlib import datasets, precompute
from lessonlib.engine import checkpoints, storage
from lessonlib.__main__ import main as cli
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.engine.doctor import doctor
from lessonlib.engine.runtime import HomeError
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders, write_image

TFMS = tfms_from_model("efficientnet_lite0", 32)
ROOT = Path(__file__).resolve().parent.parent


def csv_set(root, rows, n=None):
    """root/imgs/<name>.jpg (a colour per image) and root/labels.csv with `rows` ("name,tags")."""
    rng = np.random.default_rng(0)
    for row in rows:
        name = row.split(",")[0]
        if not (root / "imgs" / f"{name}.jpg").exists():
            write_image(root / "imgs" / f"{name}.jpg", tuple(int(v) for v in rng.integers(0, 255, 3)))
    (root / "labels.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    return root


def keep_times(path, action):
    """Do `action()` (which rewrites `path`) and put `path`'s modification time back."""
    st = os.stat(path)
    action()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---------------------------------------------------------------- 1. caches that could go stale

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


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A teacher's mirror holding a generated dogscats-mini (20 and 10 images per class), read in smoke mode."""
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LESSONLIB_SMOKE", "1")
    make_folders(tmp_path / "mirror" / "dogscats-mini", n_train=20, n_valid=10)
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(tmp_path / "mirror"))
    return tmp_path / "mirror"


def test_a_changed_mirror_gives_a_new_smoke_sample(mirror):
    first = datasets.get("dogscats-mini")
    write_image(mirror / "dogscats-mini" / "train" / "cats" / "cats.0.jpg", (1, 2, 3))   # the teacher replaced a photo
    second = datasets.get("dogscats-mini")
    assert second != first
    assert (second / "train" / "cats" / "cats.0.jpg").read_bytes() == \
        (mirror / "dogscats-mini" / "train" / "cats" / "cats.0.jpg").read_bytes()


def test_a_smoke_sample_of_another_size_is_made_anew(mirror, monkeypatch):
    import dataclasses
    first = datasets.get("dogscats-mini")
    assert len(list((first / "train" / "cats").iterdir())) == datasets.CATALOG["dogscats-mini"].smoke_per_class[0]
    entry = dataclasses.replace(datasets.CATALOG["dogscats-mini"], smoke_per_class=(3, 2))   # a later lessonlib's size
    monkeypatch.setitem(datasets.CATALOG, "dogscats-mini", entry)
    second = datasets.get("dogscats-mini")
    assert second != first
    assert len(list((second / "train" / "cats").iterdir())) == 3 and len(list((second / "valid" / "dogs").iterdir())) == 2


# ---------------------------------------------------------------- 2. divergence and bad rates

@pytest.mark.parametrize("precompute_on", [True, False])
def test_after_divergence_a_smaller_rate_just_works(data, precompute_on):
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=precompute_on)
    with pytest.raises(FloatingPointError, match="ten times smaller"):
        learn.fit(3e38, 2)   # finite, but far beyond anything a loss survives
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    learn.fit(1e-2, 1)
    assert np.isfinite(learn.predict()).all() and np.isfinite(learn.history.val_loss.iloc[-1])


def test_one_mini_batch_per_epoch_is_watched_too(tmp_path, home):
    make_folders(tmp_path / "few", n_train=3, n_valid=2)
    data = ImageClassifierData.from_paths(tmp_path / "few", tfms=TFMS, bs=8, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(FloatingPointError):
        learn.fit(3e38, 1)
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -1e-3, None, "fast", [1e-4, float("nan"), 1e-2]])
def test_bad_rates_are_refused_before_training(data, rate):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError, match="learning rate"):
        learn.fit(rate, 1)
    assert learn.history.empty and all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())


def test_a_nan_rate_on_the_command_line_fails_and_saves_nothing(tmp_path, home, capsys):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--lr", "nan", "--save", "m", "--device", "cpu"])
    assert code != 0 and "learning rate" in capsys.readouterr().err
    assert not (home / "models" / "m.pt").exists()


def test_a_model_with_nan_weights_is_not_saved(data, home):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    with torch.no_grad():
        learn.head[-1].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="not saving"):
        learn.save("broken")
    assert not (home / "models" / "broken.pt").exists()


# ---------------------------------------------------------------- 3. one LESSONLIB_HOME, several processes

def _build_and_precompute(path, home, queue):
    os.environ["LESSONLIB_HOME"] = str(home)
    try:
        data = ImageClassifierData.from_paths(path, tfms=TFMS, bs=4, device="cpu")
        learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
        smoke = datasets.smoke_sample(path, (2, 1), datasets.data_root() / "shared-sample")
        queue.put((learn.activations("train")[0].sum().item(), sorted(p.name for p in smoke.rglob("*.jpg"))))
    except Exception as e:   # reported to the test
        queue.put(f"{type(e).__name__}: {e}")


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_on_one_home_never_crash_and_agree(tmp_path, home, round_):
    path = make_folders(tmp_path / "pets", n_train=8, n_valid=4)
    ctx = multiprocessing.get_context("spawn")   # forking a process that already ran torch can hang its threads
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_and_precompute, args=(path, home, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(r, tuple) for r in results), results
    assert len({r[0] for r in results}) == 1 and len({tuple(r[1]) for r in results}) == 1
    leftovers = [p for p in home.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


# ---------------------------------------------------------------- 4. cache and checkpoint files fail well

def test_a_full_disk_names_the_folder_and_leaves_no_partial_file(data, home, monkeypatch):
    def full(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(precompute.torch, "save", full)
    with pytest.warns(UserWarning, match=r"could not be cached.*the disk holding .*precompute is full.*LESSONLIB_HOME"):
        ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)   # computed, kept in memory
    assert not [p for p in (home / "precompute").iterdir()]


def test_temporary_files_of_killed_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    here = storage.pid_space()
    (tmp_path / f".model.pt.{here}-{dead}.abcd1234.tmp").write_bytes(b"half")
    (tmp_path / f".model.pt.{here}-{os.getpid()}.live0000.tmp").write_bytes(b"mine, in progress")
    storage.atomic_write(tmp_path / "other.txt", lambda f: f.write(b"ok"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".model.pt.{here}-{os.getpid()}.live0000.tmp", "other.txt"]


def test_another_containers_save_in_progress_on_a_shared_home_is_left_alone(tmp_path):
    """A second container (its own PID namespace) on the same LESSONLIB_HOME: its process ids mean nothing here."""
    dead_here = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                               text=True).stdout.strip()
    theirs = tmp_path / f".model.pt.0f0f0f0f-{dead_here}.abcd1234.tmp"   # another space, an id not running here
    theirs.write_bytes(b"their save, in progress")
    old_format = tmp_path / f".cache.pt.{dead_here}.abcd1234.tmp"       # an older lessonlib's name: no space
    old_format.write_bytes(b"in progress elsewhere")
    abandoned = tmp_path / ".model.pt.0e0e0e0e-12.ffff0000.tmp"
    abandoned.write_bytes(b"left two days ago")
    two_days = time.time() - 2 * 24 * 3600
    os.utime(abandoned, (two_days, two_days))
    storage.atomic_write(tmp_path / "mine.txt", lambda f: f.write(b"ok"))
    assert theirs.exists() and old_format.exists() and not abandoned.exists()


def test_the_pid_space_differs_in_another_pid_namespace():
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to make a PID namespace")
    code = "from lessonlib import storage; print(storage.pid_space())"
    out = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        pytest.skip(f"this machine does not allow a new PID namespace here: {out.stderr.strip()[-200:]}")
    assert out.stdout.strip() != storage.pid_space()


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


def test_a_truncated_scan_cache_is_recomputed(tmp_path, home, capsys):
    make_folders(tmp_path / "pets")
    ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    for f in (home / "scans").glob("*.json"):
        f.write_text('{"unfinished')
    ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=4, device="cpu")
    assert "image scan cache" in capsys.readouterr().out


def test_a_truncated_saved_model_is_a_clear_error(data, home):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    path = learn.save("m")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=f"{path} cannot be read as a saved model.*damaged or incomplete"):
        learn.load("m")


# ---------------------------------------------------------------- 5. file names are bytes

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


# ---------------------------------------------------------------- 6. images cannot exhaust memory

def test_an_extremely_elongated_image_is_skipped_with_the_unreadable_ones(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    Image.new("RGB", (1, 5000), (9, 9, 9)).save(tmp_path / "pets" / "train" / "dogs" / "strip.png")
    with pytest.warns(UserWarning, match=r"cannot be used:\n.*strip\.png: .*1x5000 px is more elongated than 20:1.*MB"):
        data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms_from_model("efficientnet_lite0", 224),
                                              bs=4, device="cpu")
    assert all("strip" not in f.name for f in data.trn_ds.fnames)


# ---------------------------------------------------------------- 7. from_csv refuses what from_paths refuses

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
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, bs=4, device="cpu", **kwargs)


def test_a_header_only_csv_is_a_clear_error(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "labels.csv").write_text("image_name,tags\n")
    with pytest.raises(ValueError, match="header but no rows"):
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, device="cpu")
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        ImageClassifierData.from_csv(tmp_path, "imgs", "labels.csv", tfms=TFMS, device="cpu")


# ---------------------------------------------------------------- 8. an unusable home is named

@pytest.mark.parametrize("kind", ["a file", "/proc", "read-only"])
def test_an_unusable_home_says_which_setting_and_how_to_fix_it(tmp_path, monkeypatch, capsys, kind):
    if kind == "a file":
        bad = tmp_path / "home"
        bad.write_text("not a folder")
    elif kind == "/proc":
        bad = Path("/proc")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; /proc covers a home that cannot be written")
        bad = tmp_path / "ro"
        bad.mkdir()
        bad.chmod(0o555)
    monkeypatch.setenv("LESSONLIB_HOME", str(bad))
    make_folders(tmp_path / "pets")
    with pytest.raises(HomeError, match=f"LESSONLIB_HOME={bad}.*set LESSONLIB_HOME to a folder you can write to"):
        ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, device="cpu")
    assert doctor("cpu")["lessonlib home"].startswith("PROBLEM")
    assert cli(["doctor", "--device", "cpu"]) == 1
    assert cli(["train", str(tmp_path / "pets"), "--device", "cpu"]) == 1
    assert "LESSONLIB_HOME" in capsys.readouterr().err


def test_a_home_that_stops_being_writable_is_named_the_next_time_it_is_used(tmp_path, monkeypatch):
    """No remembered "it was writable once": a disk that fills or turns read-only mid-session is named at once."""
    import tempfile
    from lessonlib.engine.runtime import home
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    assert home() == tmp_path / "home"

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(HomeError, match="is not writable .Read-only file system.*set LESSONLIB_HOME"):
        home()


# ---------------------------------------------------------------- 9. arguments fail early and plainly

@pytest.mark.parametrize("cycle_len", [0, -1, 1.5, True, "2"])
def test_bad_cycle_lengths_are_refused_before_training(data, cycle_len):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    with pytest.raises(ValueError, match="cycle_len"):
        learn.fit(1e-2, 1, cycle_len=cycle_len)
    assert learn.history.empty


def test_a_mini_batch_of_one_is_refused(tmp_path):
    make_folders(tmp_path / "pets")
    with pytest.raises(ValueError, match="bs=1: the head's BatchNorm"):
        ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, bs=1, device="cpu")


def test_the_command_line_checks_before_it_trains(tmp_path, home, capsys, monkeypatch):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    monkeypatch.setattr(ConvLearner, "pretrained", lambda *a, **k: pytest.fail("no learner before the checks"))
    assert cli(["train", str(tmp_path / "pets"), "--save", "../outside", "--device", "cpu"]) == 1
    assert "plain name" in capsys.readouterr().err
    assert not (home / "models").exists()
    assert cli(["train", "/nonexistent/path", "--device", "cpu"]) == 1
    assert "neither a folder nor a data set of the catalog" in capsys.readouterr().err


# ---------------------------------------------------------------- loading a model is all or nothing

def _weights(learn):
    return {k: v.clone() for k, v in learn.model.state_dict().items()}


def _unchanged(learn, before):
    return all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())


def _learner(data, **kwargs):
    return ConvLearner.pretrained("efficientnet_lite0", data, **kwargs)


@pytest.mark.parametrize("saved_with, loaded_with", [({"xtra_fc": 256}, {}), ({}, {"xtra_fc": 128})])
def test_a_model_saved_with_another_head_leaves_the_learner_as_it_was(data, saved_with, loaded_with):
    _learner(data, **saved_with).save("other-head")
    learn = _learner(data, precompute=True, **loaded_with)
    cached, _ = learn.activations("train")
    before = _weights(learn)
    with pytest.raises(ValueError, match=r"differently built efficientnet_lite0 .*in the file.*here.*unchanged"):
        learn.load("other-head")
    assert _unchanged(learn, before)                      # not one tensor copied, the body included
    assert torch.equal(learn.activations("train")[0], cached)


def test_non_finite_weights_in_a_file_are_refused(data):
    learn = _learner(data)
    state = {"model": learn.model.state_dict(), "arch": "efficientnet_lite0", "classes": list(data.classes)}
    state["model"] = {k: v.clone() for k, v in state["model"].items()}
    next(v for k, v in state["model"].items() if v.is_floating_point()).view(-1)[0] = float("nan")
    checkpoints.model_path("nan").parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, checkpoints.model_path("nan"))
    before = _weights(learn)
    with pytest.raises(ValueError, match="infinite or NaN"):
        learn.load("nan")
    assert _unchanged(learn, before)


@pytest.mark.parametrize("content, says", [
    (lambda learn: learn.model.state_dict(), "plain state_dict"),
    (lambda learn: [1, 2, 3], "holds a list"),
    (lambda learn: {"weights": 1}, "holds a dict with keys"),
])
def test_a_file_that_is_not_a_saved_model_says_what_it_holds(data, content, says):
    learn = _learner(data)
    checkpoints.model_path("odd").parent.mkdir(parents=True, exist_ok=True)
    torch.save(content(learn), checkpoints.model_path("odd"))
    before = _weights(learn)
    with pytest.raises(ValueError, match=f"{says}.*not a model saved by learn.save"):
        learn.load("odd")
    assert _unchanged(learn, before)


def test_a_model_saved_and_loaded_round_trips(data):
    learn = _learner(data)
    learn.save("round")
    other = _learner(data)
    other.load("round")
    assert _unchanged(other, _weights(learn))


# ---------------------------------------------------------------- small entry points fail plainly

def test_a_stray_space_around_lessonlib_home_is_not_a_folder_named_space(tmp_path, monkeypatch):
    from lessonlib.engine.runtime import home
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LESSONLIB_HOME", " ~/lessons ")
    assert home() == tmp_path / "user" / "lessons"
    assert not (tmp_path / " ").exists() and not any(p.name.strip() == "" for p in tmp_path.iterdir())


@pytest.mark.parametrize("value", ["lots", "-5", "nan", "inf"])
def test_a_junk_image_cache_size_names_its_setting(monkeypatch, value):
    from lessonlib.engine.settings import settings
    monkeypatch.setenv("LESSONLIB_IMAGE_CACHE_MB", value)
    with pytest.raises(ValueError, match=f"LESSONLIB_IMAGE_CACHE_MB='{value}'.*megabytes"):
        settings()
    monkeypatch.setenv("LESSONLIB_IMAGE_CACHE_MB", " 256 ")
    assert settings().image_cache_mb == 256


def test_a_junk_weights_setting_names_its_setting(data, monkeypatch):
    monkeypatch.setenv("LESSONLIB_WEIGHTS", "imagenett")
    with pytest.raises(ValueError, match="LESSONLIB_WEIGHTS='imagenett'"):
        ConvLearner.pretrained("efficientnet_lite0", data)


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


def test_a_command_line_run_leaves_nothing_in_the_temporary_folder(tmp_path, home, monkeypatch):
    import tempfile
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)   # let tempfile read TMPDIR again
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--epochs", "1", "--device", "cpu"])
    assert code == 0
    assert not list((tmp_path / "tmp").glob("lessonlib-group-*"))


# ---------------------------------------------------------------- the command line checks everything before it trains

@pytest.mark.parametrize("extra, says", [
    (["--test-name", "test", "--submission", "{tmp}/no-such-folder/sub.csv"], "--submission .*does not exist"),
    (["--history", "{tmp}/no-such-folder/h.csv"], "--history .*does not exist"),
    (["--history", "{tmp}"], "--history .*is a folder"),
    (["--unfreeze", "--lrs", "1e-3,1e-2"], "--lrs .*one positive rate, or three"),
    (["--unfreeze", "--lrs", "1e-4,nan,1e-2"], "--lrs .*one positive rate, or three"),
    (["--lrs", "1e-4,1e-3,1e-2"], "--lrs sets the rates .* after --unfreeze"),
    (["--save", "m" * 300], "at most 252"),
    (["--sz", "100000"], "--sz 100000: .*at most 2048"),
    (["--lr", "-1"], "--lr -1.0: .*positive"),
])
def test_a_mistake_in_the_flags_is_found_before_any_training(tmp_path, home, monkeypatch, capsys, extra, says):
    trained = []
    monkeypatch.setattr(ConvLearner, "fit", lambda self, *a, **k: trained.append(a))
    make_folders(tmp_path / "pets", n_train=4, n_valid=2, n_test=2)
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--device", "cpu", *args])
    err = capsys.readouterr().err
    assert code == 1 and trained == [] and re.search(says, err), err


def test_fetch_weights_to_a_file_says_it_is_a_file(tmp_path, capsys):
    target = tmp_path / "weights"
    target.write_text("not a folder")
    assert cli(["fetch-weights", "resnet34", "--to", str(target)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_run_that_fails_at_its_end_still_saves_the_model_it_trained(tmp_path, home, monkeypatch, capsys):
    from lessonlib import __main__ as command_line

    def broken_finish(*args):
        raise OSError("the disk of the submission went away")
    monkeypatch.setattr(command_line, "_finish", broken_finish)
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--save", "kept", "--device", "cpu"])
    assert code == 1 and "went away" in capsys.readouterr().err
    assert (home / "models" / "kept.pt").exists()


# ---------------------------------------------------------------- data that changes under a cache

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


def test_an_image_removed_after_from_paths_is_named_with_what_to_do(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    tfms = tfms_from_model("efficientnet_lite0", 32)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device="cpu")
    gone = sorted((tmp_path / "pets" / "train" / "dogs").iterdir())[0]
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=rf"changed after the data was read \(train/dogs/{gone.name} removed or "
                                                rf"moved\): build the data again \(.*from_paths"):
        ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)


def test_an_unreadable_folder_in_the_mirror_is_named_as_the_one_that_cannot_be_read(tmp_path, monkeypatch, home):
    import errno as errors
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path / "data"))
    mirror = tmp_path / "mirror"
    make_folders(mirror / "dogscats-mini", n_train=20, n_valid=10, n_test=10)
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("LESSONLIB_SMOKE", "1")
    real_copy = shutil.copyfile

    def unreadable_source(src, dst, *args, **kwargs):   # what a folder without read permission does (root reads all)
        if str(src).startswith(str(mirror)):
            raise PermissionError(errors.EACCES, "Permission denied", str(src))
        return real_copy(src, dst, *args, **kwargs)
    monkeypatch.setattr(shutil, "copyfile", unreadable_source)
    with pytest.raises(storage.StorageError, match=rf"cannot read {mirror}.*make it readable") as info:
        datasets.get("dogscats-mini")
    assert "cannot write" not in str(info.value) and "LESSONLIB_HOME" not in str(info.value)


def test_bursts_of_ctrl_c_during_a_cache_write_leave_the_old_file_or_the_new_one_and_no_temporary(tmp_path,
                                                                                                monkeypatch):
    """Saves of activations, scans and models go through atomic_write: whatever presses arrive, and however many,
    the file is whole (before or after) and no temporary file stays behind."""
    import pathlib
    import signal
    import threading
    import time

    from lessonlib.engine.storage import atomic_write
    real_unlink = pathlib.Path.unlink

    def slow_unlink(self, *args, **kwargs):   # deleting as slowly as on a network disk: presses land meanwhile
        time.sleep(0.002)
        return real_unlink(self, *args, **kwargs)
    monkeypatch.setattr(pathlib.Path, "unlink", slow_unlink)
    armed = [False]

    def ctrl_c(*_):   # every press raises while a write is under way: a burst, not one press
        if armed[0]:
            raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, ctrl_c)
    main, rng = threading.main_thread().ident, np.random.default_rng(0)
    dest = tmp_path / "cache" / "activations.pt"
    versions = [bytes([i]) * 400_000 for i in range(41)]
    atomic_write(dest, lambda f: f.write(versions[0]))
    interrupted = 0
    try:
        for trial in range(1, 41):
            delay = float(rng.uniform(0, 0.02))

            def slow(f, data=versions[trial]):   # a write as long as a real cache's, in pieces
                for i in range(0, len(data), 20_000):
                    f.write(data[i:i + 20_000])
                    time.sleep(0.0005)

            def burst():
                time.sleep(delay)
                for _ in range(5):
                    signal.pthread_kill(main, signal.SIGINT)
                    time.sleep(0.0003)
            presser = threading.Thread(target=burst)
            try:
                try:
                    armed[0] = True
                    presser.start()
                    atomic_write(dest, slow)
                except KeyboardInterrupt:
                    interrupted += 1
                finally:
                    armed[0] = False
            except KeyboardInterrupt:   # a press that landed while the first was being handled
                interrupted += 1
            presser.join()
            assert dest.read_bytes() in versions[:trial + 1], f"trial {trial}: a partial file"
            left = [p.name for p in dest.parent.iterdir() if p.name != dest.name]
            assert not left, f"trial {trial}: left behind {left}"
    finally:
        armed[0] = False
        signal.signal(signal.SIGINT, previous)
    assert interrupted >= 10   # the presses did land in writes


@pytest.mark.parametrize("values, match", [(np.zeros((2, 2, 2)), "values\\[0\\]"), ([["a", "b"]], "draws numbers"),
                                           (np.zeros((0, 3)), "at least one cell")])
def test_show_grid_says_what_it_draws(values, match):
    from lessonlib.convviz import show_grid
    with pytest.raises(ValueError, match=match):
        show_grid(values)


def test_show_grid_takes_one_row_and_refuses_a_box_outside():
    import matplotlib.pyplot as plt

    from lessonlib.convviz import show_grid
    show_grid([1, 2, 3])   # a row of a kernel: one row
    with pytest.raises(ValueError, match="inside the 3x3 grid"):
        show_grid(np.zeros((3, 3)), highlight=(2, 2, 3, 3))
    plt.close("all")


def test_schedule_helpers_name_what_they_need():
    from lessonlib.schedules import plot_schedules, schedule_rates
    with pytest.raises(TypeError, match="returns a torch scheduler"):
        schedule_rates(lambda opt: None, 10)
    with pytest.raises(ValueError, match="n_iter"):
        schedule_rates(lambda opt: None, 0)
    with pytest.raises(ValueError, match="no schedules"):
        plot_schedules({})


# ---------------------------------------------------------------- full disks and exhausted memory (issue 39)

def _disk_fills_after(monkeypatch, n_bytes):
    """Files that lessonlib writes (`storage.atomic_write`) take `n_bytes`, then every write fails as on a full disk
    (OSError ENOSPC); `torch.save` itself turns that into its RuntimeError ("... unexpected pos ...")."""
    real_open = open

    class Filling:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            if self.written + len(b) > n_bytes:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(storage, "open", lambda *args, **kwargs: Filling(real_open(*args, **kwargs)), raising=False)


def test_a_full_disk_during_save_is_named_with_what_to_do_and_the_saved_model_is_kept(data, home, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    saved = learn.save("m")
    before = saved.read_bytes()
    with torch.no_grad():
        learn.head[-1].bias.add_(1)
    _disk_fills_after(monkeypatch, 100_000)
    with pytest.raises(storage.StorageError) as caught:
        learn.save("m")
    message = str(caught.value)
    assert re.search(r"the disk holding .*models is full \([\d,.]+ MB free, about [\d,.]+ MB needed\): m.pt was not "
                     r"written and the copy saved before is unchanged; free some space, or point LESSONLIB_HOME", message)
    assert "unexpected pos" in str(caught.value.__cause__)   # torch's own error, as the cause
    assert saved.read_bytes() == before and sorted(p.name for p in saved.parent.iterdir()) == ["m.pt"]


def test_torch_s_zip_writer_error_without_an_oserror_is_a_full_disk_where_the_disk_has_no_room(data, home,
                                                                                               monkeypatch):
    """torch.save given a path (its C++ writer) reports a full disk with no OSError behind it."""
    import collections
    learn = ConvLearner.pretrained("efficientnet_lite0", data)

    def fails(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(torch, "save", fails)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda folder: usage(10 * 2**30, 10 * 2**30 - 4096, 4096))
    with pytest.raises(storage.StorageError, match=r"the disk holding .*models is full \(0.0 MB free, about \d+ MB needed"):
        learn.save("m")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda folder: usage(10 * 2**30, 0, 10 * 2**30))
    with pytest.raises(RuntimeError, match="unexpected pos") as caught:   # with room, it is not a full disk
        learn.save("m")
    assert not isinstance(caught.value, OSError)
    assert not (home / "models" / "m.pt").exists() and not list((home / "models").iterdir())


def test_precompute_on_a_full_disk_keeps_what_it_computed_and_trains(data, home, monkeypatch):
    _disk_fills_after(monkeypatch, 1000)
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


def _mount_tmpfs(folder, megabytes):
    """A real, small file system at `folder` (tmpfs), or skip: mounting needs root (or CAP_SYS_ADMIN)."""
    if not shutil.which("mount") or not shutil.which("umount"):
        pytest.skip("no mount command here: the real full-disk test needs one")
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")


def test_a_real_full_disk_keeps_the_saved_model_and_the_computed_activations(data, tmp_path, monkeypatch):
    disk = tmp_path / "small-disk"
    _mount_tmpfs(disk, 40)   # room for one saved model (about 21 MB), not for a second copy beside it
    try:
        monkeypatch.setenv("LESSONLIB_HOME", str(disk))
        learn = ConvLearner.pretrained("efficientnet_lite0", data)
        saved = learn.save("m")
        before = saved.read_bytes()
        filler = disk / "filler"
        with open(filler, "wb") as f:   # the disk fills up: 64 KB left
            f.write(b"\0" * (shutil.disk_usage(disk).free - 64 * 1024))
        with pytest.raises(storage.StorageError, match=r"the disk holding .*models is full .*m.pt was not written and "
                                                       r"the copy saved before is unchanged"):
            learn.save("m")
        assert saved.read_bytes() == before and sorted(p.name for p in saved.parent.iterdir()) == ["m.pt"]
        with pytest.warns(UserWarning, match="could not be cached on disk .*is full"):
            learn.precompute = True    # 12 rows of 2560 numbers for train alone: more than the 64 KB left
        assert not [p for p in (disk / "precompute").iterdir() if p.name.endswith(".tmp")]
        learn.fit(1e-2, 1)
        assert len(learn.history) == 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


ALLOCATOR_FAILURES = [
    RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 205520896 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.19 GiB"),
]


def _runs_out_on_call(module, n, monkeypatch, seen):
    """`module`'s forward runs as usual until its `n`-th call, which runs (updating BatchNorm statistics), then fails
    as the allocator does; `seen["state"]` is the model's state as that call began."""
    real, calls = module.forward, []

    def forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            seen["state"] = {k: v.clone() for k, v in seen["model"].state_dict().items()}
            real(*args, **kwargs)
            raise seen["error"]
        return real(*args, **kwargs)
    monkeypatch.setattr(module, "forward", forward)


@pytest.mark.parametrize("error", ALLOCATOR_FAILURES, ids=["cpu", "cuda"])
def test_memory_running_out_in_fit_says_to_use_a_smaller_bs_and_keeps_no_half_step(data, home, monkeypatch, error):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.unfreeze()   # the body's BatchNorm statistics change in the forward pass that fails
    seen = {"model": learn.model, "error": error}
    _runs_out_on_call(learn.body, 2, monkeypatch, seen)   # the second mini-batch: the first one's step was kept
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8, or a smaller sz .*and run it again; "
                                          r"the weights are those from before the mini-batch that failed") as caught:
        learn.fit(1e-2, 1)
    assert isinstance(caught.value, RuntimeError) and caught.value.__cause__ is error
    after = learn.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in seen["state"].items()), \
        [k for k, v in seen["state"].items() if not torch.equal(after[k], v)][:3]
    assert learn.history.empty


@pytest.mark.parametrize("error", ALLOCATOR_FAILURES, ids=["cpu", "cuda"])
def test_memory_running_out_in_predict_and_precompute_says_what_to_do(data, home, monkeypatch, error):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    seen = {"model": learn.model, "error": error}
    _runs_out_on_call(learn.body, 1, monkeypatch, seen)
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8") as caught:
        learn.predict()
    assert caught.value.__cause__ is error
    _runs_out_on_call(learn.body, 1, monkeypatch, seen)
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8, or a smaller sz than 32"):
        learn.precompute = True


@pytest.mark.parametrize("error", ALLOCATOR_FAILURES, ids=["cpu", "cuda"])
def test_memory_running_out_in_the_lr_finder_says_what_to_do_and_puts_the_model_back(data, home, monkeypatch, error):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    _runs_out_on_call(learn.body, 2, monkeypatch, {"model": learn.model, "error": error})
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8") as caught:
        learn.lr_find()
    assert caught.value.__cause__ is error
    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_other_runtime_errors_are_not_taken_for_memory(data, home, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    seen = {"model": learn.model, "error": RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x3 and 4x5)")}
    _runs_out_on_call(learn.body, 1, monkeypatch, seen)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as caught:
        learn.fit(1e-2, 1)
    assert not isinstance(caught.value, MemoryError)


# ---------------------------------------------------------------- data that changed under a learner (issue 39)

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
