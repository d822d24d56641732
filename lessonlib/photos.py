"""Your own photos: sort them into the lesson's folders, then check them before training.

`sort_photos` puts photos you bring (files, folders or .zip files, one group per class, class names in any
language) into `train/<class>/` and `valid/<class>/`, split reproducibly. `verify_images` looks at every file
of such a folder and says, per class, what it found: files that cannot be read, formats this machine cannot
read (and how to add them), the same photo twice (byte for byte, or nearly: resaved, resized), photos too
small to learn from, phone photos turned upright by their EXIF orientation. With `set_aside=True` it moves the
files it has a reason for into `_set_aside/`, with that reason written beside them, and nothing else.
"""
import hashlib
import html
import json
import os
import re
import shutil
import tempfile
import unicodedata
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from lessonlib.datasets import open_zip, safe_extract
from lessonlib.engine.language import problem, say
from lessonlib.engine.tables import Table
from lessonlib.engine.storage import atomic_write
from lessonlib.folders import image_files, unused_files
from lessonlib.images import display_name, load_image, readable_extensions

__all__ = ["Cleaner", "PhotoUploader", "TryIt", "example_inbox", "photo_hash", "sort_photos", "uploaded_files",
           "verify_images"]

SET_ASIDE = "_set_aside"
NEAR = 6   # at most this many of the 64 bits of `photo_hash` differ: the same photo, resaved or resized


# ---------------------------------------------------------------- bring photos

def _class_name(name):
    name = unicodedata.normalize("NFC", str(name)).strip()
    if not name or name in {".", ".."} or any(c in name for c in '/\\\0') or name.startswith("."):
        raise ValueError(problem("class name {name!r}: use a name without / or \\ that does not start with '.' (any "
                                 "language is fine: 猫, Katze, gato)", name=name))
    return name


# What Windows and macOS write beside photos, in folders and zips: never a photo, never worth a word. Names that
# start with '.' are left out too: macOS's .DS_Store and its "._IMG_1.jpg" AppleDouble copies of each file.
SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx"}


def _system_file(parts):
    """Whether a path (its parts, from where the photos were given) is the system's, not the student's."""
    return any(x.startswith(".") or x.lower() in SYSTEM_FILES for x in parts)


def _unused(folder):
    """{reason: [names]} of the files directly in `folder` that are not photos, less folders and system files."""
    found = {}
    for reason, names in unused_files(folder).items():
        names = [n for n in names if not (Path(folder, n).is_dir() or _system_file([n]))]
        if names:
            found[reason] = names
    return found


def _photos_in(source, unpack_to, left_out=None, zips=True):
    """The image files of `source`: one file, a folder (and its subfolders), or a .zip (unpacked into a folder of
    its own under `unpack_to`). A .zip inside a given folder (one added through `PhotoUploader`) is unpacked the
    same way (`zips`; a zip inside a zip is not). What is not used goes into `left_out` ({reason: [names]});
    system files (Thumbs.db, desktop.ini, macOS's __MACOSX/ and ._ copies, .DS_Store) are passed over silently."""
    left_out = {} if left_out is None else left_out
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(problem("{source} does not exist", source=source))
    if source.is_file() and source.suffix.lower() == ".zip":
        return _photos_in(_unzip(source, unpack_to), unpack_to, left_out, zips=False)
    if source.is_file():
        if source.suffix.lower() in readable_extensions():
            return [source]
        for reason, names in _unused(source.parent).items():
            if source.name in names:
                left_out.setdefault(reason, []).append(source.name)
        return []
    inside = [p for p in sorted(source.rglob("*")) if p.is_dir() and not _system_file(p.relative_to(source).parts)]
    found = []
    for folder in [source, *inside]:
        found += image_files(folder)
        for reason, names in _unused(folder).items():
            for name in names:
                if zips and name.lower().endswith(".zip") and (folder / name).is_file():
                    found += _photos_in(folder / name, unpack_to, left_out, zips=False)
                else:
                    left_out.setdefault(reason, []).append(name)
    return sorted(found)


def _photo_paths(source):
    """The photos of a folder or a .zip, as paths relative to it (PurePosixPath), without unpacking anything."""
    source, readable = Path(source), readable_extensions()
    if source.is_file() and source.suffix.lower() == ".zip":
        try:
            with open_zip(source) as z:
                names = [PurePosixPath(n) for n in z.namelist() if not n.endswith("/")]
        except (zipfile.BadZipFile, OSError, EOFError):   # said when it is unpacked
            return []
    elif source.is_dir():
        names = [PurePosixPath(p.relative_to(source).as_posix()) for p in source.rglob("*") if p.is_file()]
    else:
        names = [PurePosixPath(source.name)]
    return [n for n in names if n.suffix.lower() in readable and not _system_file(n.parts)]


