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
    check("06-maxpool-shape", (2, 14, 14))
    assert not (tmp_path / LOG_NAME).exists()


def test_each_check_is_one_line_with_its_attempt_and_no_answer_unless_asked(student, monkeypatch):
    from lessonlib.exercises import check
    check("06-maxpool-shape", None)                 # not answered yet: not an attempt
    check("06-maxpool-shape", (2, 24, 24))
    check("06-maxpool-shape", (2, 14, 14))
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
    check("06-maxpool-shape", (2, 14, 14))
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


# A log is its student's to write: the report believes only what the teacher's machine says about it.

def _lines(home, lines):
    """A log of these raw lines (each a JSON text or bytes), as a student could write it by hand."""
    home.mkdir(parents=True, exist_ok=True)
    (home / LOG_NAME).write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n"
                                           for line in lines))
    return home / LOG_NAME


def _check(key="00-count-dogs", correct=True, user="ana", **fields):
    return json.dumps({"time": "t", "user": user, "key": key, "correct": correct, "attempt": 1, **fields})


def _report(tmp_path, capsys, *homes):
    """What the teacher sees: (the printed report, {student: row of by_student.csv}, the CSV files' raw text)."""
    from lessonlib.__main__ import main
    out = tmp_path / "report"
    status = main(["class-report", *map(str, homes), "--out", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    rows = pd.read_csv(out / "by_student.csv", keep_default_na=False).set_index("student").to_dict("index")
    return printed.out, rows, (out / "by_exercise.csv").read_text() + (out / "by_student.csv").read_text()


def test_a_student_is_named_by_the_home_of_their_log_not_by_its_user_field(tmp_path, capsys):
    _log(tmp_path / "ana" / ".cache" / "lessonlib", "ben", [("00-count-dogs", True)])     # ana says she is ben
    _log(tmp_path / "ben" / ".cache" / "lessonlib", "ben", [("00-count-dogs", False)])
    _log(tmp_path / "cleo", "ana", [("01-error-rate", True)])            # a LESSONLIB_HOME folder
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "ben",
                               tmp_path / "cleo" / LOG_NAME)
    assert {name: row["exercises_right"] for name, row in rows.items()} == {"ana": 1, "ben": 0, "cleo": 1}
    assert f"({tmp_path}" not in printed                                       # no "ben (/path/to/ana)"


def test_a_home_given_twice_counts_once(tmp_path, capsys):
    _log(tmp_path / "ana" / ".cache" / "lessonlib", "ana", [("00-count-dogs", True)])
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "ana" / ".cache" / "lessonlib")
    assert list(rows) == ["ana"] and rows["ana"]["checks"] == 1
    assert "is the same file as" in printed


def test_a_path_that_does_not_exist_is_named_not_passed_over(tmp_path, capsys):
    _log(tmp_path / "ana" / ".cache" / "lessonlib", "ana", [("00-count-dogs", True)])
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "amna")   # a typing mistake
    assert list(rows) == ["ana"] and f"{tmp_path / 'amna'} does not exist: left out" in printed


def test_a_log_linked_to_a_classmates_is_left_out_and_named(tmp_path, capsys, monkeypatch):
    ben = _lines(tmp_path / "ben" / ".cache" / "lessonlib", [_check(user="ben"), _check("01-error-rate", user="ben")])
    ben.chmod(0o600)                                            # unreadable to ana, not to the teacher (root)
    ana = tmp_path / "ana" / ".cache" / "lessonlib"
    ana.mkdir(parents=True)
    (ana / LOG_NAME).symlink_to(ben)
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "ben")
    assert list(rows) == ["ben"] and rows["ben"]["exercises_right"] == 2      # ana gets no row of ben's
    assert f"{ana / LOG_NAME} is a symbolic link (to {ben}): left out" in printed
    monkeypatch.setenv("LESSONLIB_LANG", "zh")                                 # the teacher's language
    printed, _, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "ben")
    assert "符号链接" in printed


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="giving homes and files to other users (os.chown) needs root, as a teacher has")


@needs_root
def test_a_log_that_belongs_to_someone_else_than_its_home_is_left_out_and_named(tmp_path, capsys):
    ana_uid, ben_uid = 64001, 64002                                # uids with no user: named "uid N"
    ben_log = _lines(tmp_path / "ben" / ".cache" / "lessonlib", [_check(user="ben")])
    for path in (tmp_path / "ben", tmp_path / "ben" / ".cache", ben_log.parent, ben_log):
        os.chown(path, ben_uid, ben_uid)
    (tmp_path / "ana").mkdir()
    (tmp_path / "ana" / ".cache").symlink_to(tmp_path / "ben" / ".cache")     # ana's folder linked to ben's
    planted = _lines(tmp_path / "dan", [_check(user="dan"), _check("01-error-rate", user="dan")])  # ben's file
    os.chown(tmp_path / "dan", ana_uid, ana_uid)
    os.chown(tmp_path / "ana", ana_uid, ana_uid)
    os.chown(planted, ben_uid, ben_uid)
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "ben", tmp_path / "dan")
    assert list(rows) == ["ben"] and rows["ben"]["checks"] == 1
    assert (f"{tmp_path / 'ana' / '.cache' / 'lessonlib' / LOG_NAME} belongs to uid {ben_uid}, but the home "
            f"{tmp_path / 'ana'} belongs to uid {ana_uid}: left out") in printed
    assert f"{planted} belongs to uid {ben_uid}" in printed


