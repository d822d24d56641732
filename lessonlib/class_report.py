"""How did the class do? The exercise checks of every student, from their class logs, as two tables.

Each student's `check(...)` results are kept in their own home when the teacher switched the class log on
(`LESSONLIB_CLASS_LOG=1`, see `lessonlib.engine.classlog`). A teacher with read access to the homes runs

    python -m lessonlib class-report /home/*            # or the students' LESSONLIB_HOME folders, or the files
    python -m lessonlib class-report /home/* --out report/   # also writes by_exercise.csv and by_student.csv

and gets, per exercise, how many students tried it, how many got it right and the median number of tries it
took them (up to the first right answer), and per student what they tried and got right.

A log is written by its student, so the report trusts only what the teacher's machine says about it:

- a student is named by the home the log was found in (the folder given, or the home above `.cache/lessonlib`),
  never by the log's `"user"` field;
- a log is opened without following a symbolic link, must be a regular file and must belong to the owner of
  its home: a link to a classmate's log, or a log in a folder linked to a classmate's, is left out;
- at most `classlog.MAX_LOG_BYTES` of a log are read, and only lines with the fields and types `record` writes
  count (`"correct": "false"` is not right, it is a bad line);
- what is left out (a log, or a line of one) is named after the tables, and never ends the report;
- text from a student's files is printed without control characters, and a CSV cell a spreadsheet would take
  for a formula (`=`, `+`, `-`, `@`) starts with `'`, as OWASP advises against CSV injection.
"""
import errno
import os
import re
import stat
import warnings
from pathlib import Path

import pandas as pd

from lessonlib.engine.classlog import LOG_NAME, parse_log
from lessonlib.engine.language import say
from lessonlib.exercise_bank import EXERCISES

try:
    import pwd
except ImportError:   # Windows: no user database (and every file's owner reads as 0)
    pwd = None

__all__ = ["class_report", "find_logs", "print_report", "read_logs", "safe_cell", "safe_text"]

DEFAULT_HOME = (".cache", "lessonlib")   # a student's LESSONLIB_HOME when they set none
PLACES = (LOG_NAME, f"{'/'.join(DEFAULT_HOME)}/{LOG_NAME}")   # in a LESSONLIB_HOME, or in a home with the default one
NAMED_LINES = 5   # bad lines named per log; the rest are counted
# C0 and C1 control characters (escape sequences start with one) and the marks that turn text right to left
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMULA = ("=", "+", "-", "@", "\t", "\r")   # what makes a spreadsheet read a cell as a formula


def safe_text(text):
    """`text` with each control character written out (an escape sequence shows as text, it does nothing)."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       str(text))


def safe_cell(value):
    """A CSV cell a spreadsheet shows as text: text starting with = + - @ gets a leading ' (other values as is)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA) else value


def find_logs(paths):
    """[(student, home, log file)] for the given homes, LESSONLIB_HOME folders or log files: the student is the
    name of the home the log is in. A home without a log is left out (a student who never checked an exercise
    has none)."""
    found = []
    for path in map(Path, paths):
        if path.name == LOG_NAME and not path.is_dir():
            home, files = path.parent, [path]
        elif path.is_dir():
            home, files = path, [path / place for place in PLACES]
        else:
            home, files = path.parent, [path]   # a log file under another name: it names its student
        if home.parts[-2:] == DEFAULT_HOME:
            home = home.parent.parent
        for file in files:
            if os.path.lexists(file):   # a link counts as there: it is refused when read, and named
                named = path if file == path and path.name != LOG_NAME else home
                found.append((named.absolute().name, home, file))
                break
    return found


def read_logs(paths, skipped=None):
    """{student: entries} of the logs under `paths` that are their student's own (see the module's docstring).

    Each log or line left out gets one line in the list `skipped`; when `skipped` is None, a warning each.
    """
    notes = [] if skipped is None else skipped
    notes.extend(say("{path} does not exist: left out (a typing mistake, or a home this user cannot see?)",
                     path=safe_text(path)) for path in paths if not os.path.lexists(path))
    logs, seen = {}, {}
    for student, home, file in find_logs(paths):
        problems = []
        try:
            fd = _open_own(file, home)
        except ValueError as e:
            notes.append(str(e))
            continue
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) in seen:
                notes.append(say("{path} is the same file as {other}: counted once", path=safe_text(file),
                                 other=safe_text(seen[info.st_dev, info.st_ino])))
                continue
            seen[info.st_dev, info.st_ino] = file
            entries = parse_log(f, problems)
        notes.extend(_line_notes(file, problems))
        logs[student if student not in logs else f"{student} ({home})"] = entries
    if skipped is None:
        for note in notes:
            warnings.warn(note, stacklevel=2)
    return {safe_text(student): entries for student, entries in logs.items()}