def _class_folders_in(source):
    """(the folder inside `source` that holds one folder per class, [those folders' names]) when the photos of
    `source` (a folder or a .zip) lie in two or more folders side by side, below any one folder that wraps them
    all (pets.zip holding pets/猫/ and pets/狗/); else (None, [])."""
    paths, top = _photo_paths(source), PurePosixPath()
    while paths and all(len(p.parts) > 2 for p in paths) and len({p.parts[0] for p in paths}) == 1:
        top, paths = top / paths[0].parts[0], [PurePosixPath(*p.parts[1:]) for p in paths]
    folders = sorted({p.parts[0] for p in paths if len(p.parts) > 1})
    return (top, folders) if len(folders) >= 2 else (None, [])


def _by_folder(source, unpack_to):
    """{class: folder} for a folder or .zip that holds one folder per class (a zip is unpacked under
    `unpack_to`), and [photos] lying beside those folders, in no class."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(problem("{source} does not exist", source=source))
    top, folders = _class_folders_in(source)
    if top is None:
        raise ValueError(problem("{source} does not hold one folder per class (such as 猫/ and 狗/, each with its "
                                 "photos): give {{class name: its photos}} instead, e.g. sort_photos({{'猫': "
                                 "'cats.zip', '狗': 'dogs/'}}, dest)", source=source))
    root = (_unzip(source, unpack_to) if source.is_file() else source) / top
    loose = [p for p in _photo_paths(root) if len(p.parts) == 1]
    return {name: root / name for name in folders}, [root / p for p in loose]


def _unzip(archive, unpack_to):
    """Unpack the .zip `archive` into a new folder of its own under `unpack_to` and return that folder: two zips
    of one name (phone/photos.zip, laptop/photos.zip) never share one. The extraction is the one lessonlib's
    downloads use (`datasets.safe_extract`), with its bounds and checks; a zip it cannot unpack whole is refused
    with its path and what to do, before anything is written."""
    instead = say("unzip it yourself, look at what it holds, and give the folder instead")
    try:
        zipfile.ZipFile(archive).close()   # whole enough to list; the rest is safe_extract's to check
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(problem("{archive} is not a whole .zip file ({kind}: {e}): it may have been cut off while "
                                 "copying or downloading; copy it again, or {what}", archive=archive,
                                 kind=type(e).__name__, e=e, what=instead)) from e
    unpack_to.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="zip-", dir=unpack_to))
    try:
        safe_extract(archive, folder)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ValueError(problem("{archive} is damaged ({kind}: {e}): copy it again from where it came from, or "
                                 "{what}", archive=archive, kind=type(e).__name__, e=e,
                                 what=instead)) from e
    except ValueError as e:   # a password, a name twice, a path outside, more than a download may unpack to
        raise ValueError(problem("{archive} was not unpacked: {e}; {what}", archive=archive, e=e,
                                 what=instead)) from e
    return folder


def sort_photos(sources, dest, valid_pct=0.2, seed=42, min_per_class=5):
    """Copy photos into `dest/train/<class>/` and `dest/valid/<class>/`; returns a table of counts per class.

    Args:
        sources: {class name: a file, a folder, a .zip, or a list of them}. Class names may be in any language.
            Each .zip unpacks into a folder of its own (two zips of one name never mix), within the size bounds
            of lessonlib's downloads, and so does a .zip inside a given folder; a file given twice (the same path)
            is used once. Or one folder or .zip that holds a folder per class (猫/, 狗/): sorted by those.
        dest: a folder that does not exist yet or is empty (nothing is overwritten).
        valid_pct: the share of each class's photos kept apart for validation: at least one photo, and never
            the last one, which stays in train (a class needs both to be learnt and checked).
        seed: the same photos and seed always give the same split.
        min_per_class: fewer photos than this in a class is an error that names the class. 2 at the least
            (one to train on, one to validate with): smaller values are refused.

    Example:
        >>> sort_photos({"猫": "my_cats.zip", "狗": ["dog1.jpg", "more_dogs/"]}, "pets")
        >>> sort_photos("pets.zip", "pets")           # pets.zip holds 猫/ and 狗/
    """
    dest, by_folder = Path(dest), isinstance(sources, (str, os.PathLike))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(problem("{dest} already holds files: give a new folder (nothing is overwritten)",
                                      dest=dest))
    if not 0 < valid_pct < 1:
        raise ValueError(problem("valid_pct={valid_pct!r}: give a share between 0 and 1, e.g. 0.2",
                                 valid_pct=valid_pct))
    if not by_folder and len(sources) < 2:
        raise ValueError(problem("a classifier needs at least two classes: give photos for two or more{hint}",
                                 hint=_one_source_holds_classes(sources)))
    if not by_folder:
        _refuse_classes_inside(sources)
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, (int, np.integer)) or min_per_class < 2:
        raise ValueError(problem("min_per_class={min_per_class!r}: each class needs at least 2 photos, one to train "
                                 "on and one to validate with; give min_per_class=2 or more (20 or more photos per "
                                 "class is better)", min_per_class=min_per_class))
    rows, rng, skipped, animated = [], np.random.RandomState(seed), {}, []
    with tempfile.TemporaryDirectory(prefix=".sorting-", dir=dest.parent if dest.parent.exists() else None) as tmp:
        work, unpacked = Path(tmp) / "out", Path(tmp) / "unpacked"
        if by_folder:
            sources, loose = _by_folder(sources, unpacked / "given")
            if loose:
                skipped[say("beside the class folders, in none")] = [display_name(p.name) for p in loose]
        given_as = {}
        for cls, given in sources.items():
            name = _class_name(cls)
            if name in given_as:
                raise ValueError(problem("the class {name!r} is given twice ({given_as!r} and {cls!r})",
                                         name=name, given_as=given_as[name], cls=cls))
            given_as[name] = cls
            given = given if isinstance(given, (list, tuple)) else [given]
            left_out = {}
            given = list(dict.fromkeys(os.path.abspath(g) for g in given))   # the same file given twice: once
            files = list(dict.fromkeys(f for g in given for f in _photos_in(g, unpacked / name, left_out)))
            for reason, files_left in left_out.items():
                skipped.setdefault(reason, []).extend(f"{name}: {n}" for n in files_left)
            animated += [f"{name}: {display_name(f.name)}" for f in files if _animated(f)]
            if len(files) < min_per_class:
                raise ValueError(problem("class {name!r} has {n_files} photo(s); it needs at least {min_per_class} "
                                         "(more is better: 20 or more per class for a first try)",
                                         name=name, n_files=len(files), min_per_class=min_per_class))
            order = rng.permutation(len(files))
            n_valid = min(max(1, round(valid_pct * len(files))), len(files) - 1)   # train keeps one at least
            for i, k in enumerate(order):
                split = "valid" if i < n_valid else "train"
                _copy_unique(files[k], work / split / name)
            rows.append({"class": name, "train": len(files) - n_valid, "valid": n_valid,
                         "left out": sum(len(v) for v in left_out.values())})
        dest.mkdir(parents=True, exist_ok=True)
        for split in ("train", "valid"):
            shutil.move(str(work / split), str(dest / split))   # whole folders, once everything is ready
    if skipped:
        lines = [f"  {len(names)} {reason}: {', '.join(names[:3])}" + (", ..." if len(names) > 3 else "")
                 for reason, names in skipped.items()]
        warnings.warn(problem("some files were not copied:\n{lines}", lines="\n".join(lines)), stacklevel=2)
    if animated:
        warnings.warn(problem("{files}: animated; only its first frame is used, as one photo",
                              files=", ".join(animated)), stacklevel=2)
    return Table(pd.DataFrame(rows), labels={"class": say("class"), "train": say("train"), "valid": say("valid"),
                                             "left out": say("left out")})


def _animated(file):
    """Whether `file` is an animated GIF, PNG or WebP (a photo of more than one frame)."""
    if file.suffix.lower() not in {".gif", ".png", ".apng", ".webp"}:
        return False
    try:
        with Image.open(file) as img:
            return bool(getattr(img, "is_animated", False))
    except Exception:   # unreadable: verify_images says so
        return False


def _zips_in(folder):
    """The .zip files inside `folder` and its subfolders (what the upload widget saves), system folders left out."""
    return [z for z in sorted(Path(folder).rglob("*")) if z.suffix.lower() == ".zip" and z.is_file()
            and not _system_file(z.relative_to(folder).parts)]


def _given(sources, cls):
    """The paths given for `cls` that exist, and the .zip files inside those that are folders."""
    given = sources[cls] if isinstance(sources[cls], (list, tuple)) else [sources[cls]]
    return [f for g in map(Path, given) if g.exists() for f in [g, *(_zips_in(g) if g.is_dir() else [])]]


def _one_source_holds_classes(sources):
    """For a single class given: what to do when its folder or .zip holds a folder per class ("" if not)."""
    for source in [s for cls in sources for s in _given(sources, cls)]:
        top, folders = _class_folders_in(source)
        if folders:
            return say(". {source} holds a folder for each class, it seems ({folders}): give it whole, and it is "
                       "sorted by those folders: sort_photos({path!r}, dest)", source=display_name(source),
                       folders=", ".join(f"{f}/" for f in folders), path=display_name(source))
    return ""


def _refuse_classes_inside(sources):
    """A folder or .zip given for one class that holds folders named like the other classes (猫/ and 狗/ in a zip
    given for 猫) would put both classes' photos in one: refused, with what to do."""
    def named(c):
        return unicodedata.normalize("NFC", str(c)).strip()
    for cls in sources:
        for source in _given(sources, cls):
            top, folders = _class_folders_in(source)
            others = [f for f in folders if named(f) in {named(c) for c in sources} - {named(cls)}]
            if others:
                raise ValueError(problem("{source}, given for {cls!r}, holds a folder for each class ({folders}): "
                                         "its photos of {others} would be learnt as {cls!r}. Give it whole instead "
                                         "of {{class: photos}}, and it is sorted by those folders: "
                                         "sort_photos({path!r}, dest)", source=display_name(source), cls=cls,
                                         folders=", ".join(f"{f}/" for f in folders), others=", ".join(others),
                                         path=display_name(source)))


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

    `path` holds `<split>/<class>/` folders (what `from_paths` reads), or is one folder of images whose labels
    are in a CSV (what `from_csv` reads; split and class are then empty). Columns: split, class, file, kind,
    problem, action. `kind` is what code compares (the same words in every language); `problem` says it in the
    reader's words. Kinds: "cannot_read" (a decoder failed), "not_a_photo" (a format this machine cannot read,
    a link to nothing, ...), "same_bytes" (as another file), "nearly_same" (the same photo resaved or resized;
    the problem says whether the copy leaks between train and valid), "too_small" (shorter side under `min_side`
    pixels), and, not a problem, "turned_upright" (phone photos, by their EXIF orientation: lessonlib reads them
    so). With `set_aside=True`,
    the files with a problem move to `path/_set_aside/<split>/<class>/`, listed in `_set_aside/reasons.csv`;
    the first of two copies stays. Nothing else moves.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(problem("{path} is not a folder", path=path))
    found, seen_bytes, kept, shown = [], {}, [], {}
    folders = sorted(p for p in path.glob("*/*") if p.is_dir() and not p.name.startswith(".")
                     and p.parent.name != SET_ASIDE and not p.parent.name.startswith("."))
    if image_files(path):   # a flat folder of images whose labels are in a CSV (what from_csv reads)
        folders = [path]
    if not folders:
        raise ValueError(problem("{path} has no <split>/<class>/ folders (e.g. train/猫/) and no images of its own: "
                                 "sort the photos first (sort_photos)", path=path))
    bits = np.zeros((sum(len(image_files(f)) for f in folders), 64), dtype=bool)   # the hashes kept so far
    for folder in folders:
        split, cls = (folder.parent.name, folder.name) if folder != path else ("", "")

        def note(file, kind, problem, movable=True):   # `problem`: the reader's words; the table keeps its English
            english = getattr(problem, "english", None) or problem
            shown[english] = str(problem)
            found.append({"split": split, "class": cls, "file": file, "kind": kind, "problem": english,
                          "movable": movable})
        for reason, names in _unused(folder).items():   # what cannot be read as a photo; not Thumbs.db
            for n in names:
                note(folder / n, "not_a_photo", reason)
        for f in image_files(folder):
            try:
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
                img = load_image(f, min_side)   # decoded at a reduced size where that is enough
            except Exception as e:   # a decoder's error, whatever it is, means the file cannot be used
                note(f, "cannot_read", say("cannot be read ({kind}: {e})", kind=type(e).__name__, e=e))
                continue
            if digest in seen_bytes:
                twin = seen_bytes[digest]
                note(f, "same_bytes", say("same bytes as {twin}{leak}", twin=display_name(twin.relative_to(path)),
                                          leak=_leak(twin, f, path)))
                continue
            seen_bytes[digest] = f
            if min(img.size) < min_side:
                note(f, "too_small", say("too small: {w}x{h} px, under {min_side} px on its shorter side",
                                         w=img.size[0], h=img.size[1], min_side=min_side))
                continue
            h = photo_hash(img)
            close = np.flatnonzero((bits[:len(kept)] != h).sum(1) <= NEAR)
            twin = kept[close[0]] if len(close) else None
            if twin is not None:
                note(f, "nearly_same", say("nearly the same photo as {twin}{leak}",
                                           twin=display_name(twin.relative_to(path)), leak=_leak(twin, f, path)))
                continue
            bits[len(kept)] = h
            kept.append(f)
            orientation = _orientation(f)
            if orientation != 1:
                note(f, "turned_upright", say("turned upright (EXIF orientation {orientation})",
                                              orientation=orientation), movable=False)
    report = pd.DataFrame(found, columns=["split", "class", "file", "kind", "problem", "movable"])
    report["action"] = np.where(report["movable"], "set aside" if set_aside else "none (set_aside=True moves it)",
                                "none: read upright")
    if set_aside and report["movable"].any():
        _set_aside(path, report[report["movable"]])
    report["file"] = [display_name(Path(f).relative_to(path)) for f in report["file"]]
    actions = {"set aside": say("set aside"), "none (set_aside=True moves it)": say("none (set_aside=True moves it)"),
               "none: read upright": say("none: read upright")}
    return Table(report.drop(columns="movable"),   # code reads the English names and problems; people, their words
                 labels={"split": say("split"), "class": say("class"), "file": say("file"), "kind": say("kind"),
                         "problem": say("problem"), "action": say("action")},
                 cells={"split": {"train": say("train"), "valid": say("valid")}, "problem": shown, "action": actions})


