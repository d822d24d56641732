"""How long does each lesson take, and how much memory, run top to bottom as a student runs it?

Each notebook runs in its own Jupyter kernel (nbclient), one after another in order, in a fresh
process so that its peak memory is its own: wall time, the kernel's peak resident memory (RSS),
the peak GPU memory (nvidia-smi, sampled every 0.2 s, when a GPU is present) and whether every cell
passed. Full mode (what a student runs) unless `LESSONLIB_SMOKE=1` is set. Writes JSON to
benchmarks/results/lesson_times_<device>[_<tag>].json; exit status 1 when any notebook failed.

    python benchmarks/lesson_times.py                      # every lesson, full mode
    python benchmarks/lesson_times.py 01 05 --tag resnet   # some lessons
    LESSONLIB_WEIGHTS=random python benchmarks/lesson_times.py --allow-errors --tag random
        # times the lessons' own networks with random weights (their accuracy asserts then fail:
        # --allow-errors runs every cell anyway, so the time is the whole lesson's)
    ... lesson_times.py 05 --substitute 'else "efficientnet_lite0"' 'else "resnet34"' --tag resnet
        # what a lesson costs with another setting: the text is replaced in its code cells first
    ... lesson_times.py 00 02 06 --python /path/to/other/env/bin/python
        # the lessons in a kernel of another environment (.ci/colab: a hosted notebook's package versions)
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def gpu_memory_sampler():
    """(start, stop) of a thread that records the highest GPU memory in use (MiB) that nvidia-smi reports."""
    if shutil.which("nvidia-smi") is None:
        return None
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            if out:
                peak[0] = max(peak[0], max(int(v) for v in out))
            done.wait(0.2)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def stop():
        done.set()
        thread.join()
        return peak[0]
    return stop


def kernel_for(python):
    """The name of a Jupyter kernel that runs `python` (an environment with ipykernel), registered for this process."""
    folder = Path(tempfile.mkdtemp(prefix="lessonlib-kernels-"))
    name = "lessons-" + folder.name.rsplit("-", 1)[-1]
    (folder / "kernels" / name).mkdir(parents=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({python})", "language": "python"}
    (folder / "kernels" / name / "kernel.json").write_text(json.dumps(spec))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")]))
    return name


def kernel_versions(python):
    """Python and the main packages' versions, as the kernel's interpreter has them."""
    code = ("import json, platform, torch, numpy, IPython, ipykernel, ipywidgets; print(json.dumps({'python': "
            "platform.python_version(), 'torch': torch.__version__, 'numpy': numpy.__version__, 'IPython': "
            "IPython.__version__, 'ipykernel': ipykernel.__version__, 'ipywidgets': ipywidgets.__version__}))")
    return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


def run_one(path, timeout, allow_errors, substitute=None, kernel_name="python3"):
    """Execute one notebook in a new kernel; return its measurements (called in a process of its own)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    replaced = 0
    for old, new in substitute or []:
        for cell in nb.cells:
            if cell.cell_type == "code" and old in cell.source:
                cell.source = cell.source.replace(old, new)
                replaced += 1
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})

    def stop_kernel(*_):   # the kernel runs in a session of its own: a timeout's signal would miss it
        pid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pid", None)
        if pid:
            os.killpg(pid, signal.SIGKILL)
        os._exit(143)
    signal.signal(signal.SIGTERM, stop_kernel)
    stop_gpu = gpu_memory_sampler()
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1][:300]
    except Exception as e:   # a timeout, a dead kernel: still report the time it took
        error = f"{type(e).__name__}: {e}"[:300]
    seconds = time.perf_counter() - start
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    result = {
        "notebook": path.name,
        "seconds": round(seconds, 1),
        # ru_maxrss of the waited-for children: the kernel is the only big one (KiB on Linux)
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
        "passed": error is None and not errors,
        "cells_with_errors": len(errors),
    }
    if substitute:
        result["substituted_in_cells"] = replaced
    if errors:   # every failing cell, so a run with --allow-errors shows which failed and why (e.g. only accuracy asserts)
        result["errors"] = [_describe(i, o) for i, o in errors]
        result["first_error"] = result["errors"][0]
    if error:
        result["error"] = error
    if stop_gpu is not None:
        result["peak_gpu_memory_gb"] = round(stop_gpu() / 1024, 2)
    return result


