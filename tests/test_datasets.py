"""The data catalog: the teaching sets that travel with lessonlib, the mirror, and hardened downloads."""
import hashlib
import io
import multiprocessing
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import warnings
import zipfile
from pathlib import Path

import pytest

from lessonlib import datasets
from lessonlib.engine import storage
from tests.helpers import FileServer, make_folders, write_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("LESSONLIB_DATA_MIRROR", raising=False)
    monkeypatch.setenv("LESSONLIB_SMOKE", "0")
    monkeypatch.setattr(storage, "RETRY_WAIT", 0.01)
    return tmp_path


@pytest.fixture
def server():
    servers = []

    def start(files, **kwargs):
        servers.append(FileServer(files, **kwargs))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


def tgz(files):
    """A .tar.gz in memory holding {name: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------- the teaching sets that travel with lessonlib

def test_the_packaged_teaching_sets_are_intact():
    assert datasets.verify_packaged() == {}
    sums = (datasets.PACKAGED / "SHA256SUMS").read_text().splitlines()
    counts = {name: sum(line.split()[1].startswith(name + "/") for line in sums)
              for name in ("dogscats-mini", "planet-mini", "mnist-digits", "mnist-5k")}
    assert counts == {"dogscats-mini": 1100, "planet-mini": 503, "mnist-digits": 20, "mnist-5k": 1}


def test_a_changed_packaged_file_is_found(monkeypatch, tmp_path):
    copy = tmp_path / "teaching_sets"
    shutil.copytree(datasets.PACKAGED / "mnist-digits", copy / "mnist-digits")
    shutil.copy(datasets.PACKAGED / "SHA256SUMS", copy / "SHA256SUMS")
    monkeypatch.setattr(datasets, "PACKAGED", copy)
    assert datasets.verify_packaged(["mnist-digits"]) == {}
    victim = sorted((copy / "mnist-digits").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    (copy / "mnist-digits" / "extra.png").write_bytes(b"x")
    assert datasets.verify_packaged(["mnist-digits"]) == {f"mnist-digits/{victim.name}": "changed",
                                                          "mnist-digits/extra.png": "not in SHA256SUMS"}


PROVENANCE_TAR_SHA256 = {   # ../shared/datasets/PROVENANCE.md: tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner
    "dogscats-mini": "b3a66e667f2617c039a4feaedd6ce893f15eb4e35328b915c0b33f9cd63fa7e4",
    "planet-mini": "eed85025be5b59be12c54cea16196a05065a84745a3698fbe32aabbd114d62a0",
    "mnist-digits": "6885ef656da2c32e443c93774649e945985ce1478556f3064ebadcea13e558e2",
    "mnist-5k": "d131e4f3f1bd8531cdb6474531c40ee6030ae2dbb45a81dd554a9241d3d413ed",   # data/README.md
}


@pytest.mark.parametrize("name", sorted(PROVENANCE_TAR_SHA256))
def test_the_packaged_copies_match_the_provenance_checksums(name):
    tar = shutil.which("tar")
    if tar is None or "GNU tar" not in subprocess.run([tar, "--version"], capture_output=True, text=True).stdout:
        pytest.skip("the provenance checksums are of GNU tar's output")
    out = subprocess.run([tar, "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                          "--mode=u=rwX,go=rX", "-cf", "-", name], cwd=datasets.PACKAGED, capture_output=True, check=True)
    assert hashlib.sha256(out.stdout).hexdigest() == PROVENANCE_TAR_SHA256[name]


def test_get_finds_the_real_photos_with_no_setting_and_no_network(data_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the teaching sets must not be downloaded")
    monkeypatch.setattr(datasets, "download", no_network)
    path = datasets.get("dogscats-mini")
    assert path == datasets.PACKAGED / "dogscats-mini"
    assert len([p for p in path.rglob("*.jpg")]) == 1100
    assert len(list((path / "train" / "cats").iterdir())) == 400
    planet = datasets.get("planet-mini")
    assert (planet / "train_v2.csv").read_text().startswith("image_name,tags")
    assert len(list(datasets.get("mnist-digits").glob("*.png"))) == 20
    assert not (data_home / "data").exists() or not any((data_home / "data").iterdir())   # nothing written


def test_smoke_samples_of_the_teaching_sets_are_real_photos(data_home, monkeypatch):
    monkeypatch.setenv("LESSONLIB_SMOKE", "1")
    path = datasets.get("dogscats-mini")
    assert path.parent == data_home / "data"
    first = sorted((path / "train" / "cats").iterdir())[0]
    assert first.read_bytes() == (datasets.PACKAGED / "dogscats-mini" / "train" / "cats" / first.name).read_bytes()
    assert [len(list((path / s / c).iterdir())) for s in ("train", "valid") for c in ("cats", "dogs")] == [16, 16, 8, 8]


def test_get_prefers_local_then_mirror_then_the_packaged_copy(data_home, monkeypatch):
    mirror = data_home / "mirror"
    make_folders(mirror / "dogscats-mini")
    mirror.chmod(0o555)   # read-only, as on a classroom server
    try:
        monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(mirror))
        before = sorted(p.relative_to(mirror) for p in mirror.rglob("*"))
        assert datasets.get("dogscats-mini") == mirror / "dogscats-mini"
        monkeypatch.setenv("LESSONLIB_SMOKE", "1")
        sample = datasets.get("dogscats-mini")
        assert mirror not in sample.parents
        assert sorted(p.relative_to(mirror) for p in mirror.rglob("*")) == before   # the mirror is never written
        monkeypatch.setenv("LESSONLIB_SMOKE", "0")
        assert datasets.get("planet-mini") == datasets.PACKAGED / "planet-mini"   # not in the mirror
        make_folders(data_home / "data" / "dogscats-mini")
        assert datasets.get("dogscats-mini") == data_home / "data" / "dogscats-mini"
    finally:
        mirror.chmod(0o755)


def test_a_set_that_is_neither_here_nor_downloadable_is_one_clear_error(data_home, monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "PACKAGED", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"dogscats-mini is not available: .*Reinstall lessonlib.*data/README.md"):
        datasets.get("dogscats-mini")


def test_full_dogscats_offline_is_a_clear_error(data_home, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr(datasets, "download", offline)
    with pytest.raises(FileNotFoundError, match="network is unreachable.*data/README.md"):
        datasets.get("dogscats")


def test_unknown_name():
    with pytest.raises(ValueError, match="dogscats-mini"):
        datasets.get("dogs-and-cats")


def test_an_installed_lessonlib_finds_the_photos_from_another_folder(tmp_path):
    """Build the wheel that `pip install .` installs, unpack it as site-packages, use it from elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "lessonlib", src / "lessonlib", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("lessonlib-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert sum(n.startswith("lessonlib/teaching_sets/dogscats-mini/") for n in names) == 1100
        z.extractall(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import lessonlib, pathlib; from lessonlib import datasets; p = datasets.get('dogscats-mini'); "
            "print(lessonlib.__file__); print(p); print(len(list(p.rglob('*.jpg')))); print(datasets.verify_packaged())")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path),
           "LESSONLIB_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith(str(tmp_path / "site"))
    assert out[1] == str(tmp_path / "site" / "lessonlib" / "teaching_sets" / "dogscats-mini")
    assert out[2:] == ["1100", "{}"]


