"""The class log: each exercise check a student runs, one line in a small file in their own LESSONLIB_HOME.

Opt-in: a teacher sets `LESSONLIB_CLASS_LOG=1` for the class (e.g. `c.Spawner.environment` of a hub), and
`LESSONLIB_CLASS_ANSWERS=1` as well to keep the answers, not only whether they were right. Nothing is sent
anywhere: the file stays in the student's home, and `python -m lessonlib class-report` reads the files.

One JSON object per line: `{"time", "user", "key", "correct", "attempt"}` (and `"answer"`). Many kernels of one
student may check at once: each line is appended under a lock (`storage.file_lock`) in one write, and a reader
skips a line it cannot parse (a kernel killed mid-write on a network disk) instead of failing.
"""
import getpass
import json
import os
import time
from pathlib import Path

from lessonlib.engine.runtime import home
from lessonlib.engine.settings import settings
from lessonlib.engine.storage import file_lock

__all__ = ["LOG_NAME", "log_path", "read_log", "record"]

LOG_NAME = "exercise-log.jsonl"


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


def read_log(path):
    """The entries of one class log, oldest first; lines that are not whole JSON objects are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "key" in entry and "correct" in entry:
            entries.append(entry)
    return entries


def _user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no name for this uid (some containers)
        return str(os.getuid())