def _leak(first, copy, path):
    """" (one in train, one in valid: a leak)" when two copies of a photo lie in different splits of `path`."""
    a, b = first.parent.parent, copy.parent.parent
    if a == b or path in (first.parent, copy.parent):   # one split, or a flat folder (no splits)
        return ""
    return " (" + say("one in {a}, one in {b}: a leak", a=display_name(a.name), b=display_name(b.name)) + ")"


def _set_aside(path, rows):
    """Move each file of `rows` under `path/_set_aside/`, keeping split and class, and add its reason to
    `reasons.csv` (written before the files move, so that an interrupted move still says why). The CSV is
    UTF-8 whatever the names: a name whose bytes are not UTF-8 is written as `verify_images` shows it (\\xNN);
    the file moves under its own name. The CSV is replaced whole, never left half-written."""
    aside = path / SET_ASIDE
    aside.mkdir(exist_ok=True)
    log = aside / "reasons.csv"
    moves = [(Path(r.file), aside / r.split / r["class"] / Path(r.file).name, r.problem) for _, r in rows.iterrows()]
    table = pd.DataFrame([{"from": display_name(src.relative_to(path)), "to": display_name(dst.relative_to(path)),
                           "problem": why} for src, dst, why in moves])
    before = log.read_bytes() if log.exists() else b""
    added = table.to_csv(header=not before, index=False).encode("utf-8", "backslashreplace")
    atomic_write(log, lambda f: f.write(before + added))
    for src, dst, _ in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists() or src.is_symlink():
            shutil.move(str(src), str(dst))


