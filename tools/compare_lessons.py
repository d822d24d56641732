"""Does a lesson show the same numbers at another commit? Run it in this checkout and at the commit, compare.

For a change that should not change behaviour (a refactor): each lesson runs top to bottom twice, each in a fresh
kernel (full mode unless LESSONLIB_SMOKE=1 is set), once with this checkout's notebook and lessonlib, once with
the notebook and lessonlib of the other commit (taken with `git archive`, put first on the kernel's PYTHONPATH).
Then every table and value a code cell shows is compared cell by cell, matched by cell id, as compare_editions.py
does (the numbers each cell prints too; progress bars, figures, the time column and printed durations are left
out). A cell that raises does not stop the run: its error is compared like a value, and named. A cell that exists
in only one of the two notebooks is counted apart, as added or removed, not as a difference.

Both runs share LESSONLIB_HOME, so this checkout runs first and the commit reads the same cached data sets and
activations; with --own-homes each run gets a new, empty LESSONLIB_HOME (removed afterwards), so each version
prepares its data, precomputes and trains from nothing (slower, and nothing one version wrote is read by the other).
The other checkout's folder is written as this one's in what it shows. In smoke mode the small samples' folder names
differ anyway (they are keyed on where the full set lies); full mode has no such difference.

    python tools/compare_lessons.py 29267ed 00 02 04    # writes benchmarks/results/compare_lessons.json

A full-mode comparison of every lesson takes longer than one sitting: `--keep DIR` writes each executed notebook
to DIR, named by the commit (or, for this checkout, the hash of its lessonlib/ and notebooks/ files), the mode and
the home setting, and reads it back instead of running that side again. `--only commit` runs the commit's side
alone (to keep it for later); a kept run made with another torch or on another machine is not reused.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import save_result  # noqa: E402  (benchmarks/_results.py: JSON under benchmarks/results/)
from compare_editions import execute, failed, shown, timing_cells  # noqa: E402  (tools/compare_editions.py)


def checkout(commit):
    """The commit's notebooks/ and lessonlib/ in a temporary folder (nothing else of this checkout changes)."""
    where = Path(tempfile.mkdtemp(prefix="lessonlib-at-"))
    archive = subprocess.run(["git", "archive", commit, "lessonlib", "notebooks"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def tree_key(root):
    """A hash of everything under root/lessonlib and root/notebooks that git would track (this checkout's version)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "lessonlib", "notebooks"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split()
    h = hashlib.sha256()
    for name in sorted(files):
        path = Path(root) / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def machine():
    """What a kept run must share with this one to be compared: torch, Python, the processor."""
    import torch
    flags = ""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    bf16 = any(f in flags.split() for f in ("amx_tile", "avx512_bf16"))
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "native_bf16": bf16, "precision": os.environ.get("LESSONLIB_PRECISION", "")}


def kept_run(keep, version, root, notebook, own_home):
    """Execute `notebook` with lessonlib from `root`, or read the run kept under `keep` for `version`."""
    import nbformat
    mode = ("smoke" if os.environ.get("LESSONLIB_SMOKE") == "1" else "full") + ("-own-homes" if own_home else "")
    where = Path(keep) / f"{version}-{mode}" / notebook.name if keep else None
    if where and where.exists():
        nb = nbformat.read(where, as_version=4)
        meta = nb.metadata.get("compare_lessons", {})
        if meta.get("machine") == machine():
            print(f"{notebook.name} at {version}: the run kept in {where} ({meta['seconds']:.0f} s)")
            return nb, meta["seconds"], meta["home"], Path(meta["root"])
        print(f"{notebook.name} at {version}: the kept run was made with {meta.get('machine')}, here "
              f"{machine()}: running it again")
    nb, seconds, home = run_with(root, notebook, own_home)
    if where:
        where.parent.mkdir(parents=True, exist_ok=True)
        nb.metadata["compare_lessons"] = {"seconds": seconds, "home": home, "root": str(root), "machine": machine()}
        tmp = where.with_suffix(f".tmp{os.getpid()}")
        nbformat.write(nb, tmp)
        os.replace(tmp, where)
    return nb, seconds, home, Path(root)


def run_with(root, notebook, own_home=False):
    """Execute `notebook` in a kernel that imports lessonlib from `root` first (in a new LESSONLIB_HOME if asked).

    Returns the executed notebook, the seconds it took, and the new home's path (None without one)."""
    names = ("PYTHONPATH", "LESSONLIB_HOME", "LESSONLIB_DATA")
    before = {name: os.environ.get(name) for name in names}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root)] + ([before["PYTHONPATH"]] if before["PYTHONPATH"] else []))
    fresh = Path(tempfile.mkdtemp(prefix="lessonlib-home-")) if own_home else None
    if fresh:
        os.environ["LESSONLIB_HOME"] = str(fresh)
        os.environ.pop("LESSONLIB_DATA", None)   # the data sets go under the new home too
    try:
        return (*execute(notebook), str(fresh) if fresh else None)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commit", help="the commit to compare with, e.g. the one before a refactor")
    parser.add_argument("lessons", nargs="+", help="e.g. 00 02 04")
    parser.add_argument("--own-homes", action="store_true", help="a new, empty LESSONLIB_HOME for each run")
    parser.add_argument("--keep", metavar="DIR", help="keep each executed notebook in DIR and reuse kept ones")
    parser.add_argument("--only", choices=["commit"], help="run the commit's side only (with --keep, for later)")
    args = parser.parse_args(argv)
    if args.only and not args.keep:
        parser.error("--only commit keeps its runs for later: give --keep DIR too")
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
            then, then_s, then_home, then_root = kept_run(args.keep, commit, other, other / "notebooks" / name,
                                                          args.own_homes)
            if args.only:
                lessons.append({"notebook": name, "commit_s": round(then_s, 1), "failed_at_commit": failed(then)})
                continue
            now, now_s, now_home, _ = kept_run(args.keep, f"tree-{tree_key(ROOT)}", ROOT, ROOT / "notebooks" / name,
                                               args.own_homes)
            clocks = timing_cells(now) | timing_cells(then)   # a cell tagged since the commit is timing in both
            a, b = shown(now, clocks), shown(then, clocks)
            b = {k: [t.replace(str(then_root), str(ROOT)) for t in v] for k, v in b.items()}   # its files are elsewhere
            for side, fresh in ((a, now_home), (b, then_home)):   # and so are the two new homes
                if fresh:
                    side.update({k: [t.replace(fresh, "$LESSONLIB_HOME") for t in v] for k, v in side.items()})
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
    if args.only:   # nothing compared yet: the runs wait in --keep
        save_result("compare_lessons_commit_side", {"commit": commit, "own_homes": args.own_homes, "keep": args.keep,
                                                    "lessons": lessons})
        return 0 if not any(lesson["failed_at_commit"] for lesson in lessons) else 1
    save_result("compare_lessons", {"here": here, "commit": commit, "own_homes": args.own_homes, "lessons": lessons,
                                    "same": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