def test_a_named_pipe_for_a_log_is_left_out_not_waited_on(tmp_path, capsys):
    import threading
    from lessonlib.__main__ import main
    (tmp_path / "ana").mkdir()
    fifo = tmp_path / "ana" / LOG_NAME
    os.mkfifo(fifo)                                                # no writer ever comes
    reader = threading.Thread(target=main, args=(["class-report", str(tmp_path / "ana")],), daemon=True)
    reader.start()
    reader.join(20)
    try:
        assert not reader.is_alive(), "the report waits for ever on a named pipe"
        assert f"{fifo} is not a regular file: left out" in capsys.readouterr().out
    finally:
        if reader.is_alive():                                      # let it go: a writer that closes at once
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_huge_sparse_log_is_read_only_up_to_its_limit_and_named(tmp_path, capsys):
    import time
    import tracemalloc
    log = _lines(tmp_path / "ana", [_check(), _check("01-error-rate", False)])
    with open(log, "r+b") as f:
        f.truncate(256 * 2**20)                                    # 256 MB of no disk blocks: free to make
    tracemalloc.start()
    start = time.perf_counter()
    try:
        printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20 and time.perf_counter() - start < 20       # the old report: 770 MB and 8 s
    assert rows["ana"]["checks"] == 2                                     # what is in the first MBs still counts
    assert f"{log}: it is larger than 8 MB: only its first 8 MB were read" in printed


def test_a_line_longer_than_any_check_is_left_out_and_named(tmp_path, capsys):
    log = _lines(tmp_path / "ana", [_check(), _check("x" * 2**20), _check(answer="a" * 400)])
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana")
    assert rows["ana"]["checks"] == 2 and "xxxxxxxxxx" not in printed
    assert f"{log}, line 2: 1,048,6" in printed and "bytes long" in printed


BAD_LINES = {
    "a list for key": _check(["00-count-dogs"]),
    "a dict for key": _check({"k": 1}),
    "a list for user": json.dumps({"user": ["ana"], "key": "00-count-dogs", "correct": True}),
    "a dict for user": json.dumps({"user": {"name": "ana"}, "key": "00-count-dogs", "correct": True}),
    "text for attempt": _check(attempt="3"),
    "true for attempt": _check(attempt=True),
    "a number for time": _check(time=5),
    "an empty key": _check(""),
    "a key of 200 characters": _check("k" * 200),
    "no correct": json.dumps({"key": "00-count-dogs"}),
    "not an object": json.dumps(["00-count-dogs", True]),
    "nested 3,000 deep": "[" * 3000 + "]" * 3000,
    "not JSON": "00-count-dogs,true",
}


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_line_of_the_wrong_shape_is_named_and_the_report_goes_on(tmp_path, capsys, line):
    log = _lines(tmp_path / "ana", [line, _check(), _check("01-error-rate")])
    _log(tmp_path / "ben", "ben", [("00-count-dogs", True)])
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "ben")
    assert rows["ana"]["checks"] == 2 and rows["ben"]["checks"] == 1
    assert f"{log}, line 1: " in printed and "the line is left out" in printed


def test_many_bad_lines_are_counted_after_the_first_few(tmp_path, capsys):
    log = _lines(tmp_path / "ana", [_check(["x"])] * 12 + [_check()])
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana")
    assert rows["ana"]["checks"] == 1
    assert printed.count(f"{log}, line ") == 5 and f"{log}: 7 more bad line(s) left out" in printed


@pytest.mark.parametrize("correct", ["false", "true", 1, 0, None, [True]])
def test_only_json_true_counts_as_right(tmp_path, capsys, correct):
    log = _lines(tmp_path / "ana", [_check(correct=correct), _check("01-error-rate", False)])
    printed, rows, _ = _report(tmp_path, capsys, tmp_path / "ana")
    assert rows["ana"]["exercises_right"] == 0 and rows["ana"]["checks"] == 1
    assert f"{log}, line 1: 'correct' is {json.dumps(correct)}, not true or false" in printed


def test_formulas_and_control_characters_from_a_log_reach_neither_spreadsheet_nor_terminal(tmp_path, capsys):
    import csv
    import io
    keys = ['=HYPERLINK("http://evil.example","grades")', "+1+1", "-2+3", "@SUM(A1:A9)", "\tTAB",
            "06-\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil"]
    _lines(tmp_path / "ana", [_check(key) for key in keys])
    _log(tmp_path / "=1+1\x1b[31m", "ana", [("00-count-dogs", True)])       # a folder name of a student's choosing
    printed, rows, files = _report(tmp_path, capsys, tmp_path / "ana", tmp_path / "=1+1\x1b[31m")
    cells = [cell for row in csv.reader(io.StringIO(files)) for cell in row]
    assert len(cells) > 20 and not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=HYPERLINK" in files and "'=1+1" in files
    assert not [c for c in printed + files if (ord(c) < 32 and c not in "\n\r") or 0x7f <= ord(c) < 0xa0
                or c == "\u202e"]
    assert "\\x1b]0;pwned\\x07" in printed                          # shown, not obeyed


def test_in_a_notebook_what_is_left_out_comes_as_warnings(tmp_path):
    from lessonlib.class_report import class_report
    log = _lines(tmp_path / "ana", [_check(correct="false"), _check()])
    with pytest.warns(UserWarning, match=f"{log}, line 1: 'correct' is \"false\""):
        _, by_student = class_report([tmp_path / "ana"])
    assert by_student.to_dict("records") == [{"student": "ana", "exercises_tried": 1, "exercises_right": 1,
                                              "checks": 1}]