# ---------------------------------------------------------------- bring photos from your computer or phone

def uploaded_files(value):
    """[(file name, bytes)] from an ipywidgets `FileUpload`'s value, in either version's form: ipywidgets 8 gives a
    tuple of dicts with "name" and "content"; ipywidgets 7 (what Colab ships) a dict {name: {"content": ...}}."""
    if isinstance(value, dict):
        return [(name, bytes(v["content"])) for name, v in value.items()]
    return [(v["name"], bytes(v["content"])) for v in value]


class PhotoUploader:
    """Bring photos into one folder per class (`inbox/<class>/`), then sort them into the lesson's layout.

    State: `inbox`, and the photos in it: `counts()` ({class: photos}). Photos may be images or .zip files (of
    photos, or of folders of photos); `sort` unpacks each zip as `sort_photos` does one given to it.

    Example:
        >>> uploader = PhotoUploader("photo_inbox")
        >>> uploader.widget()                       # type a class name, choose photos, press "add"
        >>> uploader.add("猫", [("IMG_1.jpg", data)])  # what the button does, without a browser
        >>> uploader.sort("my_pets")                # sort_photos: my_pets/train/猫/, my_pets/valid/猫/ ...
    """

    def __init__(self, inbox):
        self.inbox = Path(inbox)

    def add(self, cls, files):
        """Save `files` ([(name, bytes)]) as photos of class `cls`; returns how many were saved."""
        folder = self.inbox / _class_name(cls)
        saved = 0
        for name, content in files:
            name = Path(str(name).replace("\\", "/")).name
            if not name or name.startswith("."):
                continue
            target, n = folder / name, 1
            while target.exists():
                target, n = folder / f"{Path(name).stem}-{n}{Path(name).suffix}", n + 1
            atomic_write(target, lambda f: f.write(content))
            saved += 1
        return saved

    def counts(self):
        """{class: photos} in the inbox, those inside its .zip files included."""
        if not self.inbox.is_dir():
            return {}
        return {p.name: len(_photo_paths(p)) + sum(len(_photo_paths(z)) for z in _zips_in(p))
                for p in sorted(self.inbox.iterdir()) if p.is_dir()}

    def sort(self, dest, **kwargs):
        """`sort_photos` of every class in the inbox into `dest` (valid_pct, seed, min_per_class as there)."""
        return sort_photos({name: self.inbox / name for name in self.counts()}, dest, **kwargs)

    def widget(self):
        import ipywidgets as w

        name = w.Text(description=say("class"), placeholder=say("e.g. 猫 or cat"))
        upload = w.FileUpload(accept="image/*,.zip,.jfif,.heic,.heif,.avif", multiple=True,
                              description=say("photos"))
        add = w.Button(description=say("add to this class"), button_style="primary")
        status = w.HTML()

        def show(message=""):   # names (classes, folders, messages naming them) shown as text, never as HTML
            rows = "".join(f"<li>{_html(cls)}: {n}</li>" for cls, n in self.counts().items()) \
                or f"<li>{say('none yet')}</li>"
            status.value = f"{message}<br>{say('In {inbox}:', inbox=_html(self.inbox))}<ul>{rows}</ul>"

        def on_add(_):
            try:
                n = self.add(name.value, uploaded_files(upload.value))
                show(say("added {n} file(s) to {cls}", n=n, cls=_html(name.value.strip())))
            except (ValueError, OSError) as e:
                show(f"<b>{_html(e)}</b>")

        add.on_click(on_add)
        show()
        return w.VBox([w.HBox([name, upload, add]), status])


