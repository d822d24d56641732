"""The class log: each exercise check a student runs, one line in a small file in their own LESSONLIB_HOME.

Opt-in: a teacher sets `LESSONLIB_CLASS_LOG=1` for the class (e.g. `c.Spawner.environment` of a hub), and
`LESSONLIB_CLASS_ANSWERS=1` as well to keep the answers, not only whether they were right. Nothing is sent
anywhere: the file stays in the student's home, and `python -m lessonlib class-report` reads the files.

One JSON object per line: `{"time", "user", "key", "correct", "attempt"}` (and `"answer"`). Many kernels of one
student may check at once: each line is appended under a lock (`storage.file_lock`) in one write, and a reader
skips a line it cannot parse (a kernel killed mid-write on a network disk) instead of failing.

The file is the student's, so a reader believes nothing in it it has not checked: it reads at most
MAX_LOG_BYTES, and keeps only lines of at most MAX_LINE_BYTES whose every field has the type `record` writes
(`"correct"` is JSON true or false, nothing else). Who the student is comes from where the file is, never from
its `"user"` field (see `lessonlib.class_report`).
"""
import getpass
import json
import os
import time
from pathlib import Path

from lessonlib.engine.language import say
from lessonlib.engine.runtime import home
from lessonlib.engine.settings import settings
from lessonlib.engine.storage import file_lock

__all__ = ["FIELDS", "LOG_NAME", "MAX_KEY", "MAX_LINE_BYTES", "MAX_LOG_BYTES", "log_path", "parse_log", "read_log",
           "record"]

LOG_NAME = "exercise-log.jsonl"
MAX_LOG_BYTES = 8 * 2**20    # a check is about 150 bytes: over 50,000 checks, far more than a course makes
MAX_LINE_BYTES = 4096        # the longest line record() writes: an answer of 500 characters, up to 4 bytes each
MAX_KEY = 100                # characters of an exercise key ("06-maxpool-shape")
FIELDS = {"time": str, "user": str, "key": str, "correct": bool, "attempt": int, "answer": str}
REQUIRED = ("key", "correct")


def log_path():
    """Where this student's class log goes: LESSONLIB_HOME/exercise-log.jsonl."""
    return home() / LOG_NAME


def record(key, correct, answer=None):
    """Append one check result to the class log when the teacher has switched it on; returns the entry or None."""
    current = settings()
    if not current.class_log:
        return None
    path = log_path()
    with file_lock(path.with_name(path.name + ".lock")):
        earlier = sum(1 for entry in read_log(path) if entry.get("key") == key)
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "user": _user(), "key": key, "correct": bool(correct),
                 "attempt": earlier + 1}
        if current.class_answers:
            entry["answer"] = repr(answer)[:500]
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)   # the student's own file
        try:
            size = os.fstat(fd).st_size
            if size and os.lseek(fd, size - 1, os.SEEK_SET) >= 0 and os.read(fd, 1) != b"\n":
                # a line cut short earlier (a kernel killed mid-write) stays on its own line
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)
    return entry


def read_log(path, problems=None):
    """The entries of one class log, oldest first (see `parse_log`); [] when there is none."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return parse_log(f, problems)


def parse_log(f, problems=None):
    """The entries of the class log open as the binary file `f`, oldest first.

    Reads at most MAX_LOG_BYTES. A line that is not one JSON object of `record`'s fields with their types is
    skipped; when `problems` is a list, each line skipped gets a (line number, why) in it, and a log cut at
    MAX_LOG_BYTES a (None, why). A blank line, and the last line of a log cut short, are skipped unnamed.
    """
    data = f.read(MAX_LOG_BYTES + 1)
    lines = data.split(b"\n")
    if len(data) > MAX_LOG_BYTES:
        lines.pop()   # cut at the limit, not by its writer
        _note(problems, None, say("it is larger than {mb} MB: only its first {mb} MB were read (a class log of "
                                  "real checks is far smaller)", mb=MAX_LOG_BYTES // 2**20))
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            _note(problems, number, say("{n:,} bytes long, more than a check ever writes ({most:,})", n=len(line),
                                        most=MAX_LINE_BYTES))
            continue
        try:
            entry = json.loads(line.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):   # a torn line; or one nested thousands deep
            _note(problems, number, say("not a whole JSON object"))
            continue
        why = _why_bad(entry)
        if why is None:
            entries.append({field: entry[field] for field in FIELDS if field in entry})
        else:
            _note(problems, number, why)
    return entries


def _why_bad(entry):
    """Why `entry` is not a check `record` could have written, or None when it is one."""
    if not isinstance(entry, dict):
        return say("not a JSON object")
    for field in REQUIRED:
        if field not in entry:
            return say("it has no {field!r}", field=field)
    for field, kind in FIELDS.items():
        if field in entry and not _is(entry[field], kind):
            kinds = {str: say("text"), bool: say("true or false"), int: say("a whole number")}
            return say("{field!r} is {value}, not {kind}", field=field, value=_shown(entry[field]), kind=kinds[kind])
    if not 0 < len(entry["key"]) <= MAX_KEY:
        return say("'key' is {n} characters long, not 1 to {most}", n=len(entry["key"]), most=MAX_KEY)
    return None


def _is(value, kind):
    """isinstance, except that true and false are not whole numbers (in Python, bool is an int)."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _shown(value, most=40):
    """`value` as JSON, in plain ASCII (no control characters reach a terminal) and at most `most` characters."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= most else text[:most - 3] + "..."


def _note(problems, number, why):
    if problems is not None:
        problems.append((number, why))


def _user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no name for this uid (some containers)
        return str(os.getuid())
