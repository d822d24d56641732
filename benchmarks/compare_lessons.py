"""Does a lesson show the same numbers at another commit? Run it in this checkout and at the commit, compare.

For a change that should not change behaviour (a refactor): each lesson runs top to bottom twice, each in a fresh
kernel (full mode unless LESSONLIB_SMOKE=1 is set), once with this checkout's notebook and lessonlib, once with
the notebook and lessonlib of the other commit (taken with `git archive`, put first on the kernel's PYTHONPATH).
Then every table and value a code cell shows is compared cell by cell, matched by cell id, as compare_editions.py
does (the numbers each cell prints too; progress bars, figures, the time column and printed durations are left
out). A cell that raises does not stop the run: its error is compared like a value, and named. A cell that exists
in only one of the two notebooks is counted apart, as added or removed, not as a difference.

Both runs share LESSONLIB_HOME, so this checkout runs first and the commit reads the same cached data sets. The
other checkout's folder is written as this one's in what it shows. In smoke mode the small samples' folder names
differ anyway (they are keyed on where the full set lies); full mode has no such difference.

    python benchmarks/compare_lessons.py 29267ed 00 02 04    # writes benchmarks/results/compare_lessons.json
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import save_result  # noqa: E402
from compare_editions import execute, failed, shown, timing_cells  # noqa: E402


def checkout(commit):
    """The commit's notebooks/ and lessonlib/ in a temporary folder (nothing else of this checkout changes)."""
    where = Path(tempfile.mkdtemp(prefix="lessonlib-at-"))
    archive = subprocess.run(["git", "archive", commit, "lessonlib", "notebooks"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def run_with(root, notebook):
    """Execute `notebook` in a kernel that imports lessonlib from `root` first."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root)] + ([before] if before else []))
    try:
        return execute(notebook)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commit", help="the commit to compare with, e.g. the one before a refactor")
    parser.add_argument("lessons", nargs="+", help="e.g. 00 02 04")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    here = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    other = checkout(commit)
    try:
        lessons, ok = [], True
        for lesson in args.lessons:
            found = sorted((ROOT / "notebooks").glob(f"{lesson}_*.ipynb"))
            if not found:
                sys.exit(f"no lesson {lesson} in notebooks/")
            name = found[0].name
            if not (other / "notebooks" / name).exists():
                print(f"{name}: not in {commit}, skipped")
                continue
            now, now_s = run_with(ROOT, ROOT / "notebooks" / name)
            then, then_s = run_with(other, other / "notebooks" / name)
            clocks = timing_cells(now) | timing_cells(then)   # a cell tagged since the commit is timing in both
            a, b = shown(now, clocks), shown(then, clocks)
            b = {k: [t.replace(str(other), str(ROOT)) for t in v] for k, v in b.items()}   # its files are elsewhere
            both = [k for k in a if k in b]
            differ = {k: {"here": a[k], "commit": b[k]} for k in both if a[k] != b[k]}
            same = sum(len(a[k]) for k in both if k not in differ)
            added, removed = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            print(f"{name}: {same} tables and values identical, {len(differ)} cell(s) differ; "
                  f"{len(added)} cell(s) only here, {len(removed)} only in {commit} ({here} {now_s:.0f} s, "
                  f"{commit} {then_s:.0f} s)")
            for k, v in differ.items():
                print(f"  cell {k}:\n    {here}: {v['here']}\n    {commit}: {v['commit']}")
            for version, nb in ((here, now), (commit, then)):
                for k, error in failed(nb).items():
                    print(f"  {version}: cell {k} failed: {error}")
            lessons.append({"notebook": name, "identical": same, "differ": differ, "only_here": added,
                            "only_at_commit": removed, "here_s": round(now_s, 1), "commit_s": round(then_s, 1),
                            "failed_here": failed(now), "failed_at_commit": failed(then), "shown": a})
            ok = ok and not differ and not failed(now)
    finally:
        shutil.rmtree(other, ignore_errors=True)   # its lessonlib carries the teaching sets: about 100 MB
    save_result("compare_lessons", {"here": here, "commit": commit, "lessons": lessons, "same": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
