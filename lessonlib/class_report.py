"""How did the class do? The exercise checks of every student, from their class logs, as two tables.

Each student's `check(...)` results are kept in their own home when the teacher switched the class log on
(`LESSONLIB_CLASS_LOG=1`, see `lessonlib.engine.classlog`). A teacher with read access to the homes runs

    python -m lessonlib class-report /home/*            # or the students' LESSONLIB_HOME folders, or the files
    python -m lessonlib class-report /home/* --out report/   # also writes by_exercise.csv and by_student.csv

and gets, per exercise, how many students tried it, how many got it right and the median number of tries it
took them (up to the first right answer), and per student what they tried and got right.
"""
from pathlib import Path

import pandas as pd

from lessonlib.engine.classlog import LOG_NAME, read_log
from lessonlib.engine.language import say
from lessonlib.exercises import EXERCISES

__all__ = ["class_report", "find_logs"]

PLACES = (LOG_NAME, f".cache/lessonlib/{LOG_NAME}")   # in a LESSONLIB_HOME, or in a home with the default one


def find_logs(paths):
    """{student: log file} for the given homes, LESSONLIB_HOME folders or log files (those without a log are left
    out: a student who never checked an exercise has none)."""
    found = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else [path / place for place in PLACES]
        for file in files:
            if file.is_file():
                entries = read_log(file)
                student = entries[0]["user"] if entries and entries[0].get("user") else path.name
                found[student if student not in found else f"{student} ({path})"] = file
                break
    return found


def _tries(entries):
    """How many checks it took to the first right answer (all of them when never right)."""
    for i, entry in enumerate(entries, 1):
        if entry["correct"]:
            return i
    return len(entries)


def class_report(paths):
    """(by exercise, by student): two DataFrames of the class's exercise checks, from the logs under `paths`."""
    rows = [dict(entry, student=student) for student, file in find_logs(paths).items() for entry in read_log(file)]
    columns = ["student", "key", "correct"]
    checks = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    per = [{"student": student, "exercise": key, "right": any(e["correct"] for e in group.to_dict("records")),
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
    """Print the two tables (and write them as CSV files into the folder `out`); returns (by exercise, by student)."""
    by_exercise, by_student = class_report(paths)
    print(say("{n} student(s) with a class log", n=len(by_student)))
    print(by_exercise.to_string(index=False) if len(by_exercise) else say("no exercise checks yet"))
    print()
    print(by_student.to_string(index=False) if len(by_student) else "")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        by_exercise.to_csv(out / "by_exercise.csv", index=False)
        by_student.to_csv(out / "by_student.csv", index=False)
        print(say("wrote {path}", path=out / "by_exercise.csv"))
        print(say("wrote {path}", path=out / "by_student.csv"))
    return by_exercise, by_student