# ---------------------------------------------------------------- downloads

def test_download_checks_size_and_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 5000)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    out = storage.download(src.as_uri(), tmp_path / "out.bin", size=5000, md5=md5)
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(OSError, match="expected 4,999"):
        storage.download(src.as_uri(), tmp_path / "short.bin", size=4999)
    with pytest.raises(OSError, match="MD5"):
        storage.download(src.as_uri(), tmp_path / "bad.bin", md5="0" * 32)
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    assert not (tmp_path / "short.bin").exists() and not (tmp_path / "bad.bin").exists()


def test_a_dropped_connection_resumes_where_it_stopped(server, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "RETRY_WAIT", 0.01)
    body = bytes(range(256)) * 4000   # 1 MB
    srv = server({"/data.bin": body}, cut_first=2)
    out = storage.download(srv.url + "/data.bin", tmp_path / "data.bin", size=len(body),
                            md5=hashlib.md5(body).hexdigest())
    assert out.read_bytes() == body
    ranges = [r for _, r in srv.requests]
    assert ranges[0] is None and len(ranges) == 3
    assert ranges[1] == f"bytes={len(body) // 2}-"            # continued from the first half
    assert ranges[2] == f"bytes={len(body) // 2 + len(body) // 4}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.bin.lock", "data.bin"]