# ---------------------------------------------------------------- clean: the photos the model finds hardest

class Cleaner:
    """Look at the photos the model finds hardest and fix what is wrong: relabel, set aside, or keep.

    `candidates` are the `n` photos with the highest loss (the most confident mistakes first): a table of file,
    true class, predicted class and the probability the model gave the true class. `decisions` holds what you
    chose ({file: "keep", "set aside" or a class name}). `apply()` writes them: a relabelled photo moves to that
    class's folder, a photo set aside to `_set_aside/` with its reason. The plan is written first
    (`_set_aside/cleaning-<n>.json`) and each move is one rename, so a Ctrl-C in the middle leaves every photo
    in one place or the other, and `resume()` (or `apply()` again) finishes the job. A photo that is no longer
    where it was shown (moved by an earlier `apply`) is not planned again. `undo()` puts the photos of the last
    plan back; again, those of the plan before. Other files in `_set_aside/` (a copy of a plan, notes) are not
    the Cleaner's and are left alone. File names whose bytes are not UTF-8 are kept: the plan records them
    exactly (JSON's \\u escapes), so undo finds them again.
    Afterwards, build the data again (`ImageClassifierData.from_paths`): the file list has changed, and the
    cached activations follow it.

    Example:
        >>> log_preds, y = learn.predict_with_targs()
        >>> cleaner = Cleaner(PATH, learn.data.val_ds.fnames, y, np.exp(log_preds), learn.data.classes)
        >>> cleaner.widget()
        >>> cleaner.decide(cleaner.candidates.file[0], "set aside"); cleaner.apply()
    """

    def __init__(self, path, files, y, probs, classes, n=12):
        self.path, self.classes = Path(path), list(classes)
        probs, y = np.asarray(probs, dtype=float), np.asarray(y)
        true_p = probs[np.arange(len(y)), y]
        loss = -np.log(np.clip(true_p, 1e-12, 1))        # the loss of each photo: highest first
        order = np.argsort(-loss, kind="stable")[:n]
        self.candidates = Table({"file": [Path(files[i]) for i in order],
                                 "true": [self.classes[y[i]] for i in order],
                                 "predicted": [self.classes[int(probs[i].argmax())] for i in order],
                                 "p_true": true_p[order].round(4)},
                                labels={"file": say("file"), "true": say("true"), "predicted": say("predicted")})
        self.decisions = {}

    def decide(self, file, choice):
        """Choose "keep", "set aside" or a class name for one of the candidates."""
        file = Path(file)
        if file not in set(self.candidates.file):
            raise ValueError(problem("{file} is not one of the photos shown", file=file))
        if choice not in ("keep", "set aside", *self.classes):
            raise ValueError(problem("{choice!r}: choose 'keep', 'set aside' or one of the classes {classes}",
                                     choice=choice, classes=self.classes))
        self.decisions[file] = choice
        return self.summary()

    def summary(self):
        counts = pd.Series(["relabel" if c in self.classes else c for c in self.decisions.values()]).value_counts()
        return ", ".join(f"{n} {say(what)}" for what, n in counts.items()) or say("nothing decided yet")

    def plan(self):
        """[(from, to, why)] for the decisions that move a photo still where it was shown."""
        moves = []
        for file, choice in self.decisions.items():
            true = self.candidates.true[self.candidates.file == file].iloc[0]
            if choice == "keep" or choice == true or not file.exists():   # kept, or moved already
                continue
            split = file.parent.parent.name
            if choice == "set aside":
                to, why = self.path / SET_ASIDE / split / file.parent.name / file.name, "set aside while cleaning"
            else:
                to, why = file.parent.parent / choice / file.name, f"relabelled from {true} to {choice}"
            n, planned = 1, {b for _, b, _ in moves}
            while to.exists() or to in planned:   # a photo of that name is there already: number this one
                to, n = to.with_name(f"{file.stem}-{n}{file.suffix}"), n + 1
            moves.append((file, to, why))
        return moves

    def apply(self):
        """Carry out the decisions (see the class); returns the moves made, as a table."""
        moves = self.plan()
        if not moves:
            return pd.DataFrame(columns=["from", "to", "why"])
        record = [{"from": str(a), "to": str(b), "why": why} for a, b, why in moves]
        number = 1 + max(self._plans("cleaning") | self._plans("undone"), default=0)
        # ASCII JSON: a name of any bytes (surrogate escapes) is written and read back exactly, in any locale
        atomic_write(self.path / SET_ASIDE / f"cleaning-{number}.json",
                     lambda f: f.write(json.dumps(record, indent=1).encode("ascii")))
        return _moves_table(self._carry_out(record))

    def resume(self):
        """Finish the last plan after an interruption; returns the moves made now, as a table."""
        return _moves_table(self._carry_out(self._last_plan()[1]))

    def undo(self):
        """Put the photos of the last plan back where they were; returns how many moved back. Called again, it
        puts back those of the plan before."""
        plan, record = self._last_plan()
        back = self._carry_out([{"from": r["to"], "to": r["from"], "why": "undo"} for r in reversed(record)])
        plan.replace(plan.with_name(plan.name.replace("cleaning-", "undone-")))
        return len(back)

    def _plans(self, kind):
        """{number: file} of the plans this Cleaner wrote in `_set_aside/` as `<kind>-<n>.json`; other files
        there (`cleaning-1 copy.json`, notes) are not its own."""
        folder = self.path / SET_ASIDE
        found = (re.fullmatch(rf"{kind}-(\d+)\.json", p.name) for p in folder.iterdir()) if folder.is_dir() else ()
        return {int(m[1]): folder / m[0] for m in found if m}

    def _last_plan(self):
        """(file, moves) of the last plan not undone."""
        plans = self._plans("cleaning")
        if not plans:
            raise FileNotFoundError(problem("no cleaning plan in {folder}", folder=self.path / SET_ASIDE))
        plan = plans[max(plans)]
        return plan, json.loads(plan.read_text(encoding="utf-8"))

    @staticmethod
    def _carry_out(record):
        """Make the moves of `record` whose photo is still at its start; returns those made."""
        from lessonlib.engine.interrupts import deferred_interrupt
        moved = []
        for r in record:
            src, dst = Path(r["from"]), Path(r["to"])
            if not src.exists():       # done already (an earlier, interrupted run), or gone
                continue
            if dst.exists():
                raise FileExistsError(problem("{dst} exists already: move it away, then run this again",
                                              dst=display_name(dst)))
            dst.parent.mkdir(parents=True, exist_ok=True)
            with deferred_interrupt():   # one rename: the photo is in one place or the other
                src.rename(dst)
            moved.append(r)
        return moved

    def widget(self, size=2.2):
        import ipywidgets as w

        rows = []
        apply = w.Button(description=say("apply"), button_style="warning")
        undo = w.Button(description=say("undo"))
        status = w.HTML(say("chosen: {summary}", summary=self.summary()))

        def choose(change, file):
            status.value = say("chosen: {summary}", summary=self.decide(file, change["new"]))

        for _, c in self.candidates.iterrows():
            image = w.Image(value=_thumbnail(c.file), format="png", width=int(size * 60))
            caption = w.HTML(say("{name}<br>true: {true}<br>model: {predicted} (p={p:.2f} for {true})",
                                 name=_html(c.file.name), true=_html(c.true), predicted=_html(c.predicted),
                                 p=c.p_true))
            choice = w.Dropdown(options=[(say("keep"), "keep"), (say("set aside"), "set aside"),
                                         *[(cls, cls) for cls in self.classes]], value="keep")
            choice.observe(lambda change, f=c.file: choose(change, f), names="value")
            rows.append(w.VBox([image, caption, choice]))

        def on_apply(_):
            try:
                done = self.apply()
            except OSError as e:   # a photo in the way, a full disk: said where the student looks
                status.value = f"<b>{_html(e)}</b>"
                return
            status.value = say("moved {n} photo(s); build the data again to train on the cleaned folders", n=len(done))

        def on_undo(_):
            try:
                status.value = say("put back {n} photo(s)", n=self.undo())
            except OSError as e:
                status.value = f"<b>{_html(e)}</b>"

        apply.on_click(on_apply)
        undo.on_click(on_undo)
        return w.VBox([w.GridBox(rows, layout=w.Layout(grid_template_columns="repeat(4, 1fr)")),
                       w.HBox([apply, undo]), status])


