"""The data catalog: `get(name)` returns a local folder holding that data set.

Where each one comes from, in order:
1. a copy already under the data folder (`LESSONLIB_DATA`, default LESSONLIB_HOME/data);
2. the mirror `LESSONLIB_DATA_MIRROR`, if set (a classroom's shared, read-only folder
   holding `dogscats-mini/`, `planet-mini/`, ...);
3. for the teaching sets (`dogscats-mini`, `planet-mini`, `mnist-digits`, `mnist-5k`): the copy that travels
   inside lessonlib itself (`lessonlib/teaching_sets/`), so they work offline with nothing else;
4. the real download, where the data set has one: with a progress bar, retries that resume a
   dropped connection, a size and checksum check, and an extraction that refuses paths escaping
   its folder and puts the data set in place whole or not at all. Two processes asking at once
   download it once, and both get it.

In smoke mode (`LESSONLIB_SMOKE=1`) the sets are cut down to a few images per class, written once
under the data folder; the line printed says so.
"""
import csv
import hashlib
import os
import shutil
import struct
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lessonlib.engine.language import problem, say
from lessonlib.engine.runtime import home, mirror, smoke_mode
from lessonlib.engine.settings import settings
from lessonlib.engine.storage import atomic_dir, download, file_lock, file_signature

__all__ = ["CATALOG", "Entry", "PACKAGED", "data_root", "download_and_extract", "get", "open_zip",
           "safe_extract", "smoke_sample", "smoke_sample_csv", "verify_packaged", "zip_member_name"]

PACKAGED = Path(__file__).resolve().parent / "teaching_sets"


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
    convert: str = None         # name of a function (extracted folder, new folder) that writes lessonlib's layout
    packaged: bool = False      # a copy travels inside lessonlib (lessonlib/teaching_sets/<name>)
    smoke_per_class: tuple = None   # (train, valid) images per class in smoke mode, for folder layouts
    smoke_rows: int = None          # rows of the label CSV kept in smoke mode, for CSV layouts


# Sizes and MD5 sums of fast.ai's archives: fastai's own fastai/data/checks.txt.
CATALOG = {e.name: e for e in [
    Entry("dogscats", "fast.ai's Dogs vs Cats: 23,000 train and 2,000 valid photos (839 MB download)",
          url="https://s3.amazonaws.com/fast-ai-sample/dogscats.tgz", size=839_285_364,
          md5="3e483c8d6ef2175e9d395a6027eb92b7", inner="dogscats", smoke_per_class=(16, 8)),
    Entry("oxford-pets", "Oxford-IIIT Pet as cats vs dogs: 3,680 train and 3,669 valid photos (torchvision)",
          fetch="_fetch_oxford_pets", smoke_per_class=(16, 8)),
    Entry("planet-sample", "fast.ai's Planet sample: 1,000 satellite chips, 256 px, 17 tags (16 MB download)",
          url="https://s3.amazonaws.com/fast-ai-sample/planet_sample.tgz", size=15_523_994,
          md5="8bfb174b3162f07fbde09b54555bdb00", inner="planet_sample", convert="_planet_layout", smoke_rows=120),
    Entry("dogscats-mini", "1,100 real Dogs vs Cats photos: 800 train, 200 valid, 100 unlabelled test",
          packaged=True, smoke_per_class=(16, 8)),
    Entry("planet-mini", "502 real Planet satellite chips, 128 px, 17 tags (train_v2.csv)",
          packaged=True, smoke_rows=120),
    Entry("mnist-digits", "20 real MNIST digits, 2 per class, 28x28 greyscale PNGs", packaged=True),
    Entry("mnist-5k", "5,000 real MNIST digits, 500 per class, in one CSV (mnist_5k.csv.gz)", packaged=True),
]}


def data_root():
    """Writable folder where data sets are downloaded or derived (`LESSONLIB_DATA`)."""
    value = settings().data
    if not value:
        return home() / "data"
    root = Path(value).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(problem("LESSONLIB_DATA={value} cannot be used ({reason}): point it at a folder you can "
                              "write to, or unset it to use LESSONLIB_HOME/data",
                              value=value, reason=e.strerror or e)) from e
    return root