def _open_own(file, home):
    """A descriptor open for reading on `file`, when it is a regular file (not a link) that belongs to the owner of
    `home`; else ValueError saying why it is left out."""
    path = safe_text(file)
    try:
        owner = os.stat(home).st_uid
        if stat.S_ISLNK(os.lstat(file).st_mode):
            raise ValueError(_link(file))
        # O_NOFOLLOW: a link put there after the check is refused too; O_NONBLOCK: a named pipe does not hang us
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(_link(file)) from None
        raise ValueError(say("{path} could not be read ({error}): left out; run the report as a user who can "
                             "read every student's home (e.g. root)", path=path, error=e.strerror)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ValueError(say("{path} is not a regular file: left out", path=path))
    if info.st_uid != owner:
        os.close(fd)
        raise ValueError(say("{path} belongs to {owner}, but the home {home} belongs to {home_owner}: left out; a "
                             "log counts only in its owner's home", path=path, owner=_who(info.st_uid),
                             home=safe_text(home), home_owner=_who(owner)))
    return fd


def _link(file):
    try:
        target = os.readlink(file)
    except OSError:
        target = "?"
    return say("{path} is a symbolic link (to {target}): left out; a log counts only as a file in its student's "
               "own home", path=safe_text(file), target=safe_text(target))


def _who(uid):
    try:
        return safe_text(pwd.getpwuid(uid).pw_name)
    except (AttributeError, KeyError):   # no user database, or no name for this uid
        return f"uid {uid}"


def _line_notes(file, problems):
    """One note per problem of the log `file`: the first NAMED_LINES bad lines by number, then how many more."""
    path, notes, lines = safe_text(file), [], 0
    for number, why in problems:
        if number is None:
            notes.append(say("{path}: {why}", path=path, why=why))
            continue
        lines += 1
        if lines <= NAMED_LINES:
            notes.append(say("{path}, line {line}: {why}; the line is left out", path=path, line=number, why=why))
    if lines > NAMED_LINES:
        notes.append(say("{path}: {n} more bad line(s) left out", path=path, n=lines - NAMED_LINES))
    return notes


def _tries(entries):
    """How many checks it took to the first right answer (all of them when never right)."""
    for i, entry in enumerate(entries, 1):
        if entry["correct"] is True:
            return i
    return len(entries)


def class_report(paths, skipped=None):
    """(by exercise, by student): two DataFrames of the class's exercise checks, from the logs under `paths`.

    Logs and lines left out are named in the list `skipped`, or, when it is None, each in a warning.
    """
    rows = [{"student": student, "key": safe_text(entry["key"]), "correct": entry["correct"]}
            for student, entries in read_logs(paths, skipped).items() for entry in entries]
    columns = ["student", "key", "correct"]
    checks = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    per = [{"student": student, "exercise": key, "right": any(e["correct"] is True for e in group.to_dict("records")),
            "tries": _tries(group.to_dict("records")), "checks": len(group)}
           for (student, key), group in checks.groupby(["student", "key"], sort=False)]
    per = pd.DataFrame(per, columns=["student", "exercise", "right", "tries", "checks"])
    order = {key: i for i, key in enumerate(EXERCISES)}
    by_exercise = (per.groupby("exercise")
                   .agg(students_tried=("student", "nunique"), students_right=("right", "sum"),
                        median_tries=("tries", "median"))
                   .reset_index())
    by_exercise = by_exercise.sort_values("exercise", key=lambda keys: keys.map(lambda k: order.get(k, len(order))))
    by_student = (per.groupby("student")
                  .agg(exercises_tried=("exercise", "nunique"), exercises_right=("right", "sum"),
                       checks=("checks", "sum"))
                  .reset_index())
    return by_exercise.reset_index(drop=True), by_student


def print_report(paths, out=None):
    """Print the two tables, then what was left out (and write the tables as CSV files into the folder `out`);
    returns (by exercise, by student)."""
    skipped = []
    by_exercise, by_student = class_report(paths, skipped)
    print(say("{n} student(s) with a class log", n=len(by_student)))
    print(by_exercise.to_string(index=False) if len(by_exercise) else say("no exercise checks yet"))
    print()
    print(by_student.to_string(index=False) if len(by_student) else "")
    if skipped:
        print()
        print(say("left out of the report ({n}): logs and lines that are not their student's own checks",
                  n=len(skipped)))
        for note in skipped:
            print(f"  {note}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (("by_exercise.csv", by_exercise), ("by_student.csv", by_student)):
            table.apply(lambda column: column.map(safe_cell)).to_csv(out / name, index=False)
            print(say("wrote {path}", path=out / name))
    return by_exercise, by_student