def _html(text):
    """`text` (a name, a path, a message that holds one) as HTML that shows it as written, never as markup; bytes
    that are not UTF-8 shown as \\xNN."""
    return html.escape(display_name(str(text)))


def _thumbnail(file, side=160):
    import io
    img = load_image(file)
    img.thumbnail((side, side))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- try the model on a new photo

class TryIt:
    """Try the trained model on a photo it has never seen: each class's probability and where it looked.

    Example:
        >>> TryIt(learn).widget()                 # choose a photo; see the probabilities and a Grad-CAM map
        >>> probs, cam = TryIt(learn).predict("my_cat.jpg")
    """

    def __init__(self, learn):
        self.learn = learn

    def predict(self, image):
        """({class: probability}, Grad-CAM heat map) for `image`: a file, or its bytes."""
        return self._predict(self._input(image))

    def _input(self, image):
        """`image` (a file or its bytes) as the model takes it: decoded, upright, transformed for validation."""
        import io
        return self.learn.data.tfms.valid(load_image(io.BytesIO(image) if isinstance(image, (bytes, bytearray))
                                                     else image))

    def _predict(self, x):
        import torch

        from lessonlib.interpret import grad_cam
        learn = self.learn
        device = next(learn.model.parameters()).device
        with torch.no_grad():
            out = learn.model.eval()(x[None].to(device)).float().cpu()
        preds = learn.objective.to_preds(out)[0].numpy()
        probs = preds if learn.data.is_multi else np.exp(preds)
        return dict(zip(learn.data.classes, probs.round(4).tolist())), grad_cam(learn, x)

    def draw(self, image, fig=None):
        import matplotlib.pyplot as plt
        import torch
        import torch.nn.functional as F

        from lessonlib.engine.fonts import use_cjk_font
        use_cjk_font()
        x = self._input(image)              # decoded once, for the prediction and the picture
        probs, cam = self._predict(x)
        big = F.interpolate(torch.as_tensor(cam)[None, None], size=x.shape[1:], mode="bilinear")[0, 0]
        fig = fig or plt.figure(figsize=(8, 3.2))
        left, right = fig.subplots(1, 2)
        left.imshow(x.permute(1, 2, 0).numpy())
        left.imshow(big.numpy(), cmap="jet", alpha=0.4)
        left.set_title(say("where it looked (Grad-CAM)"))
        left.axis("off")
        names = list(probs)
        right.barh(names, [probs[n] for n in names])
        right.set(xlim=(0, 1), xlabel=say("probability"), title=say("its answer: {answer}", answer=max(probs, key=probs.get)))
        fig.tight_layout()
        return fig

    def widget(self):
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        upload = w.FileUpload(accept="image/*,.jfif", multiple=False, description=say("a photo"))
        out = w.Output()

        def show(_):
            files = uploaded_files(upload.value)
            if not files:
                return
            with out:
                out.clear_output(wait=True)
                try:
                    fig = self.draw(files[-1][1])
                    display(fig)
                    plt.close(fig)
                except Exception as e:   # an unreadable file: say so in the widget, do not break it
                    print(problem("{name} cannot be used: {kind}: {e}", name=files[-1][0], kind=type(e).__name__, e=e))

        upload.observe(show, names="value")
        return w.VBox([upload, out])


