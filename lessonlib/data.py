"""Image folders to DataLoaders: `ImageClassifierData.from_paths(PATH, tfms, bs)`.

The layout is fast.ai's: `PATH/train/<class>/*.jpg`, `PATH/valid/<class>/*.jpg` and,
optionally, an unlabelled `PATH/test/*.jpg`. The layout is checked before anything is
trained, every image is decoded once up front (so a broken file is reported by name,
never discovered as a crash inside a DataLoader worker), and every image reaches the
model as RGB, whatever mode it was saved in.
"""
import codecs
import contextlib
import hashlib
import io
import json
import os
import unicodedata
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lessonlib.engine.language import problem, say
from lessonlib.engine.runtime import home
from lessonlib.engine.storage import atomic_write, file_signature, load_or_none

__all__ = ["DataChangedError", "DeviceAugmentedBatches", "ImageClassifierData", "ImageDataset", "cache_fits",
           "changed_files", "check_layout", "data_signature", "files_digest", "find_unreadable", "folder_state",
           "folder_summary", "get_cv_idxs", "image_files", "load_image", "read_csv_text", "read_label_csv",
           "split_resize", "submission_frame", "to_rgb"]


def readable_extensions():
    """The file extensions the installed Pillow can decode: .jpg, .jpeg, .jfif (what browsers often save), .png,
    .webp, .tif, ... and .avif or .heic where this Pillow or a plugin reads them (stub formats left out).
    Asked each time, so a plugin registered after lessonlib was imported (pillow-heif) counts."""
    def decodes(fmt):
        factory = Image.OPEN.get(fmt, (None,))[0]
        return factory is not None and not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))
    return {ext for ext, fmt in Image.registered_extensions().items() if decodes(fmt)}

# Photo formats a student may have that Pillow reads only with a plugin: what to install when they are skipped.
PLUGIN_HELP = {
    ".heic": "pip install pillow-heif, then run `import pillow_heif; pillow_heif.register_heif_opener()` first",
    ".heif": "pip install pillow-heif, then run `import pillow_heif; pillow_heif.register_heif_opener()` first",
    ".avif": "pip install -U pillow (11.3 and later read AVIF), or convert the files to JPEG",
    ".svg": "a drawing, not a photo: export it as PNG",
}
# Bumped whenever the same file starts to decode to other pixels (caches of activations key on it).
READER = "upright-float-1"
LAYOUT_HELP = "expected PATH/{trn}/<class>/<image>, PATH/{val}/<class>/<image> (e.g. train/cats/cat.1.jpg)"


def to_rgb(img):
    """`img` as an RGB image: transparency onto white, 16-bit and CMYK converted properly."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in {"I", "I;16", "I;16B", "I;16L", "F"}:
        a = np.asarray(img, dtype=np.float64)
        top = a.max() if a.size else 0
        if img.mode.startswith("I;16"):
            top = 65535.0                       # 16-bit: the full range, whatever this image uses of it
        elif img.mode == "F" and top <= 1.0:
            top = 1.0                           # floating point scaled 0..1 (scientific TIFFs)
        else:
            top = 65535.0 if top > 255 else 255.0
        return Image.fromarray((a / top * 255).clip(0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")   # L, 1, CMYK, YCbCr, P without transparency


# Longer side / shorter side beyond which an image is refused: resizing its shorter side to `sz` would make
# the longer one enormous (a 1 x 5000 px strip at sz=224 becomes 224 x 1,120,000 px, 750 MB).
MAX_ASPECT = 20


def display_name(path):
    """`path` as text that can always be printed: bytes that are not UTF-8 are shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def load_image(path, min_side=None):
    """Decode `path` into an RGB PIL image; with `min_side`, JPEG decoding may skip detail beyond it.

    With `min_side`, an image more elongated than `MAX_ASPECT`:1 is refused before it is decoded (ValueError).
    """
    with Image.open(path) as img:
        w, h = img.size
        if min_side and (min(w, h) == 0 or max(w, h) / min(w, h) > MAX_ASPECT):
            mb = min_side * (min_side * max(w, h) / max(min(w, h), 1)) * 3 / 2**20
            raise ValueError(problem("{w}x{h} px is more elongated than {MAX_ASPECT}:1: resizing its shorter side "
                                     "to {min_side} px would need {mb:,.0f} MB",
                                     w=w, h=h, MAX_ASPECT=MAX_ASPECT, min_side=min_side, mb=mb))
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))   # DCT scaling: decode at 1/2, 1/4, 1/8 size when enough
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))   # a phone's photo, upright as its EXIF orientation says


def image_files(folder):
    """Sorted image files directly inside `folder`: every format the installed Pillow reads (hidden files ignored)."""
    readable = readable_extensions()
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in readable and not p.name.startswith("."))


