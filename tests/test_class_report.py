"""The class view: each student's check() results in a small file in their home, read back as a class report."""
import json
import multiprocessing
import os

import pandas as pd
import pytest

from lessonlib.engine.classlog import LOG_NAME, read_log


@pytest.fixture
def student(tmp_path, monkeypatch):
    """A student's LESSONLIB_HOME with the class log switched on."""
    home = tmp_path / "ana" / ".cache" / "lessonlib"
    monkeypatch.setenv("LESSONLIB_HOME", str(home))
    monkeypatch.setenv("LESSONLIB_CLASS_LOG", "1")
    return home


def test_nothing_is_kept_unless_the_teacher_switches_the_log_on(tmp_path, monkeypatch):
    from lessonlib.exercises import check
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path))
    monkeypatch.delenv("LESSONLIB_CLASS_LOG", raising=False)
    check("06-maxpool-shape", (2, 12, 12))
    assert not (tmp_path / LOG_NAME).exists()


def test_each_check_is_one_line_with_its_attempt_and_no_answer_unless_asked(student, monkeypatch):
    from lessonlib.exercises import check
    check("06-maxpool-shape", None)                 # not answered yet: not an attempt
    check("06-maxpool-shape", (2, 24, 24))
    check("06-maxpool-shape", (2, 12, 12))
    check("06-cell-by-hand", -3)
    entries = read_log(student / LOG_NAME)
    assert [(e["key"], e["correct"], e["attempt"]) for e in entries] == [
        ("06-maxpool-shape", False, 1), ("06-maxpool-shape", True, 2), ("06-cell-by-hand", True, 1)]
    assert all("answer" not in e and e["user"] and e["time"] for e in entries)
    monkeypatch.setenv("LESSONLIB_CLASS_ANSWERS", "1")
    check("06-cell-by-hand", 5)
    assert read_log(student / LOG_NAME)[-1]["answer"] == "5"


def _checks(home, n):
    os.environ["LESSONLIB_HOME"], os.environ["LESSONLIB_CLASS_LOG"] = str(home), "1"
    from lessonlib.engine.classlog import record
    for i in range(n):
        record("06-maxpool-shape", i % 2 == 0, answer=None)


def test_two_kernels_checking_at_once_lose_no_line_and_count_attempts_once(student):
    context = multiprocessing.get_context("spawn")
    kernels = [context.Process(target=_checks, args=(student, 60)) for _ in range(2)]
    for k in kernels:
        k.start()
    for k in kernels:
        k.join(60)
        assert k.exitcode == 0
    lines = (student / LOG_NAME).read_text().splitlines()
    assert len(lines) == 120 and all(json.loads(line) for line in lines)        # every line whole
    assert sorted(json.loads(line)["attempt"] for line in lines) == list(range(1, 121))


def test_a_torn_line_is_skipped_not_fatal(student):
    from lessonlib.exercises import check
    check("06-maxpool-shape", (2, 12, 12))
    with open(student / LOG_NAME, "a") as f:
        f.write('{"time": "2026-11-29T10:00:00", "key": "06-cell')   # a kernel killed mid-write
    check("06-cell-by-hand", -3)
    assert [e["key"] for e in read_log(student / LOG_NAME)] == ["06-maxpool-shape", "06-cell-by-hand"]


def _log(home, user, checks):
    home.mkdir(parents=True)
    (home / LOG_NAME).write_text("".join(json.dumps({"time": "t", "user": user, "key": k, "correct": c, "attempt": 0})
                                         + "\n" for k, c in checks))


def test_the_class_report_per_exercise_and_per_student(tmp_path, capsys):
    from lessonlib.__main__ import main
    from lessonlib.class_report import class_report
    _log(tmp_path / "ana" / ".cache" / "lessonlib", "ana",
         [("00-count-dogs", False), ("00-count-dogs", True), ("01-error-rate", True)])
    _log(tmp_path / "ben" / ".cache" / "lessonlib", "ben",
         [("00-count-dogs", False), ("00-count-dogs", False), ("00-count-dogs", False)])
    (tmp_path / "cleo").mkdir()                                          # never checked anything
    by_exercise, by_student = class_report(sorted(tmp_path.iterdir()))
    assert by_exercise.to_dict("records") == [
        {"exercise": "00-count-dogs", "students_tried": 2, "students_right": 1, "median_tries": 2.5},
        {"exercise": "01-error-rate", "students_tried": 1, "students_right": 1, "median_tries": 1.0}]
    assert by_student.set_index("student").to_dict("index") == {
        "ana": {"exercises_tried": 2, "exercises_right": 2, "checks": 3},
        "ben": {"exercises_tried": 1, "exercises_right": 0, "checks": 3}}
    assert main(["class-report", *map(str, sorted(tmp_path.iterdir())), "--out", str(tmp_path / "report")]) == 0
    assert "2 student(s) with a class log" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "report" / "by_exercise.csv").students_tried.tolist() == [2, 1]