def get(name, smoke=None):
    """A local folder holding data set `name` (see `CATALOG`), fetching it the first time.

    Args:
        name: "dogscats-mini", "planet-mini", "mnist-digits", "mnist-5k" (these come with lessonlib), or
            "dogscats", "oxford-pets", "planet-sample" (downloaded once).
        smoke: cut down to a few images per class; default: on in smoke mode (`LESSONLIB_SMOKE=1`).

    Example:
        >>> PATH = get("dogscats-mini")
        >>> sorted(p.name for p in PATH.iterdir())
        ['test', 'train', 'valid']
    """
    if name not in CATALOG:
        raise ValueError(problem("unknown data set {name!r}: the catalog has {CATALOG}",
                                 name=name, CATALOG=sorted(CATALOG)))
    entry = CATALOG[name]
    path = _locate(entry)
    if (smoke_mode() if smoke is None else smoke) and (entry.smoke_per_class or entry.smoke_rows):
        # keyed on where the full set lives, its files and the sample's size, so nothing is served stale
        size = entry.smoke_per_class or entry.smoke_rows
        tag = hashlib.sha256(f"{path.resolve()}|{_tree_digest(path)}|{size}".encode()).hexdigest()[:12]
        dest = data_root() / f"{name}-smoke-{tag}"
        if entry.smoke_per_class:
            path = smoke_sample(path, entry.smoke_per_class, dest)
        else:
            path = smoke_sample_csv(path, entry.smoke_rows, dest)
        print(say("smoke mode: using a small sample of {name} at {path}", name=name, path=path))
    return path


def _tree_digest(path):
    """A hash of every file's path, size and modification time under `path`."""
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(root, f)
            h.update(os.fsencode(path) + f"|{file_signature(path)}\n".encode())
    return h.hexdigest()


def _local(entry):
    local = data_root() / entry.name
    return local if local.is_dir() else None


def _locate(entry):
    found = _local(entry)
    if found:
        return found
    shared = mirror()
    if shared is not None and (shared / entry.name).is_dir():
        return shared / entry.name
    if entry.packaged and (PACKAGED / entry.name).is_dir():
        problems = verify_packaged([entry.name])   # 50 ms for dogscats-mini: checked at every get()
        if problems:
            listed = ", ".join(f"{rel} ({why})" for rel, why in sorted(problems.items())[:3])
            raise ValueError(problem("lessonlib's own copy of {name} ({folder}) has changed: {listed}{more}. It "
                                     "is the lessons' reference data: copy it elsewhere before changing it "
                                     "(shutil.copytree), and reinstall lessonlib to mend it (pip install "
                                     "--force-reinstall lessonlib, or `make install` in the project).",
                                     name=entry.name, folder=PACKAGED / entry.name, listed=listed, more=' ...' if len(problems) > 3 else ''))
        return PACKAGED / entry.name
    if not (entry.url or entry.fetch):
        where = [f"lessonlib's own copy ({PACKAGED / entry.name}) is missing", f"it is not in {data_root()}",
                 f"LESSONLIB_DATA_MIRROR is {'not set' if shared is None else f'{shared}, without it'}"]
        raise FileNotFoundError(problem("{name} is not available: {where}. Reinstall lessonlib from the project "
                                        "(`pip install .` in a full checkout), or copy the folder {name}/ into "
                                        "{data_root}; data/README.md says where each data set comes from.",
                                        name=entry.name, where='; '.join(where), data_root=data_root()))
    with file_lock(data_root() / f".{entry.name}.lock"):   # a second process waits here, then finds it done
        found = _local(entry)
        if found:
            return found
        try:
            if entry.url:
                return download_and_extract(entry.url, data_root() / entry.name, entry.size, entry.md5, entry.inner,
                                            convert=globals()[entry.convert] if entry.convert else None)
            return globals()[entry.fetch](data_root() / entry.name)
        except OSError as e:   # no network, DNS failure, refused connection, disk full ...
            raise FileNotFoundError(problem("{name} is not in {data_root} nor in the mirror, and fetching it "
                                            "failed ({kind}: {e}). See data/README.md to get it by hand.",
                                            name=entry.name, data_root=data_root(), kind=type(e).__name__, e=e)) from e


