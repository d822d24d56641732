"""Your own photos: sort them into the lesson's folders, then check them before training.

`sort_photos` puts photos you bring (files, folders or .zip files, one group per class, class names in any
language) into `train/<class>/` and `valid/<class>/`, split reproducibly. `verify_images` looks at every file
of such a folder and says, per class, what it found: files that cannot be read, formats this machine cannot
read (and how to add them), the same photo twice (byte for byte, or nearly: resaved, resized), photos too
small to learn from, phone photos turned upright by their EXIF orientation. With `set_aside=True` it moves the
files it has a reason for into `_set_aside/`, with that reason written beside them, and nothing else.
"""
import hashlib
import shutil
import tempfile
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from lessonlib.data import display_name, image_files, load_image, readable_extensions, unused_files

__all__ = ["photo_hash", "sort_photos", "verify_images"]

SET_ASIDE = "_set_aside"
NEAR = 6   # at most this many of the 64 bits of `photo_hash` differ: the same photo, resaved or resized


# ---------------------------------------------------------------- bring photos

def _class_name(name):
    name = unicodedata.normalize("NFC", str(name)).strip()
    if not name or name in {".", ".."} or any(c in name for c in '/\\\0') or name.startswith("."):
        raise ValueError(f"class name {name!r}: use a name without / or \\ that does not start with '.' "
                         f"(any language is fine: 猫, Katze, gato)")
    return name


def _photos_in(source, unpack_to):
    """The image files of `source`: one file, a folder (and its subfolders), or a .zip (unpacked safely)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if source.is_file() and source.suffix.lower() == ".zip":
        with zipfile.ZipFile(source) as z:
            for member in z.infolist():
                parts = PurePosixPath(member.filename).parts
                if member.is_dir() or ".." in parts or member.filename.startswith("/") or any(
                        p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue   # folders, paths that would leave the folder, macOS's extra files
                target = unpack_to / source.stem / Path(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return _photos_in(unpack_to / source.stem, unpack_to)
    if source.is_file():
        return [source] if source.suffix.lower() in readable_extensions() else []
    inside = [p for p in sorted(source.rglob("*"))
              if p.is_dir() and not any(x.startswith(".") for x in p.relative_to(source).parts)]
    return sorted(f for folder in [source, *inside] for f in image_files(folder))


def sort_photos(sources, dest, valid_pct=0.2, seed=42, min_per_class=5):
    """Copy photos into `dest/train/<class>/` and `dest/valid/<class>/`; returns a table of counts per class.

    Args:
        sources: {class name: a file, a folder, a .zip, or a list of them}. Class names may be in any language.
        dest: a folder that does not exist yet or is empty (nothing is overwritten).
        valid_pct: the share of each class's photos kept apart for validation (at least one photo).
        seed: the same photos and seed always give the same split.
        min_per_class: fewer photos than this in a class is an error that names the class.

    Example:
        >>> sort_photos({"猫": "my_cats.zip", "狗": ["dog1.jpg", "more_dogs/"]}, "pets")
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} already holds files: give a new folder (nothing is overwritten)")
    if not 0 < valid_pct < 1:
        raise ValueError(f"valid_pct={valid_pct!r}: give a share between 0 and 1, e.g. 0.2")
    if len(sources) < 2:
        raise ValueError("a classifier needs at least two classes: give photos for two or more")
    rows, rng = [], np.random.RandomState(seed)
    with tempfile.TemporaryDirectory(prefix=".sorting-", dir=dest.parent if dest.parent.exists() else None) as tmp:
        work, unpacked = Path(tmp) / "out", Path(tmp) / "unpacked"
        names = {}
        for cls, given in sources.items():
            name = _class_name(cls)
            if name in names:
                raise ValueError(f"the class {name!r} is given twice ({names[name]!r} and {cls!r})")
            names[name] = cls
            given = given if isinstance(given, (list, tuple)) else [given]
            files = [f for g in given for f in _photos_in(g, unpacked / name)]
            if len(files) < min_per_class:
                raise ValueError(f"class {name!r} has {len(files)} photo(s); it needs at least {min_per_class} "
                                 f"(more is better: 20 or more per class for a first try)")
            order = rng.permutation(len(files))
            n_valid = max(1, round(valid_pct * len(files)))
            for i, k in enumerate(order):
                split = "valid" if i < n_valid else "train"
                _copy_unique(files[k], work / split / name)
            rows.append({"class": name, "train": len(files) - n_valid, "valid": n_valid})
        dest.mkdir(parents=True, exist_ok=True)
        for split in ("train", "valid"):
            shutil.move(str(work / split), str(dest / split))   # whole folders, once everything is ready
    return pd.DataFrame(rows)


def _copy_unique(src, folder):
    """Copy `src` into `folder` under its own name, numbered when two photos share a name."""
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / src.name, 1
    while target.exists():
        target, n = folder / f"{src.stem}-{n}{src.suffix}", n + 1
    shutil.copy2(src, target)