def unused_files(folder):
    """{reason: [names]} for what `image_files(folder)` leaves out, so that nothing is dropped without a word."""
    found, readable = {}, readable_extensions()
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith("."):
            reason = say("hidden (a name starting with '.')")
        elif p.is_symlink() and not p.exists():
            reason = say("a link to a file that is not there")
        elif p.is_dir():
            reason = say("a folder (only the images directly inside a class or test folder are used)")
        elif p.suffix.lower() in readable:
            continue
        elif p.suffix.lower() in PLUGIN_HELP:   # an extension first: check_layout names these reasons
            reason = say("{suffix}: this Pillow cannot read it ({fix})", suffix=p.suffix.lower(),
                         fix=say(PLUGIN_HELP[p.suffix.lower()]))
        elif p.suffix:
            reason = say("{suffix}: not an image format Pillow reads here", suffix=p.suffix.lower())
        else:
            reason = say("no extension: not an image format Pillow reads here")
        found.setdefault(reason, []).append(p.name)
    return found


def _subfolders(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_folders(folder):
    """{class name: [its folders]} under `folder`. A name is compared in Unicode's composed form (NFC): macOS
    may write 猫 or é decomposed (NFD) in one folder and composed in another, and they are one class."""
    found = {}
    for name in _subfolders(folder):
        found.setdefault(unicodedata.normalize("NFC", name), []).append(folder / name)
    return dict(sorted(found.items()))


def check_layout(path, trn_name="train", val_name="valid", test_name=None):
    """Check the folder layout; return (classes, {split: (files, labels)}) or raise a clear error."""
    path = Path(path)
    help_ = say(LAYOUT_HELP, trn=trn_name, val=val_name)
    if not path.is_dir():
        raise FileNotFoundError(problem("{path} does not exist or is not a folder; {help_}",
                                        path=path, help_=help_))
    splits, unused = {}, {}
    classes = None
    for split in (trn_name, val_name):
        folder = path / split
        if not folder.is_dir():
            raise FileNotFoundError(problem("no {split}/ folder in {path} (it has {subfolders}); {help_}",
                                            split=split, path=path, subfolders=_subfolders(path), help_=help_))
        by_class = _class_folders(folder)
        found = list(by_class)
        if not found:
            loose = len(image_files(folder))
            if loose:
                raise ValueError(problem("{split}/ has no class folders but {loose} loose images: put each class's "
                                         "images in its own folder; {help_}", split=split, loose=loose, help_=help_))
            raise ValueError(problem("{split}/ has no class folders: put each class's images in its own folder; "
                                     "{help_}", split=split, help_=help_))
        if classes is None:
            classes = found
            if len(classes) < 2:
                raise ValueError(problem("{split}/ has only the class {classes}: a classifier needs at least two "
                                         "class folders; {help_}", split=split, classes=classes, help_=help_))
        elif found != classes:
            raise ValueError(problem("{split}/ has classes {found} but {trn_name}/ has {classes}: the folder names "
                                     "under {trn_name}/ and {split}/ must match",
                                     split=split, found=found, trn_name=trn_name, classes=classes))
        files, labels = [], []
        for label, cls in enumerate(classes):
            these = sorted(f for sub in by_class[cls] for f in image_files(sub))
            for sub in by_class[cls]:
                for reason, names in unused_files(sub).items():
                    unused.setdefault(reason, []).extend(f"{split}/{sub.name}/{n}" for n in names)
            if not these:
                others = [p.name for sub in by_class[cls] for p in sub.iterdir()][:5]
                formats = "".join(f" ({r})" for r in unused if r.startswith("."))   # the extensions' reasons
                if others:
                    raise ValueError(problem("{split}/{cls}/ has no images Pillow reads here; it holds {others}"
                                             "{formats}", split=split, cls=cls, others=others, formats=formats))
                raise ValueError(problem("{split}/{cls}/ has no images Pillow reads here{formats}", split=split,
                                         cls=cls, formats=formats))
            files += these
            labels += [label] * len(these)
        splits[split] = (files, labels)
    if test_name is not None:
        folder = path / test_name
        if not folder.is_dir():
            raise FileNotFoundError(problem("test_name={test_name!r} but there is no {test_name}/ folder in {path}",
                                            test_name=test_name, path=path))
        files = image_files(folder)
        if not files:
            raise ValueError(problem("{test_name}/ has no images: the test set is a flat folder of images",
                                     test_name=test_name))
        splits[test_name] = (files, [-1] * len(files))
        for reason, names in unused_files(folder).items():
            unused.setdefault(reason, []).extend(f"{test_name}/{n}" for n in names)
    _say_unused(unused)
    return classes, splits


def _say_unused(unused):
    """One warning for every file of the data set's folders that will not be used, grouped by reason."""
    unused = {r: names for r, names in unused.items() if names}
    if not unused:
        return
    n = sum(len(names) for names in unused.values())
    lines = [f"  {len(names)} {r}: {', '.join(display_name(x) for x in names[:3])}" + (", ..." if len(names) > 3
                                                                                       else "")
             for r, names in unused.items()]
    warnings.warn(problem("{n} file(s) in the data set's folders will not be used:\n{lines}", n=n,
                          lines="\n".join(lines)), stacklevel=3)


def folder_summary(path):
    """A table of how many images each split and class folder holds (one level of class folders)."""
    import pandas as pd

    rows = []
    for split in sorted(p for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith(".")):
        loose = image_files(split)
        if loose:
            rows.append({"folder": split.name, "class": "(unlabelled)", "images": len(loose)})
        for cls in _subfolders(split):
            rows.append({"folder": split.name, "class": cls, "images": len(image_files(split / cls))})
    return pd.DataFrame(rows, columns=["folder", "class", "images"])


def _decode_error(path, min_side):
    try:
        load_image(path, min_side)
        return None
    except Exception as e:   # any decoder error means "unusable image"; we report it, never crash
        return f"{type(e).__name__}: {e}"


def files_digest(files):
    """A hash of file names (any bytes) and `storage.file_signature`s: changes whenever any file does."""
    h = hashlib.sha256()
    for f in files:
        try:
            signature = file_signature(f)
        except FileNotFoundError:
            raise FileNotFoundError(problem("{fsdecode} was removed after the data was read: build the data again "
                                            "(ImageClassifierData.from_paths(...)) so that it lists the images "
                                            "there now", fsdecode=os.fsdecode(f))) \
                from None
        h.update(os.fsencode(f) + f"|{signature}\n".encode())
    return h.hexdigest()


class DataChangedError(FileNotFoundError):
    """Images were removed, moved or added in the data's folders after `ImageClassifierData` was built: the
    message names them and says to build the data again."""


def _image_names(folder):
    """The names of the images directly inside `folder` (as `image_files` picks them, without a stat per file)."""
    readable = readable_extensions()
    with os.scandir(folder) as entries:
        return frozenset(e.name for e in entries if not e.name.startswith(".") and e.is_file()
                         and os.path.splitext(e.name)[1].lower() in readable)


def folder_state(files):
    """{folder: (modification time, names of the images in it, names of `files` in it)} for the folders holding
    `files`, taken when the data is built; `changed_files` compares with it later."""
    wanted = {}
    for f in files:
        folder, name = os.path.split(os.fspath(f))
        wanted.setdefault(folder, set()).add(name)
    state = {}
    for folder, names in sorted(wanted.items()):
        try:
            state[folder] = (os.stat(folder).st_mtime_ns, _image_names(folder), frozenset(names))
        except FileNotFoundError:
            state[folder] = (None, frozenset(), frozenset(names))
    return state


def changed_files(state):
    """(the data's files gone from their folders, images that appeared there) since `state` (`folder_state`).

    Cheap: one stat per folder. A file removed, moved or added changes its folder's modification time, and only
    such a folder is listed again (renaming a file inside a folder changes that folder's time too).
    """
    gone, added = [], []
    for folder, (mtime, listed, wanted) in state.items():
        now = listed
        try:
            if os.stat(folder).st_mtime_ns != mtime:
                now = _image_names(folder)
        except FileNotFoundError:   # the whole folder went
            now = frozenset()
        gone += [Path(folder) / name for name in sorted(wanted - now)]
        added += [Path(folder) / name for name in sorted(now - listed)]
    return gone, added


def find_unreadable(files, min_side=None):
    """{file: reason} for the images that cannot be used; results cached by name, size, mtime and `min_side`."""
    key = hashlib.sha256(f"{files_digest(files)}|{min_side}|{MAX_ASPECT}|{READER}".encode()).hexdigest()[:24]
    cache = home() / "scans" / f"{key}.json"
    found = load_or_none(cache, lambda p: json.loads(p.read_text()), "the image scan cache")
    if isinstance(found, dict):
        return found
    with _truncated_is_an_error(), ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(lambda f: _decode_error(f, min_side), files))   # PIL releases the GIL
    bad = {str(f): r for f, r in zip(files, reasons) if r is not None}
    atomic_write(cache, lambda f: f.write(json.dumps(bad)), mode="w")   # ASCII: odd names are escaped
    return bad