# ---------------------------------------------------------------- download, check, extract

MAX_UNPACKED = 50         # an archive may unpack to at most this many times its own size ...
UNPACKED_FLOOR = 2**28    # ... or to 256 MiB, whichever is more: no decompression bombs (photos and JPEG data
                          # sets barely compress: fast.ai's dogscats unpacks to 1.0x its size, a phone's zip too)
MAX_MEMBERS = 200_000     # nor a million empty files (dogscats, the largest set here, holds about 37,500)


def safe_extract(archive, dest):
    """Extract a .zip or .tar(.gz) into `dest`, refusing any member that would land outside it, and an archive
    that would unpack to more than `MAX_UNPACKED` times its size (or `UNPACKED_FLOOR` bytes, if more) or holds more
    than `MAX_MEMBERS` entries."""
    archive, dest = Path(archive), Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    limit = max(UNPACKED_FLOOR, MAX_UNPACKED * archive.stat().st_size)
    if zipfile.is_zipfile(archive):
        with open_zip(archive) as z:
            for member in z.namelist():
                _refuse_escape(member, dest)
            _refuse_lossy_zip(archive, z.infolist())
            _refuse_too_large(archive, sum(i.file_size for i in z.infolist()), limit, len(z.infolist()))
            z.extractall(dest, members=z.infolist())
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            _refuse_too_large(archive, sum(m.size for m in members if m.isfile()), limit, len(members))
            for member in members:
                _refuse_escape(member.name, dest)
                if member.issym():     # a symbolic link's target is relative to the link's own folder
                    _refuse_escape(os.path.join(os.path.dirname(member.name), member.linkname), dest)
                if member.islnk():     # a hard link's target is a member name: relative to the archive's top
                    _refuse_escape(member.linkname, dest)
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    raise ValueError(problem("refusing to extract {name!r}: not a file, folder or link",
                                             name=member.name))
            if hasattr(tarfile, "data_filter"):   # Python 3.11.4+ / 3.10.12+
                t.extractall(dest, filter="data")
            else:   # older Pythons (Debian 12's 3.11.2): the checks above stand in for the "data" filter
                t.extractall(dest)
    else:
        raise ValueError(problem("{archive} is neither a zip nor a tar archive", archive=archive))
    return dest


UTF8_NAMES = 0x800        # general purpose bit 11: the member's name is UTF-8
UNICODE_PATH = 0x7075     # Info-ZIP's Unicode Path extra field: the name again, in UTF-8
UNIX_HOSTS = {3, 19}      # "made by" Unix or OS X: names in the locale's encoding, UTF-8 today (Linux, macOS)


def open_zip(archive):
    """`archive` as a `zipfile.ZipFile` whose members carry the names their writer meant (`zip_member_name`)."""
    z = zipfile.ZipFile(archive)
    for info in z.infolist():
        info.filename = zip_member_name(info)
    z.NameToInfo = {info.filename: info for info in z.infolist()}
    return z


