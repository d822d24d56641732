"""The data catalog: `get(name)` returns a local folder holding that data set.

Where each one comes from, in order:
1. a copy already under the data folder (`LESSONLIB_DATA`, default LESSONLIB_HOME/data);
2. the mirror `LESSONLIB_DATA_MIRROR` (a folder with `dogscats-mini/`, `planet-mini/`, ...:
   a classroom server, or `../shared/datasets` for the tests);
3. the real download, where the data set has one (with a progress bar, a size check and
   an extraction that refuses paths escaping the target folder);
4. for the small teaching sets only, when nothing else is reachable: a generated stand-in,
   announced loudly as synthetic.

In smoke mode (`LESSONLIB_SMOKE=1`) the folder-layout sets are cut down to a few images
per class, written once under the data folder; the line printed says so.
"""
import csv
import hashlib
import os
import shutil
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from lessonlib.runtime import home, smoke_mode


@dataclass(frozen=True)
class Entry:
    """One data set of the catalog."""
    name: str
    about: str
    url: str = None
    size: int = None            # bytes of the download, checked after it
    md5: str = None             # checked when known
    inner: str = None           # folder inside the archive that holds the data
    fetch: str = None           # name of a function of this module that fetches it another way
    synthetic: str = None       # name of a function that writes a stand-in
    smoke_per_class: tuple = None   # (train, valid) images per class in smoke mode, for folder layouts
    smoke_rows: int = None          # rows of the label CSV kept in smoke mode, for CSV layouts
    packaged: bool = False          # a copy travels inside lessonlib (lessonlib/teaching_sets/<name>)


CATALOG = {e.name: e for e in [
    Entry("dogscats", "fast.ai's Dogs vs Cats: 23,000 train and 2,000 valid photos (818 MB zip)",
          url="http://files.fast.ai/data/dogscats.zip", size=857_214_334, md5="aef22ec7d472dd60e8ee79eecc19f131",
          inner="dogscats", smoke_per_class=(16, 8)),
    Entry("oxford-pets", "Oxford-IIIT Pet as cats vs dogs: 3,680 train and 3,669 valid photos (torchvision)",
          fetch="_fetch_oxford_pets", smoke_per_class=(16, 8)),
    Entry("dogscats-mini", "1,000 real Dogs vs Cats photos (800 train, 200 valid) + 100 unlabelled test",
          packaged=True, smoke_per_class=(16, 8)),
    Entry("planet-mini", "502 Planet Amazon satellite chips, 128 px, 17 tags (train_v2.csv)",
          packaged=True, smoke_rows=120),
    Entry("mnist-digits", "20 real MNIST digits, 2 per class, 28x28 greyscale PNGs", packaged=True),
]}
PACKAGED = Path(__file__).resolve().parent / "teaching_sets"


def data_root():
    """Writable folder where data sets are downloaded or derived (`LESSONLIB_DATA`)."""
    root = Path(os.environ.get("LESSONLIB_DATA") or home() / "data").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def mirror():
    """The read-only mirror folder named by `LESSONLIB_DATA_MIRROR`, or None."""
    value = os.environ.get("LESSONLIB_DATA_MIRROR")
    return Path(value).expanduser() if value else None


def get(name, smoke=None):
    """A local folder holding data set `name` (see `CATALOG`), fetching it the first time.

    Args:
        name: "dogscats", "oxford-pets", "dogscats-mini" or "planet-mini".
        smoke: cut down to a few images per class; default: on in smoke mode (`LESSONLIB_SMOKE=1`).

    Example:
        >>> PATH = get("dogscats-mini")
        >>> sorted(p.name for p in PATH.iterdir())
        ['test', 'train', 'valid']
    """
    if name not in CATALOG:
        raise ValueError(f"unknown data set {name!r}: the catalog has {sorted(CATALOG)}")
    entry = CATALOG[name]
    path = _locate(entry)
    if (smoke_mode() if smoke is None else smoke) and (entry.smoke_per_class or entry.smoke_rows):
        dest = data_root() / f"{path.name}-smoke"
        if entry.smoke_per_class:
            path = smoke_sample(path, entry.smoke_per_class, dest)
        else:
            path = smoke_sample_csv(path, entry.smoke_rows, dest)
        print(f"smoke mode: using a small sample of {name} at {path}")
    return path