@contextlib.contextmanager
def _truncated_is_an_error():
    """While the scan runs, a truncated file is an error, not grey pixels: PIL's process-wide switch
    (`ImageFile.LOAD_TRUNCATED_IMAGES`) is set so, then put back as the student had it."""
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def data_signature(data):
    """The classes and every image's place and size: the same for every copy of the same data set, on any machine
    (several processes check that they train on the same data with it)."""
    h = hashlib.sha256(repr(list(data.classes)).encode())
    for ds in (data.trn_ds, data.val_ds, data.test_ds):
        for f in (ds.fnames if ds is not None else []):
            h.update(f"{Path(os.path.relpath(f, data.path)).as_posix()}|{os.stat(f).st_size}\n".encode())
    return h.hexdigest()


def split_resize(tfm):
    """(decode-and-resize steps, the steps after them) of a `v2.Compose` that starts with ToImage and Resize.

    The first part gives the same tensor every time, so it can be computed once and kept; (None, tfm) for
    transforms that do not start that way.
    """
    from torchvision.transforms import v2

    steps = list(getattr(tfm, "transforms", []))
    if len(steps) < 2 or not isinstance(steps[0], v2.ToImage) or not isinstance(steps[1], v2.Resize):
        return None, tfm
    return v2.Compose(steps[:2]), (v2.Compose(steps[2:]) if steps[2:] else _unchanged)