def test_a_server_without_ranges_starts_again(server, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "RETRY_WAIT", 0.01)
    body = b"abc" * 100_000
    srv = server({"/x": body}, cut_first=1, ranges=False)
    assert storage.download(srv.url + "/x", tmp_path / "x", size=len(body)).read_bytes() == body
    assert len(srv.requests) == 2


def test_a_part_file_left_by_a_killed_run_is_continued(server, tmp_path):
    body = b"0123456789" * 50_000
    (tmp_path / "x.part").write_bytes(body[:123_456])
    srv = server({"/x": body})
    assert storage.download(srv.url + "/x", tmp_path / "x", size=len(body)).read_bytes() == body
    assert srv.requests == [("/x", "bytes=123456-")]


def test_a_download_gives_up_after_its_retries_with_a_clear_message(server, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "RETRY_WAIT", 0.01)
    body = b"z" * 200_000
    srv = server({"/x": body}, cut_first=100)
    with pytest.raises(OSError, match=r"gave up after 3 attempts .*run it again to continue from byte"):
        storage.download(srv.url + "/x", tmp_path / "x", size=len(body), retries=2)
    assert not (tmp_path / "x").exists()
    with pytest.raises(OSError, match="HTTP 404"):
        storage.download(srv.url + "/missing", tmp_path / "y")


