import hashlib
import tarfile
import zipfile

import pytest

from lessonlib import datasets
from tests.helpers import make_folders, write_image


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("LESSONLIB_DATA_MIRROR", raising=False)
    monkeypatch.setenv("LESSONLIB_SMOKE", "0")
    return tmp_path


def test_download_checks_size_and_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 5000)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    out = datasets.download(src.as_uri(), tmp_path / "out.bin", size=5000, md5=md5)
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(OSError, match="expected 4,999"):
        datasets.download(src.as_uri(), tmp_path / "short.bin", size=4999)
    with pytest.raises(OSError, match="MD5"):
        datasets.download(src.as_uri(), tmp_path / "bad.bin", md5="0" * 32)
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    assert not (tmp_path / "short.bin").exists() and not (tmp_path / "bad.bin").exists()


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
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["dogscats"]   # nothing half-done left behind


def test_get_prefers_local_then_mirror(data_home, monkeypatch, capsys):
    mirror = data_home / "mirror"
    make_folders(mirror / "dogscats-mini")
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(mirror))
    assert datasets.get("dogscats-mini") == mirror / "dogscats-mini"
    make_folders(data_home / "data" / "dogscats-mini")
    assert datasets.get("dogscats-mini") == data_home / "data" / "dogscats-mini"
    assert "SYNTHETIC" not in capsys.readouterr().out


def test_without_anything_a_mini_is_a_loud_synthetic_stand_in(data_home, capsys):
    path = datasets.get("dogscats-mini")
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "not real photos" in out
    assert path.name == "dogscats-mini-synthetic"
    assert len(list((path / "train" / "cats").iterdir())) == 100
    planet = datasets.get("planet-mini")
    assert (planet / "train_v2.csv").read_text().startswith("image_name,tags")


def test_full_dogscats_offline_is_a_clear_error(data_home, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr(datasets, "download", offline)
    with pytest.raises(FileNotFoundError, match="data/README.md"):
        datasets.get("dogscats")


def test_unknown_name():
    with pytest.raises(ValueError, match="dogscats-mini"):
        datasets.get("dogs-and-cats")


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