def _unchanged(x):
    return x


class ImageDataset(Dataset):
    """Images and integer labels (-1 for an unlabelled test set) with a transform.

    With a `cache` (a dict, shared between the datasets of one `ImageClassifierData`), each image is decoded
    and resized once and kept as a uint8 tensor; only the random steps after the resize run every epoch.
    """

    def __init__(self, files, labels, tfm, min_side=None, cache=None):
        self.fnames = [Path(f) for f in files]
        labels = np.asarray(labels)
        self.y = labels.astype(np.float32) if labels.ndim == 2 else labels.astype(np.int64)   # multi-hot rows
        self.tfm = tfm
        self.min_side = min_side
        self.cache = cache
        self._resize, self._rest = split_resize(tfm) if cache is not None else (None, tfm)
        self._resize_key = repr(self._resize)

    def __len__(self):
        return len(self.fnames)

    def with_transform(self, tfm, cache=None):
        """The same images and labels with another transform (and image cache)."""
        return ImageDataset(self.fnames, self.y, tfm, self.min_side, cache)

    def get_image(self, i):
        """The i-th image as an RGB PIL image, untransformed."""
        return load_image(self.fnames[i], self.min_side)

    def resized(self, i):
        """The i-th image decoded and resized: from the cache, or decoded now and put there."""
        key = (self.fnames[i], self._resize_key)
        img = self.cache.get(key)
        if img is None:
            img = self.cache[key] = self._resize(self.get_image(i))
        return img

    def read(self, i):
        """The i-th image as the steps after the cache take it; a file that cannot be read is named."""
        try:
            return self.resized(i) if self._resize is not None else self.get_image(i)
        except Exception as e:   # e.g. the file changed after the check: name it
            raise RuntimeError(problem("could not read {display_name}: {e}",
                                       display_name=display_name(self.fnames[i]), e=e)) from e

    def __getitem__(self, i):
        y = self.y[i]
        return self._rest(self.read(i)), (torch.from_numpy(y) if y.ndim else int(y))


def cache_fits(n_images, sz, budget_mb):
    """True when `n_images` photos resized to `sz` px (4:3, uint8) fit in `budget_mb` megabytes."""
    return n_images * sz * (sz * 4 // 3) * 3 <= budget_mb * 2**20


def _check_arguments(tfms, bs):
    if not hasattr(tfms, "valid"):
        raise TypeError(problem("tfms must come from tfms_from_model(arch, sz, ...)"))
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise ValueError(problem("bs={bs!r}: the mini-batch size must be a positive whole number", bs=bs))
    if bs < 2:
        raise ValueError(problem("bs={bs}: the head's BatchNorm layers need at least 2 images per mini-batch to "
                                 "train; use bs=2 or more", bs=bs))


def _unreadable_with_warning(path, files, tfms):
    """Decode-check `files`; warn once, listing the broken ones; return {file: reason}."""
    bad = find_unreadable(files, tfms.load_size)
    if bad:
        listing = "\n".join(f"  {display_name(Path(f).relative_to(path))}: {reason}"
                            for f, reason in sorted(bad.items()))
        warnings.warn(problem("skipping {n_bad} image(s) that cannot be used:\n{listing}",
                              n_bad=len(bad), listing=listing), stacklevel=3)
    return bad


def get_cv_idxs(n, val_pct=0.2, seed=42):
    """Indices of a reproducible random validation set: `val_pct` of `n` rows, chosen with `seed`."""
    return np.sort(np.random.RandomState(seed).permutation(n)[:int(val_pct * n)])


def read_csv_text(csv_path):
    """(text, encoding) of a CSV as spreadsheets save it: UTF-8 with or without a byte-order mark, UTF-16 (Excel's
    "Unicode text"), or GB18030, which includes GBK and GB2312 (Excel's "CSV" on Chinese Windows)."""
    raw = Path(csv_path).read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), "UTF-16"
    if raw[1:2] == b"\x00" and raw[3:4] == b"\x00":   # UTF-16 without its mark: ASCII with a zero after each
        return raw.decode("utf-16-le"), "UTF-16"
    for codec, name in (("utf-8-sig", "UTF-8"), ("gb18030", "GBK/GB18030")):
        try:
            return raw.decode(codec), name
        except UnicodeDecodeError:
            continue
    raise ValueError(problem('{name} is not text in UTF-8, UTF-16 or GBK/GB18030: save it again as "CSV UTF-8" '
                             "(Excel: File > Save As > CSV UTF-8)", name=Path(csv_path).name))