def test_safe_extract_refuses_escaping_paths(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("ok/fine.txt", "fine")
        z.writestr("../escaped.txt", "gotcha")
    with pytest.raises(ValueError, match="outside"):
        datasets.safe_extract(evil, tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists()

    tar = tmp_path / "evil.tar"
    with tarfile.open(tar, "w") as t:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(ValueError, match="outside"):
        datasets.safe_extract(tar, tmp_path / "target2")


@pytest.mark.parametrize("has_data_filter", [True, False])
def test_tar_archives_extract_with_and_without_pythons_data_filter(tmp_path, monkeypatch, has_data_filter):
    """Python before 3.11.4 (Debian 12 ships 3.11.2) has no tarfile "data" filter: extraction must still work
    there, and still refuse what the filter would."""
    if not has_data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = tmp_path / "good.tgz"
    with tarfile.open(good, "w:gz") as t:
        payload = b"a photo"
        info = tarfile.TarInfo("set/train/cats/cat.1.jpg")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    out = datasets.safe_extract(good, tmp_path / "out")
    assert (out / "set/train/cats/cat.1.jpg").read_bytes() == b"a photo"

    for name, kind in [("dev", tarfile.CHRTYPE), ("fifo", tarfile.FIFOTYPE)]:
        odd = tmp_path / f"{name}.tar"
        with tarfile.open(odd, "w") as t:
            info = tarfile.TarInfo(name)
            info.type = kind
            t.addfile(info)
        with pytest.raises(ValueError, match="not a file"):
            datasets.safe_extract(odd, tmp_path / f"out-{name}")


def test_download_and_extract_from_a_local_zip_url(tmp_path):
    archive = tmp_path / "dogscats.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for split in ("train", "valid"):
            for cls in ("cats", "dogs"):
                write_image(tmp_path / "img.jpg", (1, 2, 3))
                z.write(tmp_path / "img.jpg", f"dogscats/{split}/{cls}/1.jpg")
    dest = datasets.download_and_extract(archive.as_uri(), tmp_path / "data" / "dogscats",
                                         size=archive.stat().st_size, inner="dogscats")
    assert sorted(p.name for p in dest.iterdir()) == ["train", "valid"]
    assert (dest / "valid" / "dogs" / "1.jpg").exists()
    assert [p.name for p in (tmp_path / "data").iterdir() if not p.name.endswith(".lock")] == ["dogscats"]


def _planet_archive(padding=0):
    import numpy as np
    from PIL import Image

    files, rows = {}, ["image_name,tags"]
    if padding:   # incompressible bytes, so that a download takes a while
        files["planet_sample/README"] = np.random.default_rng(0).integers(0, 256, padding, dtype=np.uint8).tobytes()
    for i, tags in enumerate(["clear primary", "haze primary water", "cloudy", "clear primary road"]):
        buf = io.BytesIO()
        Image.fromarray(np.full((32, 32, 4), 40 * i, np.uint8), "CMYK").save(buf, "JPEG")
        files[f"planet_sample/train/train_{i}.jpg"] = buf.getvalue()
        rows.append(f"train_{i},{tags}")
    files["planet_sample/labels.csv"] = ("\n".join(rows) + "\n").encode()
    return tgz(files)


def test_planet_sample_is_downloaded_into_the_from_csv_layout(data_home, server, monkeypatch):
    from lessonlib.data import ImageClassifierData
    from lessonlib.transforms import tfms_from_model

    archive = _planet_archive()
    srv = server({"/planet_sample.tgz": archive}, cut_first=1)
    entry = datasets.CATALOG["planet-sample"]
    monkeypatch.setitem(datasets.CATALOG, "planet-sample", datasets.Entry(
        entry.name, entry.about, url=srv.url + "/planet_sample.tgz", size=len(archive),
        md5=hashlib.md5(archive).hexdigest(), inner="planet_sample", convert="_planet_layout", smoke_rows=2))
    path = datasets.get("planet-sample")
    assert path == data_home / "data" / "planet-sample"
    assert sorted(p.name for p in path.iterdir()) == ["train-jpg", "train_v2.csv"]
    assert (path / "train_v2.csv").read_text().splitlines()[2] == "train_1,haze primary water"
    data = ImageClassifierData.from_csv(path, "train-jpg", "train_v2.csv", tfms_from_model("efficientnet_lite0", 32),
                                        bs=2, val_idxs=[0], device="cpu")
    assert data.is_multi and data.classes == ["clear", "cloudy", "haze", "primary", "road", "water"]
    x, _ = next(iter(data.val_dl))
    assert x.shape == (1, 3, 32, 32)
    assert not list((data_home / "data").glob("*.tgz")) and not list((data_home / "data").glob(".*.tmp"))


def _fetch_in_process(url, size, md5, dest, queue):
    try:
        out = datasets.download_and_extract(url, dest, size, md5, inner="planet_sample")
        queue.put(sorted(p.relative_to(out).as_posix() for p in out.rglob("*")))
    except Exception as e:   # reported to the test, not lost in the child
        queue.put(f"{type(e).__name__}: {e}")


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_fetching_the_same_set_get_one_intact_copy(server, tmp_path, round_):
    archive = _planet_archive(padding=2_000_000)
    srv = server({"/p.tgz": archive}, chunk_delay=0.02, cut_first=1 if round_ == 1 else 0)
    dest = tmp_path / "data" / "planet"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fetch_in_process, args=(srv.url + "/p.tgz", len(archive), hashlib.md5(archive).hexdigest(),
                                                          dest, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    expected = sorted(["README", "labels.csv", "train", "train/train_0.jpg", "train/train_1.jpg", "train/train_2.jpg",
                       "train/train_3.jpg"])
    assert results == [expected, expected]   # both processes got the whole set
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == expected
    assert [p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")] == ["planet"]
    assert not [p for p in (tmp_path / "data").iterdir() if re.search(r"\.(part|tmp)$", p.name)]
    assert sum(path == "/p.tgz" and rng is None for path, rng in srv.requests) == 1   # downloaded once


# ---------------------------------------------------------------- derived samples, Oxford pets

def test_smoke_sample(data_home):
    src = make_folders(data_home / "src", n_train=20, n_valid=10, n_test=12)
    sample = datasets.smoke_sample(src, (4, 2), data_home / "sample")
    assert len(list((sample / "train" / "dogs").iterdir())) == 4
    assert len(list((sample / "valid" / "cats").iterdir())) == 2
    assert len(list((sample / "test").iterdir())) == 2


def test_oxford_pets_become_cats_and_dogs(data_home):
    raw = data_home / "raw"
    base = raw / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    names = {"trainval": [("Abyssinian_1", 1, 1), ("beagle_2", 2, 2), ("Bengal_3", 6, 1)],
             "test": [("Abyssinian_9", 1, 1), ("boxer_4", 4, 2)]}
    for split, rows in names.items():
        lines = [f"{n} {c} {s} 1" for n, c, s in rows]
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for n, _, _ in rows:
            write_image(base / "images" / f"{n}.jpg", (9, 9, 9))
    dest = datasets._fetch_oxford_pets(data_home / "data" / "oxford-pets", raw=raw)
    assert sorted(p.name for p in (dest / "train" / "cats").iterdir()) == ["Abyssinian_1.jpg", "Bengal_3.jpg"]
    assert [p.name for p in (dest / "train" / "dogs").iterdir()] == ["beagle_2.jpg"]
    assert [p.name for p in (dest / "valid" / "dogs").iterdir()] == ["boxer_4.jpg"]


def test_smoke_sample_of_a_csv_set(data_home):
    src = data_home / "planet"
    (src / "train-jpg").mkdir(parents=True)
    rows = []
    for i in range(10):
        write_image(src / "train-jpg" / f"train_{i}.jpg", (i, i, i))
        rows.append(f"train_{i},clear primary")
    (src / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    sample = datasets.smoke_sample_csv(src, 4, data_home / "sample")
    assert (sample / "train_v2.csv").read_text().splitlines()[1:] == rows[:4]
    assert sorted(p.name for p in (sample / "train-jpg").iterdir()) == [f"train_{i}.jpg" for i in range(4)]


# ---------------------------------------------------------------- downloads recover from any leftover

def test_a_truncated_archive_left_in_the_data_folder_is_checked_and_fetched_again(server, tmp_path, capsys):
    body = tgz({"set/a.txt": b"hello" * 1000})
    (tmp_path / "set.tgz").write_bytes(body[: len(body) // 2])       # left by an earlier, cut-short run
    srv = server({"/set.tgz": body})
    dest = datasets.download_and_extract(srv.url + "/set.tgz", tmp_path / "set", size=len(body), inner="set")
    assert (dest / "a.txt").read_bytes() == b"hello" * 1000
    assert "already there but has" in capsys.readouterr().out


def test_a_damaged_archive_of_unknown_size_is_deleted_so_the_next_call_fetches_it(server, tmp_path):
    body = tgz({"set/a.txt": b"hello" * 1000})
    (tmp_path / "set.tgz").write_bytes(body[: len(body) // 2])
    srv = server({"/set.tgz": body})
    with pytest.raises(OSError, match="is damaged .* run it again"):
        datasets.download_and_extract(srv.url + "/set.tgz", tmp_path / "set", inner="set")   # no size to check
    dest = datasets.download_and_extract(srv.url + "/set.tgz", tmp_path / "set", inner="set")
    assert (dest / "a.txt").exists()


def test_a_part_file_longer_than_the_servers_file_starts_again(server, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "RETRY_WAIT", 0.01)
    body = b"0123456789" * 1000
    srv = server({"/x": body})
    (tmp_path / "x.part").write_bytes(b"y" * 20_000)                 # longer than the file: HTTP 416 forever before
    assert storage.download(srv.url + "/x", tmp_path / "x").read_bytes() == body
    (tmp_path / "z.part").write_bytes(b"y" * 20_000)
    assert storage.download(srv.url + "/x", tmp_path / "z", size=len(body)).read_bytes() == body


def test_a_name_that_does_not_resolve_fails_at_once(tmp_path, monkeypatch):
    import socket
    import time as clock

    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))
    monkeypatch.setattr(datasets.urllib.request, "urlopen", no_dns)
    start = clock.perf_counter()
    with pytest.raises(OSError, match="cannot be resolved") as info:
        storage.download("https://example.invalid/x.tgz", tmp_path / "x.tgz")
    assert clock.perf_counter() - start < 1 and "byte 0" not in str(info.value)


def test_an_archive_that_would_unpack_to_far_more_than_its_size_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "UNPACKED_FLOOR", 0)   # the floor is 256 MiB: lower it rather than write that
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(tgz({"zeros.bin": bytes(8 * 2**20)}))          # 8 MB of zeros in a few KB
    with pytest.raises(ValueError, match=r"refusing to extract bomb.tgz: it would unpack to 8 MB, more than the 0 MB"):
        datasets.safe_extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out" / "zeros.bin").exists()
    fine = tmp_path / "fine.tgz"
    fine.write_bytes(tgz({"a.txt": bytes(range(256)) * 4}))
    assert (datasets.safe_extract(fine, tmp_path / "ok") / "a.txt").exists()


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_an_archive_of_more_entries_than_any_data_set_is_refused_before_writing(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(datasets, "MAX_MEMBERS", 50)   # the real cap is 200,000: lower it rather than write that many
    files = {f"f{i}.txt": b"" for i in range(51)}
    archive = tmp_path / f"many.{kind}"
    if kind == "tgz":
        archive.write_bytes(tgz(files))
    else:
        with zipfile.ZipFile(archive, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
    with pytest.raises(ValueError, match=rf"refusing to extract many.{kind}: it holds 51 entries, more than the 50"):
        datasets.safe_extract(archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("fault, said", [("twice", "two files named 'a/x.jpg'"),
                                         ("file and folder", "a file and a folder both named 'a'")])
def test_a_zip_that_would_lose_a_file_is_refused_for_downloads_too(tmp_path, fault, said):
    archive = tmp_path / "set.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "w") as z:
        warnings.simplefilter("ignore")   # zipfile's own "Duplicate name" warning
        z.writestr("a/x.jpg", b"one")
        z.writestr("a/x.jpg" if fault == "twice" else "a", b"two")
    with pytest.raises(ValueError, match=f"refusing to extract set.zip: it holds {said}"):
        datasets.safe_extract(archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_a_hard_link_deep_in_an_archive_cannot_point_outside(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        link = tarfile.TarInfo("a/b/c")
        link.type, link.linkname = tarfile.LNKTYPE, "../outside.txt"   # relative to the archive's top: outside
        t.addfile(link)
    evil = tmp_path / "evil.tgz"
    evil.write_bytes(buf.getvalue())
    monkeypatch.delattr(tarfile, "data_filter", raising=False)        # a Python without the 'data' filter
    with pytest.raises(ValueError):
        datasets.safe_extract(evil, tmp_path / "out")


def test_a_changed_packaged_set_is_refused_with_what_to_do(monkeypatch, tmp_path, data_home):
    copy = tmp_path / "teaching_sets"
    shutil.copytree(datasets.PACKAGED / "mnist-digits", copy / "mnist-digits")
    shutil.copy(datasets.PACKAGED / "SHA256SUMS", copy / "SHA256SUMS")
    monkeypatch.setattr(datasets, "PACKAGED", copy)
    assert datasets.get("mnist-digits") == copy / "mnist-digits"
    (copy / "mnist-digits" / "my_own_digit.png").write_bytes(b"a student's file")   # written into get()'s folder
    with pytest.raises(ValueError, match=r"own copy of mnist-digits .* has changed: mnist-digits/my_own_digit.png "
                                         r"\(not in SHA256SUMS\).*copy it elsewhere"):
        datasets.get("mnist-digits")


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
