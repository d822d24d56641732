"""What does a class cost on one machine? N students at once, each in their own home, one read-only mirror.

Makes a read-only mirror folder holding dogscats-mini (as a teacher's shared folder would), then starts
`--students` processes at the same time, each with its own LESSONLIB_HOME and the mirror as
LESSONLIB_DATA_MIRROR, each running the README's quickstart (the data, a learner with precompute, one
epoch). Prints each student's wall time and peak memory, checks that every one finished and that the
mirror is unchanged, and writes JSON to benchmarks/results/. Exit status 1 if any student failed or the
mirror changed.

    python benchmarks/classroom.py [--students 4] [--sz 224] [--smoke]
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICKSTART = """
import json, resource, time
start = time.perf_counter()
from lessonlib import ConvLearner, ImageClassifierData, datasets, tfms_from_model, transforms_side_on
from lessonlib.engine.runtime import seed_everything
seed_everything(0)   # every student the same seed: same data and head, so their results can be compared
PATH = datasets.get("dogscats-mini")
tfms = tfms_from_model("resnet34", {sz}, aug_tfms=transforms_side_on, max_zoom=1.1)
data = ImageClassifierData.from_paths(PATH, tfms=tfms, bs={bs})
learn = ConvLearner.pretrained("resnet34", data, precompute=True)
learn.fit(1e-2, 1)
print(json.dumps({{"seconds": round(time.perf_counter() - start, 1), "arch": learn.arch, "path": str(PATH),
                  "accuracy": float(learn.history.accuracy.iloc[-1]),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}}))
"""


def tree_digest(folder):
    """A hash of every file's relative path and bytes under `folder`."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def make_mirror(where):
    """A read-only mirror holding dogscats-mini, as a teacher would share it."""
    from lessonlib import datasets
    mirror = Path(where) / "mirror"
    shutil.copytree(datasets.PACKAGED / "dogscats-mini", mirror / "dogscats-mini")
    for path in [mirror, *mirror.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return mirror


def run_class(n, sz, bs, smoke, where, timeout=None):
    """Start `n` students at once; return ([per-student results], mirror unchanged?).

    A student still running `timeout` seconds after the start (None: no limit) is stopped and counted as failed.
    """
    mirror = make_mirror(where)
    before = tree_digest(mirror)
    procs = []
    for i in range(n):
        env = {**os.environ, "LESSONLIB_HOME": str(Path(where) / f"student{i}"), "LESSONLIB_DATA_MIRROR": str(mirror),
               "LESSONLIB_OFFLINE": "1", "LESSONLIB_SMOKE": "1" if smoke else "0", "MPLBACKEND": "Agg"}
        env.pop("LESSONLIB_DATA", None)
        procs.append(subprocess.Popen([sys.executable, "-c", QUICKSTART.format(sz=sz, bs=bs)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results, end = [], None if timeout is None else time.monotonic() + timeout
    for i, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=None if end is None else max(end - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += f"\nstill running after {timeout} s: stopped"
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if p.returncode == 0 and lines:
            results.append({"student": i, **json.loads(lines[-1])})
        else:
            results.append({"student": i, "failed": (err.strip().splitlines() or ["?"])[-1]})
    unchanged = tree_digest(mirror) == before
    for path in [mirror, *mirror.rglob("*")]:   # writable again, so the folder can be removed
        path.chmod(0o755 if path.is_dir() else 0o644)
    return results, unchanged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="each student on the smoke sample (as the tests do)")
    args = parser.parse_args()
    where = tempfile.mkdtemp(prefix="lessonlib-classroom-")
    start = time.perf_counter()
    results, unchanged = run_class(args.students, args.sz, args.bs, args.smoke, where)
    result = {"students": args.students, "sz": args.sz, "bs": args.bs, "smoke": args.smoke, "cores": os.cpu_count(),
              "wall_seconds_all": round(time.perf_counter() - start, 1), "mirror_unchanged": unchanged,
              "per_student": results}
    shutil.rmtree(where, ignore_errors=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _results import save_result
    save_result(f"classroom_{args.students}_students" + ("_smoke" if args.smoke else f"_{args.sz}"), result)
    return 0 if unchanged and all("failed" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