def read_label_csv(csv_path, folder, suffix=".jpg"):
    """(files, tags per file) from a CSV of `name,tags` (tags separated by spaces), with clear errors.

    Any encoding `read_csv_text` knows. A first row that names an image of `folder` is data, not a header: it
    is kept, with a warning (a CSV saved without its header row must not lose its first image)."""
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(problem("no label file {csv_path}", csv_path=csv_path))
    text, _ = read_csv_text(csv_path)
    first = text.lstrip("\ufeff").split("\n", 1)[0].split(",")[0].strip()
    no_header = bool(first) and (Path(folder) / f"{first}{suffix}").is_file()
    if no_header:
        warnings.warn(problem("{name}: its first row names an image ({first}), so it has no header row: every row "
                              "is read as an image and its tags", name=csv_path.name, first=first), stacklevel=3)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, header=None if no_header else 0)
    except pd.errors.EmptyDataError:
        raise ValueError(problem("{name} is empty: it needs a header and one row per image, `image_name,tags`",
                                 name=csv_path.name)) from None
    except pd.errors.ParserError as e:
        raise ValueError(problem("{name}: {strip}: tags must be separated by spaces, within the second column. "
                                 "Write e.g. `train_1,haze primary`", name=csv_path.name, strip=str(e).strip())) from None
    if df.shape[1] < 2:
        raise ValueError(problem("{csv_path} needs two columns, image name and tags; it has {columns}",
                                 csv_path=csv_path, columns=list(df.columns)))
    if len(df) == 0:
        raise ValueError(problem("{name} has a header but no rows: list one image per row, `name,tag tag ...`",
                                 name=csv_path.name))
    names, tags = df.iloc[:, 0].str.strip(), df.iloc[:, 1].str.split()
    odd = [t for ts in tags for t in ts if any(c in t for c in ",;|")]
    if odd or df.shape[1] > 2:
        example = odd[0] if odd else ",".join(df.iloc[0, 1:])
        raise ValueError(problem("{name}: tags must be separated by spaces, within the second column; found "
                                 "{example!r}. Write e.g. `train_1,haze primary`",
                                 name=csv_path.name, example=example))
    dupes = sorted(names[names.duplicated()].unique())
    if dupes:
        raise ValueError(problem("{name}: {n_dupes} image(s) listed twice, e.g. {dupes}: give each image one row, "
                                 "with all its tags separated by spaces",
                                 name=csv_path.name, n_dupes=len(dupes), dupes=dupes[:5]))
    empty = [n for n, t in zip(names, tags) if not t]
    if empty:
        raise ValueError(problem("{name}: {n_empty} image(s) have no tags, e.g. {empty}",
                                 name=csv_path.name, n_empty=len(empty), empty=empty[:5]))
    files = [Path(folder) / f"{n}{suffix}" for n in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(problem("{n_missing} image(s) listed in {name} are not in {folder}, e.g. {missing} "
                                        "(is suffix={suffix!r} right?)",
                                        n_missing=len(missing), name=csv_path.name, folder=folder, missing=missing[:5], suffix=suffix))
    return files, list(tags)


class DeviceAugmentedBatches:
    """Mini-batches moved to the device and augmented there, all images of a batch at once."""

    def __init__(self, loader, augment, policy):
        self.loader, self.augment, self.policy = loader, augment, policy

    batch_size = property(lambda self: self.loader.batch_size, doc="Images per mini-batch.")

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield self.augment(self.policy.to_device(x)), y


class ImageClassifierData:
    """Train, validation and optional test images with their DataLoaders.

    Build it with `ImageClassifierData.from_paths(PATH, tfms=tfms, bs=64)`.
    `classes` are the class folder names; `trn_dl`, `val_dl`, `test_dl` the loaders;
    `fix_dl` goes over the training images in order without augmentation (for precompute);
    `policy` how the loaders use the hardware (`lessonlib.engine.policy`).
    """

    def __init__(self, path, classes, splits, tfms, bs, policy):
        """`splits`: {"train": ImageDataset, "valid": ImageDataset, "test": ImageDataset or None}."""
        self.path, self.classes, self.tfms, self.bs, self.policy = Path(path), list(classes), tfms, bs, policy
        n_images = sum(len(ds) for ds in splits.values() if ds is not None)
        use_cache = policy.image_cache_mb > 0 and cache_fits(n_images, tfms.sz, policy.image_cache_mb)
        self.image_cache = {} if use_cache else None   # (file, resize) -> uint8 tensor, shared by the datasets

        def cached(ds, tfm=None):
            return ds.with_transform(tfm or ds.tfm, self.image_cache) if ds is not None else None
        self.trn_ds, self.val_ds, self.test_ds = (cached(splits[k]) for k in ("train", "valid", "test"))
        if use_cache and policy.num_workers > 0:
            self._fill_image_cache()   # before the workers start, so that they share one copy
        self.trn_dl = self.loader(self.trn_ds, shuffle=True)
        self.fix_dl = self.loader(cached(self.trn_ds, tfms.valid))
        self.val_dl = self.loader(self.val_ds)
        self.test_dl = self.loader(self.test_ds) if self.test_ds is not None else None
        self._base_trn_dl = None
        self._folders = folder_state(f for ds in (self.trn_ds, self.val_ds, self.test_ds) if ds is not None
                                     for f in ds.fnames)   # what the folders held when it was built (check_unchanged)

    def _fill_image_cache(self):
        """Decode and resize every image now, in threads."""
        jobs = [(ds, i) for ds in (self.trn_ds, self.val_ds, self.test_ds) if ds is not None for i in range(len(ds))]
        with ThreadPoolExecutor(max(self.policy.num_workers, 1)) as pool:
            for _ in tqdm(pool.map(lambda job: job[0].read(job[1]), jobs), total=len(jobs), desc=say("decoding images"),
                          leave=False, disable=None):
                pass

    @property
    def num_workers(self):
        return self.policy.num_workers

    def check_unchanged(self):
        """A DataChangedError naming the images removed, moved or added in the data's folders since it was built
        (photos cleaned, relabelled, uploaded), before any loader reads them: a stat of each folder, no image read.
        Every loader this data hands out is checked so (`split_loader`, `augmented_batches`)."""
        gone, added = changed_files(self._folders)
        if not gone and not added:
            return

        def names(files):
            shown = ", ".join(display_name(os.path.relpath(f, self.path)) for f in files[:3])
            return shown + (say(" and {n} more", n=len(files) - 3) if len(files) > 3 else "")
        changes = [say("{files} removed or moved", files=names(gone))] if gone else []
        changes += [say("{files} added", files=names(added))] if added else []
        raise DataChangedError(problem("the images under {path} changed after the data was read ({changes}): build "
                                       "the data again (ImageClassifierData.from_paths(...), or from_csv) so that it "
                                       "lists the images there now", path=display_name(self.path),
                                       changes="; ".join(changes)))

    def split_loader(self, split):
        """The loader of "train" (in order, not augmented: what precompute reads), "valid" or "test"."""
        self.check_unchanged()
        if split == "test" and self.test_dl is None:
            raise ValueError(problem("this data has no test set: pass test_name='test' to "
                                     "ImageClassifierData.from_paths"))
        return {"train": self.fix_dl, "valid": self.val_dl, "test": self.test_dl}[split]

    def augmented_batches(self):
        """Training mini-batches augmented per batch on the device (`policy.augment_on_device`) when the
        transforms allow it, else the usual per-image loader."""
        self.check_unchanged()
        if self.tfms.batch_augment is None or not self.policy.augment_on_device:
            return self.trn_dl
        return DeviceAugmentedBatches(self.base_trn_dl, self.tfms.batch_augment, self.policy)

    @property
    def base_trn_dl(self):
        """Training images resized and randomly cropped only, for augmentation per batch on the device."""
        if self.tfms.base is None:
            raise ValueError(problem("these transforms have no batch augmentation"))
        if self._base_trn_dl is None:
            self._base_trn_dl = self.loader(self.trn_ds.with_transform(self.tfms.base, self.image_cache), shuffle=True)
        return self._base_trn_dl

    @property
    def c(self):
        """Number of classes."""
        return len(self.classes)

    @property
    def sz(self):
        return self.tfms.sz

    @property
    def trn_y(self):
        return self.trn_ds.y

    @property
    def val_y(self):
        return self.val_ds.y

    @property
    def is_multi(self):
        """True for multi-label data: each image has a 0/1 vector of tags rather than one class."""
        return self.trn_ds.y.ndim == 2

    def loader(self, ds, shuffle=False):
        """A DataLoader over `ds` with this data's batch size and the policy's workers and pinned memory.

        Under several processes (`lessonlib.engine.distributed`), each process's loader yields its share of each
        global mini-batch of `bs * processes` images.
        """
        workers, policy = self.policy.num_workers, self.policy
        common = dict(batch_size=self.bs, num_workers=workers, pin_memory=policy.pin_memory,
                      persistent_workers=workers > 0)
        if policy.sharded:
            from lessonlib.engine.distributed import ShardedSampler
            sampler = ShardedSampler(len(ds), self.bs, policy.rank, policy.world_size, shuffle,
                                     seed=torch.initial_seed() % 2**31)
            return DataLoader(ds, sampler=sampler, **common)
        # A final mini-batch of one image would break BatchNorm in training: drop only that case.
        drop_last = shuffle and len(ds) % self.bs == 1
        return DataLoader(ds, shuffle=shuffle, drop_last=drop_last, **common)

    def set_size(self, tfms):
        """The same images with other transforms (e.g. a larger `sz`): a new ImageClassifierData."""
        def again(ds, tfm):
            return ImageDataset(ds.fnames, ds.y, tfm, tfms.load_size) if ds is not None else None
        splits = {"train": again(self.trn_ds, tfms.train), "valid": again(self.val_ds, tfms.valid),
                  "test": again(self.test_ds, tfms.valid)}
        resized = type(self)(self.path, self.classes, splits, tfms, self.bs, self.policy)
        resized._folders = self._folders   # the same images: what changed since this data was read still counts
        return resized

    def __repr__(self):
        test = f", test {len(self.test_ds)}" if self.test_ds is not None else ""
        return (f"ImageClassifierData({self.path}: classes {self.classes}; train {len(self.trn_ds)}, "
                f"valid {len(self.val_ds)}{test} images; sz={self.sz}, bs={self.bs})")

    @classmethod
    def from_paths(cls, path, tfms, bs=64, trn_name="train", val_name="valid", test_name=None, num_workers=None,
                   device=None):
        """Read an image-folder data set.

        Args:
            path: folder holding `trn_name/<class>/`, `val_name/<class>/` and optionally `test_name/`.
            tfms: the result of `tfms_from_model(...)`.
            bs: mini-batch size.
            trn_name, val_name, test_name: the split folders' names (test_name=None: no test set).
            num_workers: DataLoader worker processes (None: the policy's choice, see `lessonlib.engine.policy`).
            device: "cpu", "cuda", "cuda:1", ... or a `Policy` (None: the best device present). The policy
                decides the loader workers, pinned memory, and whether decoded, resized images are kept in
                memory (on a GPU, when they fit in LESSONLIB_IMAGE_CACHE_MB, default 512).

        Example:
            >>> data = ImageClassifierData.from_paths(PATH, tfms=tfms_from_model("resnet34", 224), bs=64)
        """
        _check_arguments(tfms, bs)
        classes, splits = check_layout(path, trn_name, val_name, test_name)
        bad = _unreadable_with_warning(path, [f for files, _ in splits.values() for f in files], tfms)
        datasets = {}
        for split, (files, labels) in splits.items():
            keep = [(f, y) for f, y in zip(files, labels) if str(f) not in bad]
            if split != test_name:
                for label, name in enumerate(classes):
                    if not any(y == label for _, y in keep):
                        raise ValueError(problem("{split}/{name}/ has no readable images left",
                                                 split=split, name=name))
            tfm = tfms.train if split == trn_name else tfms.valid
            datasets[split] = ImageDataset([f for f, _ in keep], [y for _, y in keep], tfm, tfms.load_size)
        splits = {"train": datasets[trn_name], "valid": datasets[val_name],
                  "test": datasets.get(test_name) if test_name is not None else None}
        return cls(path, classes, splits, tfms, bs, _policy(device, num_workers))

    @classmethod
    def from_csv(cls, path, folder, csv_fname, tfms, suffix=".jpg", val_idxs=None, bs=64, test_name=None,
                 device=None):
        """Read images listed in a CSV of `image_name,tags`; several tags per image make it multi-label.

        Args:
            path: the data set's folder; `folder` (images) and `csv_fname` are inside it.
            suffix: appended to each name in the CSV to find its file.
            val_idxs: rows to hold out for validation (default: a seeded 20%, see `get_cv_idxs`).
            test_name: optional folder of unlabelled images.
            device: as for `from_paths` (a `Policy` also sets the loader workers: `policy.but(num_workers=2)`).

        Example:
            >>> data = ImageClassifierData.from_csv(PATH, "train-jpg", "train_v2.csv", tfms=tfms, bs=64)
        """
        _check_arguments(tfms, bs)
        path = Path(path)
        files, tags = read_label_csv(path / csv_fname, path / folder, suffix)
        classes = sorted({t for ts in tags for t in ts})
        multi = any(len(ts) > 1 for ts in tags)
        if multi:
            labels = np.zeros((len(files), len(classes)), dtype=np.float32)
            for row, ts in enumerate(tags):
                labels[row, [classes.index(t) for t in ts]] = 1
        else:
            labels = np.array([classes.index(ts[0]) for ts in tags])
        if len(classes) < 2:
            raise ValueError(problem("{csv_fname} has only the class {classes}: a classifier needs at least two "
                                     "classes (or tags)", csv_fname=csv_fname, classes=classes))
        test_files = image_files(path / test_name) if test_name else []
        bad = _unreadable_with_warning(path, files + test_files, tfms)
        is_val = _validation_mask(val_idxs, len(files))
        keep = np.array([str(f) not in bad for f in files])

        def subset(mask, tfm):
            return ImageDataset([f for f, m in zip(files, mask) if m], labels[mask], tfm, tfms.load_size)
        trn_ds, val_ds = subset(~is_val & keep, tfms.train), subset(is_val & keep, tfms.valid)
        if len(trn_ds) < 2 or len(val_ds) == 0:
            raise ValueError(problem("the split left {n_trn_ds} training and {n_val_ds} validation images: "
                                     "training needs at least 2 and validation at least 1 (val_idxs chooses the "
                                     "validation rows)", n_trn_ds=len(trn_ds), n_val_ds=len(val_ds)))
        seen = trn_ds.y.sum(0) > 0 if multi else np.isin(np.arange(len(classes)), trn_ds.y)
        if not seen.all():
            raise ValueError(problem("{unseen} appear only in validation rows: the model cannot learn them; put "
                                     "some of those images in the training rows",
                                     unseen=[c for c, s in zip(classes, seen) if not s]))
        test_ds = None
        if test_name:
            good = [f for f in test_files if str(f) not in bad]
            test_ds = ImageDataset(good, [-1] * len(good), tfms.valid, tfms.load_size)
        return cls(path, classes, {"train": trn_ds, "valid": val_ds, "test": test_ds}, tfms, bs, _policy(device))


def _validation_mask(val_idxs, n):
    """A boolean mask of the validation rows from `val_idxs` (default: a seeded 20%), checked."""
    if val_idxs is None:
        idxs = get_cv_idxs(n)
    else:
        idxs = np.asarray(val_idxs)
        if idxs.dtype == bool or not np.issubdtype(idxs.dtype, np.integer) or idxs.ndim != 1:
            raise ValueError(problem("val_idxs must be a list of row numbers (e.g. get_cv_idxs({n})), got "
                                     "{val_idxs!r}", n=n, val_idxs=val_idxs))
        if len(idxs) and (idxs.min() < 0 or idxs.max() >= n):
            raise ValueError(problem("val_idxs has row numbers outside 0..{last} (the CSV has {n} rows): {outside}",
                                     last=n - 1, n=n, outside=sorted(int(i) for i in idxs if i < 0 or i >= n)[:5]))
    mask = np.zeros(n, dtype=bool)
    mask[idxs] = True
    return mask


def _policy(device, num_workers=None):
    from lessonlib.engine.policy import resolve_policy

    policy = resolve_policy(device)
    if num_workers is not None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(problem("num_workers={num_workers!r}: a whole number of loader processes, 0 or more",
                                     num_workers=num_workers))
        policy = policy.but(num_workers=num_workers)
    return policy


def submission_frame(data, probs, positive):
    """A Kaggle-style submission: `id` from each test file's name, `label` the probability of `positive`."""
    import pandas as pd

    if data.test_ds is None:
        raise ValueError(problem("this data has no test set: pass test_name='test' to "
                                 "ImageClassifierData.from_paths"))
    probs = np.asarray(probs)
    if probs.shape != (len(data.test_ds), data.c):
        raise ValueError(problem("probs must be (test images, classes) = {expected}, got {shape}",
                                 expected=(len(data.test_ds), data.c), shape=probs.shape))
    stems = [f.stem for f in data.test_ds.fnames]
    numbers = [int(x) for x in stems] if all(x.isdigit() for x in stems) else None
    # numbers as numbers (Kaggle's ids: 0001.jpg is 1) unless that makes two images one: 001.jpg and 1.jpg
    ids = numbers if numbers is not None and len(set(numbers)) == len(numbers) else stems
    twice = sorted(str(x) for x, n in Counter(ids).items() if n > 1)
    if twice:
        raise ValueError(problem("test images in different folders share the names {twice}: a submission needs one "
                                 "id per image; rename them, or keep the test images in one folder",
                                 twice=twice[:5]))
    return pd.DataFrame({"id": ids, "label": probs[:, data.classes.index(positive)]})