def zip_member_name(info):
    """The name of the zip member `info` (of a ZipFile opened without `metadata_encoding`) as its writer meant it.

    A zip says a name is UTF-8 with a flag (bit 11); without it, the standard says CP437, which is how zipfile
    reads it. But Windows' own "compress" writes names in the machine's code page (GBK on a Chinese Windows:
    微信图片_1.jpg would read ╬ó╨┼═╝╞¼_1.jpg, 猫/ would read ├¿/), and macOS's Archive Utility and Info-ZIP write
    UTF-8 without the flag. So: the flag's UTF-8; else Info-ZIP's Unicode Path field, where its checksum matches
    the name; else, for a zip made on Unix or macOS, UTF-8 if the bytes are UTF-8, then GBK (CP936); for one made
    on Windows (or DOS), GBK first, then UTF-8 (猫 in GBK is also valid UTF-8: è); else CP437 as zipfile read it.
    """
    if info.flag_bits & UTF8_NAMES:
        return info.filename
    raw = info.orig_filename.encode("cp437")   # zipfile decoded the bytes as CP437: this gives them back
    name = _unicode_path(info.extra, raw)
    if name is None:
        for encoding in ("utf-8", "gbk") if info.create_system in UNIX_HOSTS else ("gbk", "utf-8"):
            try:
                name = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            return info.filename
    return zipfile.ZipInfo(name).filename   # cut at a NUL and with '/' between folders, as zipfile does with any name


