"""Does installing lessonlib change a package a hosted notebook already has? Asked of pip itself.

A platform is a `pip freeze` list (`.ci/platforms/`: what Colab publishes for its runtimes). The CI jobs
build an environment holding the platform's versions of everything lessonlib could touch, ask pip what
`pip install <project>` would do there (`pip install --dry-run --report`, no constraints file), and hand the
report to `check`: any package pip would install that the platform or the environment already has is a
change (pip only lists what it would install, upgrade or replace); everything else is an addition.

    python scripts/platform_check.py constraints FREEZE > platform.txt   # pins for building the environment
    python scripts/platform_check.py needs FREEZE pyproject.toml         # what of it to install: lessonlib's part
    python scripts/platform_check.py check REPORT FREEZE [--installed FREEZE2] [--without NAME ...]
"""
import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

# Colab's torch is the CUDA 12.8 build from PyTorch's own index, which these machines cannot reach; PyPI's
# build of the same version brings its own CUDA libraries. So the environments take torch from PyPI and leave
# Colab's CUDA libraries out of the pins (they would contradict PyPI torch's exact pins on its own).
GPU_STACK = re.compile(r"^(nvidia-|cuda-|cupy|triton$|jax-cuda|cudf|cuml|cugraph|cuvs|cucim|rmm|raft|pylibraft|"
                       r"pylibcugraph|nx-cugraph|dask-cuda|libcu|librmm|libraft|libcuvs|libkvikio|kvikio|ucx|"
                       r"distributed-ucxx|ucxx|libucx)")

# What a kernel of the platform is made of, beyond lessonlib's own dependencies: the lessons run in it.
KERNEL = ["ipykernel", "ipython", "jupyter-client", "jupyter-core", "traitlets", "ipywidgets", "widgetsnbextension",
          "jupyterlab-widgets", "matplotlib-inline", "comm", "pyzmq", "tornado"]


def canonical(name):
    """A distribution's name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(path):
    """{canonical name: version} of a `pip freeze` file; packages installed from a URL have version None."""
    found = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        if " @ " in line:
            found[canonical(line.split(" @ ", 1)[0].split("[")[0])] = None
        elif "==" in line:
            name, version = line.split("==", 1)
            found[canonical(name.split("[")[0])] = version.strip()
    return found


def constraints(freeze):
    """Pins that rebuild the platform's packages from PyPI: no URL installs, no local version labels, no GPU stack."""
    return [f"{name}=={version.split('+')[0]}" for name, version in sorted(freeze.items())
            if version is not None and not GPU_STACK.match(name)]


def project_requirements(pyproject, extras=("keras",)):
    """The names of the project's dependencies, and of the named extras'."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project.get("optional-dependencies", {}).get(extra, [])
    return [canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs]


def needs(freeze, pyproject):
    """What of the platform to install so that the environment holds every package lessonlib's install touches."""
    wanted = project_requirements(pyproject) + KERNEL
    return [name for name in dict.fromkeys(wanted) if name in freeze]


def check(report, freeze, installed=None, without=()):
    """(changed, added) for pip's install report: changed names packages the platform (or environment) has."""
    platform = {name: version for name, version in freeze.items() if name not in {canonical(w) for w in without}}
    have = dict(installed or {})
    changed, added = [], []
    for item in report["install"]:
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
        if name in platform or name in have:
            changed.append((name, platform.get(name, have.get(name)), version))
        else:
            added.append((name, version))
    return changed, added


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("constraints")
    p.add_argument("freeze")
    p = sub.add_parser("needs")
    p.add_argument("freeze")
    p.add_argument("pyproject")
    p = sub.add_parser("check")
    p.add_argument("report")
    p.add_argument("freeze")
    p.add_argument("--installed", help="the environment's own `pip freeze`, for what it has beyond the platform")
    p.add_argument("--without", nargs="*", default=[], help="judge against the platform's list less these")
    args = parser.parse_args(argv)
    if args.command == "constraints":
        print("\n".join(constraints(read_freeze(args.freeze))))
    elif args.command == "needs":
        print(" ".join(needs(read_freeze(args.freeze), args.pyproject)))
    else:
        report = json.loads(Path(args.report).read_text())
        installed = read_freeze(args.installed) if args.installed else None
        changed, added = check(report, read_freeze(args.freeze), installed, args.without)
        label = Path(args.freeze).name + (f" without {', '.join(args.without)}" if args.without else "")
        print(f"{label}: pip would add {len(added)}: " + (", ".join(f"{n} {v}" for n, v in added) or "nothing"))
        if changed:
            print(f"{label}: pip would CHANGE {len(changed)} package(s) the platform has: "
                  + ", ".join(f"{n} {old} -> {new}" for n, old, new in changed))
            return 1
        print(f"{label}: no package of the platform changes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