def _locate(entry):
    local = data_root() / entry.name
    if local.is_dir():
        return local
    if mirror() is not None and (mirror() / entry.name).is_dir():
        return mirror() / entry.name
    if entry.packaged and (PACKAGED / entry.name).is_dir():
        return PACKAGED / entry.name
    reasons = []
    try:
        if entry.url:
            return download_and_extract(entry.url, local, entry.size, entry.md5, entry.inner)
        if entry.fetch:
            return globals()[entry.fetch](local)
    except OSError as e:   # no network, DNS failure, refused connection, disk full ...
        reasons.append(f"{type(e).__name__}: {e}")
    if entry.synthetic:
        out = data_root() / f"{entry.name}-synthetic"
        if not out.is_dir():
            _atomic_dir(out, globals()[entry.synthetic])
        bar = "!" * 78
        print(f"{bar}\n!! {entry.name} is not available here, so this is a SYNTHETIC stand-in of generated "
              f"pictures,\n!! not real photos: numbers you get from it say nothing about real images.\n"
              f"!! Get the real one: set LESSONLIB_DATA_MIRROR, or see data/README.md.\n{bar}")
        return out
    how = "; ".join(reasons) or "no download is known"
    raise FileNotFoundError(f"{entry.name} is not in {data_root()} nor in the mirror, and fetching it failed "
                            f"({how}). See data/README.md to get it by hand.")


def _atomic_dir(dest, write):
    """Write a folder via `write(tmp)` and rename it into place, so no half folder is ever left."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------- download, check, extract

def download(url, dest, size=None, md5=None, timeout=30):
    """Download `url` to the file `dest` with a progress bar; check its size and MD5 when known."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or size
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise OSError(f"{url}: got {got:,} bytes, expected {size:,}; the download was cut short or changed")
    if md5 is not None and digest.hexdigest() != md5:
        part.unlink()
        raise OSError(f"{url}: MD5 {digest.hexdigest()} does not match the expected {md5}")
    os.replace(part, dest)
    return dest


def safe_extract(archive, dest):
    """Extract a .zip or .tar(.gz) into `dest`, refusing any member that would land outside it."""
    archive, dest = Path(archive), Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                _refuse_escape(member, dest)
            z.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                _refuse_escape(member.name, dest)
                if member.issym() or member.islnk():
                    _refuse_escape(os.path.join(os.path.dirname(member.name), member.linkname), dest)
            t.extractall(dest, filter="data")
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    return dest


def _refuse_escape(member, dest):
    target = (dest / member).resolve()
    if target != dest and dest not in target.parents:
        raise ValueError(f"refusing to extract {member!r}: it would land outside {dest}")


