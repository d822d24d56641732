"""Image folders to DataLoaders: `ImageClassifierData.from_paths(PATH, tfms, bs)`, `.from_csv(...)` for labels in a
CSV (single- or multi-label), the datasets that read the images, and a Kaggle submission from a test set's
predictions.

The layout is fast.ai's: `PATH/train/<class>/*.jpg`, `PATH/valid/<class>/*.jpg` and, optionally, an unlabelled
`PATH/test/*.jpg`. The folders are checked in `lessonlib.folders`, every image is decoded once up front by
`lessonlib.images` (a broken file is skipped with its name), and only then are the loaders built.
"""
import codecs
import hashlib
import io
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lessonlib.engine.language import problem, say
from lessonlib.folders import DataChangedError, changed_files, check_layout, folder_state, image_files
from lessonlib.images import display_name, find_unreadable, load_image

__all__ = ["DeviceAugmentedBatches", "ImageClassifierData", "ImageDataset", "cache_fits", "data_signature",
           "get_cv_idxs", "read_csv_text", "read_label_csv", "split_resize", "submission_frame"]


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
        train, valid = len(self.trn_ds), len(self.val_ds)
        shown = (say("train {train}, valid {valid}, test {test} images", train=train, valid=valid,
                     test=len(self.test_ds))
                 if self.test_ds is not None else say("train {train}, valid {valid} images", train=train, valid=valid))
        return say("ImageClassifierData({path}: classes {classes}; {sizes}; sz={sz}, bs={bs})", path=self.path,
                   classes=self.classes, sizes=shown, sz=self.sz, bs=self.bs)

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
