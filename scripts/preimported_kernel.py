"""A hosted notebook's first minutes: a kernel that has already imported numpy, pandas and matplotlib (every
Colab kernel has) installs the project with pip and runs the README's first snippet, with no restart.

    python scripts/preimported_kernel.py ENV_PYTHON PROJECT_FOLDER

ENV_PYTHON: the interpreter of the environment (it needs ipykernel); the snippet is read from README.md, so
this checks what the README says. Exit status 0 when every cell ran; the cells' output is printed.
"""
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from lesson_times import kernel_for  # noqa: E402


def readme_snippet(readme):
    """The README's first ```python block: the lesson's code as a student first types it."""
    return re.search(r"```python\n(.*?)```", Path(readme).read_text(), re.S).group(1)


def cells(project, snippet):
    before = """\
import sys
import matplotlib
import matplotlib.pyplot as plt
import numpy
import pandas
versions = (numpy.__version__, pandas.__version__, matplotlib.__version__)
print("before the install:", versions)
try:
    import lessonlib
    raise AssertionError(f"lessonlib is installed already ({lessonlib.__file__}): this checks a fresh kernel")
except ModuleNotFoundError:
    pass"""
    after = """\
import importlib.metadata as md
now = (md.version("numpy"), md.version("pandas"), md.version("matplotlib"))
assert now == versions, f"pip changed packages this kernel had imported: {versions} -> {now}"
assert len(learn.data.trn_ds) > 0 and "lessonlib" in sys.modules
print("the snippet ran in the same kernel, without a restart; installed versions unchanged:", now)"""
    return [before, f"%pip install -q {project}", snippet, after]


def main(python, project):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells(project, readme_snippet(ROOT / "README.md"))]
    workdir = tempfile.mkdtemp(prefix="hosted-notebook-")   # like Colab's /content: not inside the project
    client = NotebookClient(nb, timeout=1800, kernel_name=kernel_for(python), resources={"metadata": {"path": workdir}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as e:
        failed = e
    for cell in nb.cells:
        print(">>> " + cell.source.replace("\n", "\n... "))
        for out in cell.get("outputs", []):
            text = out.get("text") or "\n".join(out.get("traceback", [])) or out.get("data", {}).get("text/plain", "")
            print(re.sub(r"\x1b\[[0-9;]*m", "", text).rstrip())
    if failed:
        print(f"FAILED: {str(failed).strip().splitlines()[-1]}")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