# ---------------------------------------------------------------- verify

def photo_hash(img):
    """64 bits that change little when a photo is resized, resaved or slightly recoloured, and a lot between two
    different photos (a "perceptual hash"): the photo shrunk to 32 x 32 grey pixels, its 8 x 8 coarsest
    patterns of light and dark (a discrete cosine transform, as JPEG uses), each bit saying whether a pattern
    is stronger than their median."""
    grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    k, n = np.arange(32)[:, None], np.arange(32)[None, :]
    dct = np.cos(np.pi * (2 * n + 1) * k / 64)        # the DCT-II basis, one pattern per row
    coarse = (dct @ grey @ dct.T)[:8, :8].ravel()
    return coarse > np.median(coarse[1:])             # the first is the mean brightness: left out of the median


def _orientation(path):
    try:
        with Image.open(path) as img:
            return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


def verify_images(path, min_side=64, set_aside=False):
    """Check every file of an image-folder data set; return one row per finding (a DataFrame).

    Columns: split, class, file, problem, action. Problems: "cannot be read", a format this machine cannot read,
    "same bytes as <file>", "nearly the same photo as <file>" (resaved or resized; the split says whether the
    copy leaks between train and valid), "too small" (shorter side under `min_side` pixels), and, not a problem,
    "turned upright" (phone photos, by their EXIF orientation: lessonlib reads them so). With `set_aside=True`,
    the files with a problem move to `path/_set_aside/<split>/<class>/`, listed in `_set_aside/reasons.csv`;
    the first of two copies stays. Nothing else moves.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder")
    found, seen_bytes, kept, bits = [], {}, [], np.zeros((0, 64), dtype=bool)
    folders = sorted(p for p in path.glob("*/*") if p.is_dir() and not p.name.startswith(".")
                     and p.parent.name != SET_ASIDE and not p.parent.name.startswith("."))
    if not folders:
        raise ValueError(f"{path} has no <split>/<class>/ folders (e.g. train/猫/): sort the photos first "
                         f"(sort_photos)")
    for folder in folders:
        split, cls = folder.parent.name, folder.name

        def note(file, problem, movable=True):
            found.append({"split": split, "class": cls, "file": file, "problem": problem, "movable": movable})
        for reason, names in unused_files(folder).items():
            if "Pillow" in reason or "not there" in reason:
                for n in names:
                    note(folder / n, reason)
        for f in image_files(folder):
            try:
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
                img = load_image(f, min_side)   # decoded at a reduced size where that is enough
            except Exception as e:   # a decoder's error, whatever it is, means the file cannot be used
                note(f, f"cannot be read ({type(e).__name__}: {e})")
                continue
            if digest in seen_bytes:
                note(f, f"same bytes as {seen_bytes[digest].relative_to(path)}")
                continue
            seen_bytes[digest] = f
            if min(img.size) < min_side:
                note(f, f"too small: {img.size[0]}x{img.size[1]} px, under {min_side} px on its shorter side")
                continue
            h = photo_hash(img)
            close = np.flatnonzero((bits != h).sum(1) <= NEAR)
            twin = kept[close[0]] if len(close) else None
            if twin is not None:
                where = "" if twin.parent.parent == f.parent.parent else " (one in train, one in valid: a leak)"
                note(f, f"nearly the same photo as {twin.relative_to(path)}{where}")
                continue
            kept.append(f)
            bits = np.vstack([bits, h])
            if _orientation(f) != 1:
                note(f, f"turned upright (EXIF orientation {_orientation(f)})", movable=False)
    report = pd.DataFrame(found, columns=["split", "class", "file", "problem", "movable"])
    report["action"] = np.where(report["movable"], "set aside" if set_aside else "none (set_aside=True moves it)",
                                "none: read upright")
    if set_aside and report["movable"].any():
        _set_aside(path, report[report["movable"]])
    report["file"] = [display_name(Path(f).relative_to(path)) for f in report["file"]]
    return report.drop(columns="movable")


def _set_aside(path, rows):
    """Move each file of `rows` under `path/_set_aside/`, keeping split and class, and add its reason to
    `reasons.csv` (written before the files move, so that an interrupted move still says why)."""
    aside = path / SET_ASIDE
    aside.mkdir(exist_ok=True)
    log = aside / "reasons.csv"
    moves = [(Path(r.file), aside / r.split / r["class"] / Path(r.file).name, r.problem) for _, r in rows.iterrows()]
    table = pd.DataFrame([{"from": str(src.relative_to(path)), "to": str(dst.relative_to(path)), "problem": why}
                          for src, dst, why in moves])
    table.to_csv(log, mode="a", header=not log.exists(), index=False)
    for src, dst, _ in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists() or src.is_symlink():
            shutil.move(str(src), str(dst))