def download_and_extract(url, dest, size=None, md5=None, inner=None):
    """Download an archive next to `dest`, extract it, and move its data folder (`inner`) to `dest`."""
    dest = Path(dest)
    archive = dest.parent / Path(urllib.parse.urlparse(url).path).name
    if not archive.exists():
        download(url, archive, size, md5)
    work = dest.with_name(f".{dest.name}.extract{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        safe_extract(archive, work)
        src = work / inner if inner else work
        if not src.is_dir():
            raise ValueError(f"{archive.name} has no folder {inner!r} inside")
        os.replace(src, dest)   # atomic: `dest` appears whole or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    archive.unlink()
    return dest


# ---------------------------------------------------------------- Oxford-IIIT Pet as cats vs dogs

def _fetch_oxford_pets(dest, raw=None):
    """Download Oxford-IIIT Pet with torchvision and write it out in the dogscats layout.

    trainval becomes train/, test becomes valid/; the `binary-category` target (species in the
    annotation files: 1 cat, 2 dog) picks cats/ or dogs/.
    """
    from torchvision.datasets import OxfordIIITPet

    raw = Path(raw) if raw else data_root() / "oxford-pets-raw"
    for split in ("trainval", "test"):
        OxfordIIITPet(raw, split=split, target_types="binary-category", download=True)
    base = raw / "oxford-iiit-pet"

    def write(tmp):
        for split, folder in (("trainval", "train"), ("test", "valid")):
            for line in (base / "annotations" / f"{split}.txt").read_text().splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                image_id, _, species, _ = line.split()
                cls = "cats" if species == "1" else "dogs"
                (tmp / folder / cls).mkdir(parents=True, exist_ok=True)
                shutil.copy2(base / "images" / f"{image_id}.jpg", tmp / folder / cls / f"{image_id}.jpg")
    return _atomic_dir(Path(dest), write)


# ---------------------------------------------------------------- derived samples

def smoke_sample(src, per_class, dest):
    """A small copy of a folder-layout data set: the first `per_class` images of each class and split."""
    from lessonlib.data import image_files

    src, dest = Path(src), Path(dest)
    if dest.is_dir():
        return dest
    n_train, n_valid = per_class

    def write(tmp):
        for split, n in (("train", n_train), ("valid", n_valid)):
            for cls_dir in sorted(p for p in (src / split).iterdir() if p.is_dir()):
                (tmp / split / cls_dir.name).mkdir(parents=True)
                for f in image_files(cls_dir)[:n]:
                    shutil.copy2(f, tmp / split / cls_dir.name / f.name)
        test = [d for d in ("test", "test1") if (src / d).is_dir()]
        if test:
            (tmp / "test").mkdir()
            for f in image_files(src / test[0])[:n_valid]:
                shutil.copy2(f, tmp / "test" / f.name)
    return _atomic_dir(dest, write)


def smoke_sample_csv(src, n_rows, dest, folder="train-jpg", csv_name="train_v2.csv", suffix=".jpg"):
    """A small copy of a CSV-labelled data set: its first `n_rows` rows and their images."""
    src, dest = Path(src), Path(dest)
    if dest.is_dir():
        return dest

    def write(tmp):
        lines = (src / csv_name).read_text().splitlines()
        (tmp / csv_name).write_text("\n".join(lines[:n_rows + 1]) + "\n")
        (tmp / folder).mkdir()
        for line in lines[1:n_rows + 1]:
            name = line.split(",")[0]
            shutil.copy2(src / folder / f"{name}{suffix}", tmp / folder / f"{name}{suffix}")
    return _atomic_dir(dest, write)


# ---------------------------------------------------------------- synthetic stand-ins (announced)

def _synthetic_dogscats(out, n_train=100, n_valid=25, n_test=20, size=128, seed=0):
    """Generated pictures in the dogscats layout: 'cats' are warm round blobs, 'dogs' cool boxes."""
    rng = np.random.default_rng(seed)

    def picture(kind):
        background = tuple(int(v) for v in rng.integers(60, 200, 3))
        img = Image.new("RGB", (size, size), background)
        d = ImageDraw.Draw(img)
        for _ in range(3):
            x, y, r = (int(v) for v in (rng.integers(10, size - 10), rng.integers(10, size - 10), rng.integers(12, 30)))
            if kind == "cats":
                d.ellipse([x - r, y - r, x + r, y + r], fill=(230, int(rng.integers(100, 160)), 40))
            else:
                d.rectangle([x - r, y - r, x + r, y + r], fill=(40, int(rng.integers(100, 160)), 230))
        return img

    for split, n in (("train", n_train), ("valid", n_valid)):
        for kind in ("cats", "dogs"):
            (out / split / kind).mkdir(parents=True)
            for i in range(n):
                picture(kind).save(out / split / kind / f"{kind[:-1]}.{i + 1:04d}.jpg", quality=90)
    (out / "test").mkdir()
    for i in range(n_test):
        picture(("cats", "dogs")[i % 2]).save(out / "test" / f"{i + 1:04d}.jpg", quality=90)


def _synthetic_planet(out, n=120, size=128, seed=0):
    """Generated tiles with tags in the Planet layout (train-jpg/ and train_v2.csv)."""
    rng = np.random.default_rng(seed)
    (out / "train-jpg").mkdir(parents=True)
    rows = []
    for i in range(n):
        tags = ["primary"]
        img = Image.new("RGB", (size, size), (30, 90 + int(rng.integers(0, 40)), 40))
        d = ImageDraw.Draw(img)
        if rng.random() < 0.4:
            tags.append("water")
            d.rectangle([0, int(rng.integers(20, 100)), size, int(rng.integers(100, size))], fill=(30, 60, 160))
        if rng.random() < 0.3:
            tags.append("road")
            x = int(rng.integers(0, size))
            d.line([x, 0, size - x, size], fill=(200, 190, 170), width=4)
        tags.append("cloudy" if rng.random() < 0.2 else "clear")
        if tags[-1] == "cloudy":
            d.ellipse([10, 10, size - 10, size - 10], fill=(235, 235, 235))
        img.save(out / "train-jpg" / f"train_{i}.jpg", quality=90)
        rows.append((f"train_{i}", " ".join(sorted(tags))))
    with open(out / "train_v2.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_name", "tags"])
        writer.writerows(rows)