def _describe(i, output):
    """'cell i: Error: message (the traceback line that asserts or raises)'."""
    where = next((line for line in reversed(output["traceback"]) if "assert" in line or "Error" in line), "")
    return f"cell {i}: {output['ename']}: {_plain(output['evalue'])[:120]} ({_plain(where)[:160]})"


def _plain(text):
    """A traceback line without its terminal colour codes."""
    import re
    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="notebook name prefixes, e.g. 01 05 (default: all)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may take")
    parser.add_argument("--allow-errors", action="store_true", help="run every cell even after one fails")
    parser.add_argument("--tag", default="", help="added to the result file's name")
    parser.add_argument("--substitute", nargs=2, action="append", metavar=("OLD", "NEW"),
                        help="replace this text in the code cells before running (e.g. the network)")
    parser.add_argument("--python", help="run the lessons in a kernel of this interpreter (another environment)")
    parser.add_argument("--kernel", default="python3", help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)   # internal: run this notebook in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one), args.timeout, args.allow_errors, args.substitute, args.kernel)))
        return 0

    os.environ.setdefault("LESSONLIB_HOME", tempfile.mkdtemp(prefix="lessonlib-lessons-"))   # shared by the lessons
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not args.lessons or p.name[:2] in args.lessons)
    if not paths:
        parser.error(f"no notebook starts with {args.lessons}")
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    summary = {"device": device, "python": platform.python_version(), "torch": torch.__version__,
               **({"kernel": args.python, **kernel_versions(args.python)} if args.python else {}),
               "smoke": os.environ.get("LESSONLIB_SMOKE", "0"), "weights": os.environ.get("LESSONLIB_WEIGHTS", "imagenet"),
               "lessons": []}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))   # let the lesson running stop its kernel first
    if args.python:
        args.kernel = kernel_for(args.python)
        print("kernel:", ", ".join(f"{k} {v}" for k, v in summary.items() if k in
                                   ("kernel", "python", "torch", "numpy", "IPython", "ipykernel", "ipywidgets")))
    print(f"{'notebook':<36} {'time':>8} {'peak RSS':>9}  result", flush=True)
    for path in paths:
        if stopping:
            break
        cmd = [sys.executable, __file__, "--one", str(path), "--timeout", str(args.timeout), "--kernel", args.kernel]
        if args.allow_errors:
            cmd.append("--allow-errors")
        for old, new in args.substitute or []:
            cmd += ["--substitute", old, new]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            row = {"notebook": path.name, "passed": False, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
        else:
            row = json.loads(lines[-1])
        summary["lessons"].append(row)
        verdict = "passed" if row["passed"] else f"FAILED: {row.get('error') or row.get('first_error')}"
        print(f"{path.name:<36} {row.get('seconds', float('nan')):>7.1f}s {row.get('peak_rss_gb', float('nan')):>7.2f}GB"
              f"  {verdict}", flush=True)
        write(summary, args.tag)   # after every lesson: an interrupted run keeps what it measured
    if args.substitute and not any(r.get("substituted_in_cells") for r in summary["lessons"]):
        print("none of the --substitute texts was found in these lessons: they ran unchanged", file=sys.stderr)
        return 1
    return 0 if all(r["passed"] for r in summary["lessons"]) else 1


def write(summary, tag):
    device = "cuda" if "cpu" not in summary["device"] else "cpu"
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    name = f"lesson_times_{device}" + (f"_{tag}" if tag else "")
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
