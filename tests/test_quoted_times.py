"""Every lesson time and memory figure that the README's lesson table and each lesson's "What it needs" quote is
one that `benchmarks/measured/` holds for that lesson, network and device: no figure typed in by hand, none left
behind when a lesson is measured again.

Which network a measurement is for: a run with ImageNet weights is EfficientNet-Lite0 (every measuring machine
was offline, so the lessons' ResNets fell back to it, as the README says); a run with random weights is the
lesson's ResNet (ResNet50 where the file name says `resnet50`, ResNet34 otherwise), and counts only when every
failing cell failed an assert (random weights fail the accuracy asserts, nothing else may fail).
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "benchmarks" / "measured"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIME = re.compile(r"\b\d+ min \d\d s\b|\b\d+ s\b")


def quoted_time(seconds):
    """1002.9 -> '16 min 43 s', 14.1 -> '14 s': how the README and the lessons write a time."""
    s = round(seconds)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def runs():
    """{(notebook, network, device): {'time': .., 'memory': ..}} from every full-mode lesson measurement."""
    found = {}
    for path in sorted(MEASURED.glob("*/lesson_times_*.json")):
        run = json.loads(path.read_text())
        if run.get("smoke") != "0":
            continue
        device = "gpu" if "cuda" in path.name else "cpu"
        random = run.get("weights") == "random"
        network = ("ResNet50" if "resnet50" in path.name else "ResNet34") if random else "EfficientNet-Lite0"
        for lesson in run["lessons"]:
            errors = lesson.get("errors") or [lesson[k] for k in ("first_error",) if k in lesson]   # older runs
            only_asserts = errors and len(errors) == lesson["cells_with_errors"] and all(
                ": AssertionError" in e for e in errors)
            if lesson["passed"] or (random and only_asserts):
                found[(lesson["notebook"], network, device)] = {
                    "time": quoted_time(lesson["seconds"]), "memory": f"{lesson['peak_rss_gb']:.1f} GB"}
    return found


RUNS = runs()


def test_the_measurements_are_there():
    assert sum(device == "cpu" and net == "EfficientNet-Lite0" for _, net, device in RUNS) == len(NOTEBOOKS)


def test_a_time_is_written_the_way_the_lessons_write_it():
    assert [quoted_time(s) for s in (11.2, 59.6, 99.3, 780.7, 3086.1)] == [
        "11 s", "1 min 00 s", "1 min 39 s", "13 min 01 s", "51 min 26 s"]


def what_it_needs(nb):
    first = "".join(json.loads(nb.read_text())["cells"][0]["source"])
    paragraph = first[first.index("What it needs"):].split("\n\n")[0]
    return " ".join(paragraph.split())


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_what_it_needs_quotes_the_measured_figures(nb):
    text = what_it_needs(nb)
    expected = []
    for (name, network, device), got in RUNS.items():
        if name != nb.name:
            continue
        if device == "cpu":
            lesson_s = "the lesson's " if network.startswith("ResNet") else ""
            expected.append(f"{got['time']}, {got['memory']} with {lesson_s}{network}")
        else:
            expected.append(f"H200 GPU: {got['time']} ({network}")
    missing = [e for e in expected if e not in text]
    assert not missing, f"{nb.name}: 'What it needs' should say {missing}; it says: {text}"
    assert len(TIME.findall(text)) == len(expected), f"{nb.name}: a time that was not measured: {text}"
    if not any(name == nb.name and device == "gpu" for name, _, device in RUNS):
        assert "On a GPU: not measured" in text


def zh_time(quoted):
    """'13 min 01 s' -> '13 分 1 秒', '14 s' -> '14 秒': how README.zh.md writes a quoted time."""
    minutes, seconds = re.fullmatch(r"(?:(\d+) min )?(\d+) s", quoted).groups()
    return f"{minutes} 分 {int(seconds)} 秒" if minutes else f"{int(seconds)} 秒"


# How each README writes a row of the lesson table: (time, memory) of a run, a ResNet's row, no ResNet, no GPU run.
TABLE_STYLES = {
    "README.md": (lambda run: f"{run['time']}, {run['memory']}", lambda run, net: f"{run['time']}, {run['memory']} ({net})",
                  ("(no ResNet in this lesson)", "not measured"), lambda run: run["time"], "not measured"),
    "README.zh.md": (lambda run: f"{zh_time(run['time'])}，{run['memory']}",
                     lambda run, net: f"{zh_time(run['time'])}，{run['memory']}（{net}）",
                     ("（本课没有 ResNet）", "未测量"), lambda run: zh_time(run["time"]), "未测量"),
}


@pytest.mark.parametrize("readme", sorted(TABLE_STYLES))
def test_the_readmes_lesson_table_quotes_the_measured_figures(readme):
    cpu_cell, resnet_cell, no_resnet, gpu_cell, no_gpu = TABLE_STYLES[readme]
    rows = [line for line in (ROOT / readme).read_text().splitlines() if re.match(r"\| `\d\d_", line)]
    assert [r.split("`")[1] for r in rows] == [nb.name for nb in NOTEBOOKS]
    for row in rows:
        name, _, lite0, resnet, gpu = [cell.strip().strip("`") for cell in row.strip("|").split("|")]
        assert lite0 == cpu_cell(RUNS[(name, "EfficientNet-Lite0", "cpu")]), name
        nets = [net for net in ("ResNet34", "ResNet50") if (name, net, "cpu") in RUNS]
        if nets:
            assert resnet == resnet_cell(RUNS[(name, nets[0], "cpu")], nets[0]), name
        else:
            assert resnet in no_resnet, name
        on_gpu = RUNS.get((name, "EfficientNet-Lite0", "gpu"))
        assert gpu == (gpu_cell(on_gpu) if on_gpu else no_gpu), name
