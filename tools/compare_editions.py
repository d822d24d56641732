"""Do the English and the Chinese edition of a lesson give the same results? Run both, compare what they show.

Each lesson runs top to bottom in both editions (nbclient, one fresh kernel each, full mode unless
LESSONLIB_SMOKE=1 is set), then every table and value a code cell shows (DataFrames, a cell's last value) is
compared, cell by cell, matched by cell id, and so are the numbers each cell prints (sorted: printed text is in the
reader's language, and a translation may put its numbers in another order). Not compared: progress bars, figures,
the time column, printed durations and speeds, `%time`'s lines, and what a cell tagged `timing` prints (it
measures the machine) and its table rows about time. The same seeds give the same numbers, so any difference is a
finding.

    python tools/compare_editions.py 01 05          # writes benchmarks/results/compare_editions.json
"""
import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import save_result  # noqa: E402  (benchmarks/_results.py: JSON under benchmarks/results/)


def execute(path):
    """Run the notebook top to bottom; a cell that fails does not stop it (its error is compared like a value)."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=3600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb, time.perf_counter() - start


def failed(nb):
    """{cell id: 'ename: evalue'} for the cells that raised."""
    return {cell.get("id"): f"{out.ename}: {out.evalue}" for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.output_type == "error"}


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:e-?\d+)?%?(?!\w|\.\d)")   # not in a hash or a name
DURATION = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?\s*"
                      r"(?:s|ms|µs|us|ns|min|minutes?|seconds?|秒|毫秒|分钟|images?/s|张/秒)"
                      r"(?![A-Za-z])")
ENGLISH_LINE = re.compile(r"^\(English: .*?\)$", re.M | re.S)   # a Chinese message's English original, once more
CLOCK_LINE = re.compile(r"^(?:CPU times|Wall time): .*$", re.M)    # what IPython's %time prints


def printed_numbers(text):
    """The numbers in printed text, sorted (a translation may put them in another order), durations and speeds left
    out (they are the machine's, not the lesson's)."""
    return sorted(NUMBER.findall(DURATION.sub(" ", CLOCK_LINE.sub(" ", ENGLISH_LINE.sub(" ", text)))))


def timing_cells(nb):
    """The ids of the cells tagged `timing`."""
    return {cell.get("id") for cell in nb.cells if "timing" in cell.metadata.get("tags", [])}


def shown(nb, timing=()):
    """{cell id: [the text of each table or value the cell shows, then the numbers it prints]} without progress
    bars, figures, time columns and durations. `timing`: ids of more cells to treat as tagged `timing`."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.get("id") == "zh-language":
            continue
        clock = cell.get("id") in timing or "timing" in cell.metadata.get("tags", [])   # it measures the machine
        texts = []
        printed = "".join(out.get("text", "") for out in cell.outputs
                          if out.output_type == "stream" and out.get("name") == "stdout")
        for out in cell.outputs:
            if out.output_type == "error":
                texts.append(f"error: {out.ename}: {out.evalue}")
                continue
            text = out.get("data", {}).get("text/plain") if out.output_type in ("execute_result", "display_data") else None
            if not text or "it/s]" in text or text.startswith(("<Figure", "<", "VBox(", "HBox(")):
                continue
            lines = text.splitlines()
            if lines and lines[0].split() and lines[0].split()[-1] == "time":   # the training table's last column
                lines = [line.rsplit(None, 1)[0] for line in lines]
            if clock:
                lines = [line for line in lines if "time" not in line and "(s)" not in line]
            texts.append("\n".join(lines))
        numbers = [] if clock else printed_numbers(printed)
        if numbers:
            texts.append("printed: " + " ".join(numbers))
        found[cell["id"]] = texts
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lessons", nargs="+", help="e.g. 01 05")
    args = parser.parse_args(argv)
    lessons, ok = [], True
    for lesson in args.lessons:
        name = next((ROOT / "notebooks").glob(f"{lesson}_*.ipynb")).name
        en, en_s = execute(ROOT / "notebooks" / name)
        zh, zh_s = execute(ROOT / "notebooks" / "zh" / name)
        a, b = shown(en), shown(zh)
        differ = {k: {"en": a[k], "zh": b.get(k)} for k in a if a[k] != b.get(k)}
        same = sum(len(v) for k, v in a.items() if k not in differ)
        print(f"{name}: {same} tables and values identical, {len(differ)} cell(s) differ "
              f"(English {en_s:.0f} s, Chinese {zh_s:.0f} s)")
        for edition, nb in (("English", en), ("Chinese", zh)):
            for k, error in failed(nb).items():
                print(f"  {edition}: cell {k} failed: {error}")
        for k, v in differ.items():
            print(f"  cell {k}:\n    en: {v['en']}\n    zh: {v['zh']}")
        lessons.append({"notebook": name, "identical": same, "differ": differ, "en_s": round(en_s, 1),
                        "zh_s": round(zh_s, 1), "shown": a})
        ok = ok and not differ and not failed(en) and not failed(zh)
    save_result("compare_editions", {"lessons": lessons, "same": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
