"""Is this checkout's lessonlib slower than another commit's? Both, alternating epochs, in one process.

The other commit's `lessonlib/` is taken with `git archive`, renamed `lessonlib_at_<commit>` (its imports
rewritten), and both train the same network on the same photos in turn: one epoch of this checkout, one of
the other, `--repeats` times. Timed: a fine-tuning epoch (body unfrozen, its BatchNorm fixed, as lessons 05
and 07 do) and a frozen-body epoch with augmentation (precompute off, as lesson 03), validation included.
Prints images/s per version (medians) and the ratio this / other; writes JSON to benchmarks/results/.

    python tools/compare_commits.py 999d08b [--sz 128] [--repeats 3]
"""
import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import save_result  # noqa: E402  (benchmarks/_results.py: JSON under benchmarks/results/)


def import_commit(commit):
    """The package `lessonlib` as it was at `commit`, imported under another name."""
    name = f"lessonlib_at_{commit[:12]}"
    where = Path(tempfile.mkdtemp(prefix="lessonlib-commit-"))
    archive = subprocess.run(["git", "archive", commit, "lessonlib"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    (where / "lessonlib").rename(where / name)
    for path in (where / name).rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\blessonlib(?=[. ])", name, text)   # `from lessonlib.x`, `from lessonlib import`, `lessonlib.x`
        path.write_text(text)
    sys.path.insert(0, str(where))
    return importlib.import_module(name)


def learner(lib, path, arch, sz, bs, stage):
    data = lib.ImageClassifierData.from_paths(path, tfms=lib.tfms_from_model(arch, sz, aug_tfms=lib.transforms_side_on,
                                                                              max_zoom=1.1), bs=bs)
    learn = lib.ConvLearner.pretrained(arch, data)
    if stage == "fine_tune":
        learn.unfreeze()
        learn.bn_freeze(True)
    return learn, len(data.trn_ds)


def epoch_speed(learn, n):
    start = time.perf_counter()
    learn.fit(1e-3, 1)
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the other commit, e.g. 999d08b")
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--sz", type=int, default=128)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import lessonlib
    other = import_commit(args.commit)
    path = lessonlib.datasets.get("dogscats-mini", smoke=False)
    this_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip()
    result = {"this": this_commit, "other": args.commit, "arch": args.arch, "sz": args.sz, "bs": args.bs}
    for stage in ("fine_tune", "frozen_body_augmented"):
        lessonlib.setup(0)
        versions = {"this": learner(lessonlib, path, args.arch, args.sz, args.bs, stage),
                    "other": learner(other, path, args.arch, args.sz, args.bs, stage)}
        for learn, n in versions.values():   # warm-up: the first epoch pays one-time costs
            epoch_speed(learn, n)
        speeds = {v: [] for v in versions}
        for _ in range(args.repeats):
            for v, (learn, n) in versions.items():
                speeds[v].append(round(epoch_speed(learn, n), 2))
        result[stage] = {v: {"images_per_s_each": s, "images_per_s_median": statistics.median(s)}
                         for v, s in speeds.items()}
        result[stage]["this_over_other_speed"] = round(statistics.median(speeds["this"]) /
                                                      statistics.median(speeds["other"]), 3)
    save_result(f"compare_commits_{this_commit}_vs_{args.commit}_{args.sz}", result)


if __name__ == "__main__":
    main()
