"""lessonlib/engine/storage.py: files written whole or not at all (several processes, killed ones, Ctrl-C, a full disk)."""
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

from lessonlib import datasets
from lessonlib.data import ImageClassifierData
from lessonlib.engine import storage
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model
from tests.helpers import disk_fills_after, make_folders

TFMS = tfms_from_model("efficientnet_lite0", 32)


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
    code = "from lessonlib.engine import storage; print(storage.pid_space())"
    out = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0 and out.stderr.startswith("unshare:"):   # the machine's refusal, not an error of ours
        pytest.skip(f"this machine does not allow a new PID namespace here: {out.stderr.strip()[-200:]}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() != storage.pid_space()


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


def test_a_full_disk_during_save_is_named_with_what_to_do_and_the_saved_model_is_kept(data, home, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    saved = learn.save("m")
    before = saved.read_bytes()
    with torch.no_grad():
        learn.head[-1].bias.add_(1)
    disk_fills_after(monkeypatch, 100_000)
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