# ---------------------------------------------------------------- photos to practise on, as a phone exports them

def example_inbox(dest, per_class=40, seed=0):
    """A folder like the photos a student brings: `dest/猫/` and `dest/狗/`, from the packaged Dogs vs Cats photos,
    with what real collections hold: a photo stored sideways with an EXIF orientation (as phones do), one saved
    as .jfif (as browsers do), the same photo twice, one resized copy, a file that is not a photo at all, an
    iPhone .heic (unreadable here without a plugin) and a thumbnail too small to learn from. Returns `dest`."""
    import io

    from lessonlib import datasets
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(problem("{dest} exists already: give a new folder", dest=dest))
    source = datasets.get("dogscats-mini", smoke=False)
    rng = np.random.RandomState(seed)
    for cls, folder in (("猫", "cats"), ("狗", "dogs")):
        files = image_files(source / "train" / folder) + image_files(source / "valid" / folder)
        picked = [files[i] for i in sorted(rng.choice(len(files), per_class, replace=False))]
        out = dest / cls
        out.mkdir(parents=True)
        for i, f in enumerate(picked):
            shutil.copy2(f, out / f"IMG_{i:04d}.jpg")
    cats, dogs = dest / "猫", dest / "狗"
    photo = load_image(cats / "IMG_0000.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6                        # "turn me 90° clockwise to show me": stored lying on its side
    photo.transpose(Image.Transpose.ROTATE_90).save(cats / "IMG_0000.jpg", quality=92, exif=exif)
    (cats / "IMG_0001.jpg").rename(cats / "saved_from_the_web.jfif")
    shutil.copy2(dogs / "IMG_0002.jpg", dogs / "IMG_0002 (1).jpg")                      # the same photo twice
    small = load_image(dogs / "IMG_0003.jpg")
    small.resize((small.width * 3 // 4, small.height * 3 // 4)).save(dogs / "IMG_0003_edited.jpg", quality=80)
    (cats / "IMG_0004.jpg").write_bytes((cats / "IMG_0004.jpg").read_bytes()[:2000])   # cut off mid-copy
    (dogs / "notes.jpg").write_text("the dog park, Sunday")                              # not a photo at all
    (dogs / "IMG_5001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00")    # an iPhone photo
    buffer = io.BytesIO()
    load_image(cats / "IMG_0005.jpg").resize((40, 30)).save(buffer, format="PNG")
    (cats / "thumbnail.png").write_bytes(buffer.getvalue())
    return dest


def _moves_table(record):
    """The moves made ({from, to, why} each), as a table shown in the reader's language."""
    return Table(pd.DataFrame(record, columns=["from", "to", "why"]),
                 labels={"from": say("from"), "to": say("to"), "why": say("why")},
                 cells={"why": {"set aside while cleaning": say("set aside while cleaning")}})