def _unicode_path(extra, raw):
    """The UTF-8 name in Info-ZIP's Unicode Path extra field (0x7075) of a member whose stored name is `raw`, or
    None: absent, of another version, or written for another name (its CRC-32 does not match: the name was
    changed by a tool that did not update the field)."""
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        data, extra = extra[4:4 + size], extra[4 + size:]
        if kind == UNICODE_PATH and len(data) > 5 and data[0] == 1 \
                and struct.unpack("<L", data[1:5])[0] == zlib.crc32(raw):
            try:
                return data[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _refuse_too_large(archive, unpacked, limit, members):
    if unpacked > limit:
        raise ValueError(problem("refusing to extract {name}: it would unpack to {mb:,.0f} MB, more than the "
                                 "{limit:,.0f} MB allowed for an archive of its size ({MAX_UNPACKED}x, at least "
                                 "{floor:,.0f} MB); it is damaged or not the data it claims to be",
                                 name=archive.name, mb=unpacked / 2**20, limit=limit / 2**20,
                                 MAX_UNPACKED=MAX_UNPACKED, floor=UNPACKED_FLOOR / 2**20))
    if members > MAX_MEMBERS:
        raise ValueError(problem("refusing to extract {name}: it holds {n:,} entries, more than the {most:,} "
                                 "allowed; it is damaged or not the data it claims to be",
                                 name=archive.name, n=members, most=MAX_MEMBERS))


def _refuse_lossy_zip(archive, members):
    """A zip that cannot be unpacked whole: protected by a password, or holding two files of one name, or a file
    and a folder of one name (one would be lost, or the extraction would fail half way)."""
    if any(m.flag_bits & 0x1 for m in members):
        raise ValueError(problem("refusing to extract {name}: it is protected by a password; unzip it yourself, "
                                 "with its password", name=archive.name))
    names, folders = set(), set()
    for m in members:
        parts = PurePosixPath(m.filename.rstrip("/")).parts
        folders.update(str(PurePosixPath(*parts[:i])) for i in range(1, len(parts)))
        if not m.is_dir():
            if str(PurePosixPath(*parts)) in names:
                raise ValueError(problem("refusing to extract {name}: it holds two files named {member!r}, and "
                                         "unpacking it would lose one", name=archive.name, member=m.filename))
            names.add(str(PurePosixPath(*parts)))
    both = sorted(names & folders)
    if both:
        raise ValueError(problem("refusing to extract {name}: it holds a file and a folder both named {member!r}, "
                                 "and unpacking it would lose one", name=archive.name, member=both[0]))


def _refuse_escape(member, dest):
    target = (dest / member).resolve()
    if target != dest and dest not in target.parents:
        raise ValueError(problem("refusing to extract {member!r}: it would land outside {dest}",
                                 member=member, dest=dest))


def download_and_extract(url, dest, size=None, md5=None, inner=None, convert=None):
    """Download an archive next to `dest`, extract it, and put its data folder (`inner`) in place as `dest`.

    `convert(extracted, new)`, if given, writes lessonlib's layout into `new` from the extracted folder.
    `dest` appears whole or not at all; the archive is deleted once extracted.
    """
    dest = Path(dest)
    archive = dest.parent / Path(urllib.parse.urlparse(url).path).name
    if dest.is_dir():
        return dest
    with file_lock(dest.parent / f".{dest.name}.extract.lock"):   # a second process waits, then finds it done
        if dest.is_dir():
            return dest
        return _fetch_and_extract(url, archive, dest, size, md5, inner, convert)


def _fetch_and_extract(url, archive, dest, size, md5, inner, convert):
    download(url, archive, size, md5)

    def write(tmp):
        work = tmp / ".extracted"
        safe_extract(archive, work)
        src = work / inner if inner else work
        if not src.is_dir():
            raise ValueError(problem("{name} has no folder {inner!r} inside", name=archive.name, inner=inner))
        if convert is not None:
            convert(src, tmp)
        else:
            for child in src.iterdir():
                os.rename(child, tmp / child.name)
        shutil.rmtree(work)
    try:
        atomic_dir(dest, write)
    except (EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error) as e:
        archive.unlink(missing_ok=True)   # damaged: the next call downloads it again instead of failing the same way
        raise OSError(problem("{name} is damaged ({kind}: {e}); it was deleted: run it again to download it "
                              "afresh", name=archive.name, kind=type(e).__name__, e=e)) from e
    archive.unlink(missing_ok=True)
    return dest


def _planet_layout(src, dest):
    """fast.ai's planet_sample (`labels.csv`, `train/*.jpg`) in the Kaggle layout `from_csv` reads.

    `train-jpg/` holds the chips unchanged (4-channel JPEGs that lessonlib reads as RGB) and
    `train_v2.csv` the labels, `image_name,tags`.
    """
    (dest / "train-jpg").mkdir()
    with open(src / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0][:2]] != ["image_name", "tags"]:
        raise ValueError(problem("{csv} does not start with the header image_name,tags",
                                 csv=src / 'labels.csv'))
    for name, _ in rows[1:]:
        os.rename(src / "train" / f"{name}.jpg", dest / "train-jpg" / f"{name}.jpg")
    with open(dest / "train_v2.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


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
    return atomic_dir(Path(dest), write)


# ---------------------------------------------------------------- derived samples

def smoke_sample(src, per_class, dest):
    """A small copy of a folder-layout data set: the first `per_class` images of each class and split."""
    from lessonlib.folders import image_files

    src, dest = Path(src), Path(dest)
    if dest.is_dir():
        return dest
    n_train, n_valid = per_class

    def write(tmp):
        for split, n in (("train", n_train), ("valid", n_valid)):
            for cls_dir in sorted(p for p in (src / split).iterdir() if p.is_dir()):
                (tmp / split / cls_dir.name).mkdir(parents=True)
                for f in image_files(cls_dir)[:n]:
                    shutil.copyfile(f, tmp / split / cls_dir.name / f.name)
        test = [d for d in ("test", "test1") if (src / d).is_dir()]
        if test:
            (tmp / "test").mkdir()
            for f in image_files(src / test[0])[:n_valid]:
                shutil.copyfile(f, tmp / "test" / f.name)
    return atomic_dir(dest, write)


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
            shutil.copyfile(src / folder / f"{name}{suffix}", tmp / folder / f"{name}{suffix}")
    return atomic_dir(dest, write)


# ---------------------------------------------------------------- the teaching sets' integrity

def verify_packaged(names=None):
    """{file: problem} for the packaged teaching sets' files that differ from `teaching_sets/SHA256SUMS` (empty: all intact)."""
    expected = {}
    for line in (PACKAGED / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        if names is None or rel.split("/", 1)[0] in names:
            expected[rel] = digest
    problems = {}
    for rel, digest in expected.items():
        path = PACKAGED / rel
        if not path.is_file():
            problems[rel] = "missing"
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems[rel] = "changed"
    for name in names or sorted({rel.split("/", 1)[0] for rel in expected}):
        for path in (PACKAGED / name).rglob("*"):
            if path.is_file() and path.relative_to(PACKAGED).as_posix() not in expected:
                problems[path.relative_to(PACKAGED).as_posix()] = "not in SHA256SUMS"
    return problems
