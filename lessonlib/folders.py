"""The data set's folders: which files in them are images, the layout `PATH/train/<class>/`, `PATH/valid/<class>/`
(checked before anything is trained, with errors that say what to change), a table of what they hold, and what
changed in them since the data was read (`folder_state`, `changed_files`).
"""
import os
import unicodedata
import warnings
from pathlib import Path

from lessonlib.engine.language import problem, say
from lessonlib.engine.tables import Table
from lessonlib.images import PLUGIN_HELP, display_name, readable_extensions

__all__ = ["DataChangedError", "changed_files", "check_layout", "folder_state", "folder_summary", "image_files",
           "unused_files"]

LAYOUT_HELP = "expected PATH/{trn}/<class>/<image>, PATH/{val}/<class>/<image> (e.g. train/cats/cat.1.jpg)"


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
    return Table(pd.DataFrame(rows, columns=["folder", "class", "images"]),   # code reads these names; people, theirs
                 labels={"folder": say("folder"), "class": say("class"), "images": say("images")},
                 cells={"class": {"(unlabelled)": say("(unlabelled)")}})



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

