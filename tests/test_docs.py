"""The README a newcomer reads, and the pages beside it, say what the files say.

- every count, byte size and checksum data/README.md gives for the teaching sets and the font is computed here
  from `lessonlib/teaching_sets/` and `lessonlib/fonts/` (the folders' tar checksums: `PROVENANCE_TAR_SHA256` of
  tests/test_datasets.py, which checks them against GNU tar's output of the same folders);
- the number of lessons the README and docs/ state is the number of notebooks;
- the README and README.zh.md are at most 200 lines each, and every relative link in them, data/README.md and docs/
  leads to a file (and heading) that exists;
- every command the README shows in a code block runs and exits 0, except the ones in `NOT_RUN`, each with its
  reason. The commands are read from the README, so a new one cannot slip past: one this file does not know fails.
  README.zh.md's commands that the README does not show are held to the same rule (`NOT_RUN_ZH`); its
  `make install PIP_INDEX_URL=...` runs the Makefile into a stand-in .venv that records what each pip was given;
- README.zh.md's lesson table quotes the same measurements as the README's, its install figures are the README's
  or docs/measurements.md's, and what it says comes with lessonlib is there.

(The README's lesson table's times and memory are tests/test_quoted_times.py's; the README's Colab cell,
test_hosted.py's.)
"""
import csv
import gzip
import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_datasets import PROVENANCE_TAR_SHA256
from tests.test_quoted_times import RUNS, zh_time

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh.md"
DATA_README = ROOT / "data" / "README.md"
SETS = ROOT / "lessonlib" / "teaching_sets"
FONT = ROOT / "lessonlib" / "fonts" / "NotoSansSC-lessonlib.otf"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = [README, README_ZH, DATA_README, *sorted((ROOT / "docs").glob("*.md"))]


def number(text):
    """'1,284,803' -> 1284803."""
    return int(text.replace(",", ""))


def section(name):
    """The text of data/README.md's `### name` section."""
    text = DATA_README.read_text()
    start = text.index(f"\n### {name}\n")
    end = text.find("\n#", start + 1)
    return text[start:end if end != -1 else None]


def quoted(pattern, text):
    found = re.search(pattern, text, re.S)
    assert found, f"data/README.md no longer says {pattern!r}: update this test with the page"
    return found.groups()


def files(name):
    return sorted(p for p in (SETS / name).rglob("*") if p.is_file())


# ---------------------------------------------------------------- data/README.md against the files

@pytest.mark.parametrize("name", ["dogscats-mini", "planet-mini", "mnist-digits"])
def test_each_folder_sets_files_bytes_and_tar_checksum_are_the_files(name):
    count, size, tar = quoted(r"([\d,]+) files, ([\d,]+) bytes; tar SHA-256\s+`([0-9a-f]{64})`", section(name))
    assert number(count) == len(files(name)), f"{name}: data/README.md says {count} files"
    assert number(size) == sum(p.stat().st_size for p in files(name)), \
        f"{name}: data/README.md says {size} bytes; the files add up to {sum(p.stat().st_size for p in files(name)):,}"
    assert tar == PROVENANCE_TAR_SHA256[name]


def test_dogscats_minis_splits_are_what_the_page_says():
    train, valid, last = quoted(r"`train/\{cats,dogs\}/` (\d+) photos each, `valid/\{cats,dogs\}/` (\d+) each,\s+"
                                r"`test/0001\.jpg … (\d+)\.jpg`", section("dogscats-mini"))
    root = SETS / "dogscats-mini"
    for split, n in (("train", train), ("valid", valid)):
        for label in ("cats", "dogs"):
            assert len(list((root / split / label).iterdir())) == int(n), f"{split}/{label}"
    assert sorted(p.name for p in (root / "test").iterdir()) == [f"{i:04d}.jpg" for i in range(1, int(last) + 1)]


def test_planet_minis_chips_and_tags_are_what_the_page_says():
    from PIL import Image

    text = section("planet-mini")
    chips, width, height = quoted(r"(\d+) chips of (\d+)×(\d+) RGB", text)
    n_tags, fewest, most = quoted(r"all (\d+) competition tags; (\d+) to (\d+)\s+per chip", text)
    photos = sorted((SETS / "planet-mini" / "train-jpg").glob("*.jpg"))
    assert len(photos) == int(chips)
    for photo in photos:
        with Image.open(photo) as im:
            assert (im.size, im.mode) == ((int(width), int(height)), "RGB"), photo.name
    with open(SETS / "planet-mini" / "train_v2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tags = [row["tags"].split() for row in rows]
    assert sorted(row["image_name"] + ".jpg" for row in rows) == [p.name for p in photos]
    assert len({t for chip in tags for t in chip}) == int(n_tags)
    assert (min(map(len, tags)), max(map(len, tags))) == (int(fewest), int(most))


def test_mnist_digits_are_what_the_page_says():
    from PIL import Image

    n, width, height, each = quoted(r"(\d+) PNGs .*?, (\d+)×(\d+) 8-bit greyscale, (\d+) of each digit",
                                    section("mnist-digits"))
    pngs = sorted((SETS / "mnist-digits").glob("*.png"))
    assert len(pngs) == int(n)
    labels = [re.match(r"label(\d)_row\d{4}\.png", p.name).group(1) for p in pngs]
    assert sorted(labels) == sorted(str(d) for d in range(10) for _ in range(int(each)))
    for png in pngs:
        with Image.open(png) as im:
            assert (im.size, im.mode) == ((int(width), int(height)), "L"), png.name


def test_mnist_5ks_file_rows_and_checksums_are_what_the_page_says():
    text = section("mnist-5k")
    size, digest = quoted(r"`mnist_5k\.csv\.gz` \(([\d,]+) bytes, SHA-256\s+`([0-9a-f]{64})`\)", text)
    rows_said, pixels = quoted(r"([\d,]+) rows of (\d+) pixel values", text)
    per_class, = quoted(r"(\d+) digits of each class", text)
    folder_tar, = quoted(r"Folder tar SHA-256 `([0-9a-f]{64})`", text)
    path = SETS / "mnist-5k" / "mnist_5k.csv.gz"
    assert files("mnist-5k") == [path]
    assert path.stat().st_size == number(size)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert folder_tar == PROVENANCE_TAR_SHA256["mnist-5k"]
    rows = [line.split(",") for line in gzip.decompress(path.read_bytes()).decode().split()]
    assert len(rows) == number(rows_said)
    assert {len(row) for row in rows} == {int(pixels) + 1}   # the pixels, then the label
    labels = [row[-1] for row in rows]
    assert {labels.count(str(d)) for d in range(10)} == {int(per_class)}


def test_the_fonts_size_checksum_and_code_points_are_what_the_page_says():
    from fontTools.ttLib import TTFont

    text = DATA_README.read_text()
    size, digest = quoted(r"`lessonlib/fonts/NotoSansSC-lessonlib\.otf` \(([\d,]+) bytes, SHA-256 `([0-9a-f]{64})`\)",
                          text)
    hanzi, asked, mapped, other, in_cmap = quoted(
        r"the ([\d,]+) hanzi .*?: ([\d,]+) code points asked for, of which the font maps ([\d,]+) .*?and (\d+) more"
        r" .*?: ([\d,]+) in its cmap", text)
    assert FONT.stat().st_size == number(size)
    assert hashlib.sha256(FONT.read_bytes()).hexdigest() == digest
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_cjk_font
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    gb2312 = {ord(c) for c in make_cjk_font.gb2312()}
    wanted = gb2312 | set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | set(range(0x3000, 0x3040)) \
        | set(range(0xFF00, 0xFFF0))   # the ranges the page names, as scripts/make_cjk_font.py asks for them
    cmap = set(TTFont(FONT).getBestCmap())
    assert sum(0x4E00 <= c <= 0x9FFF for c in gb2312) == number(hanzi)
    assert gb2312 & set(range(0x4E00, 0xA000)) <= cmap
    assert len(wanted) == number(asked)
    assert len(cmap & wanted) == number(mapped) and len(cmap - wanted) == int(other) and len(cmap) == number(in_cmap)


def test_what_the_readme_says_comes_with_lessonlib_is_there():
    text = " ".join(README.read_text().split())
    photos, chips, digits, more = quoted(r"`dogscats-mini`: ([\d,]+) cat and dog photos; `planet-mini`: ([\d,]+) "
                                         r"satellite chips with their tags; (\d+) MNIST digits and ([\d,]+) more", text)
    assert number(photos) == len(files("dogscats-mini"))
    assert number(chips) == len(list((SETS / "planet-mini" / "train-jpg").glob("*.jpg")))
    assert number(digits) == len(files("mnist-digits"))
    with gzip.open(SETS / "mnist-5k" / "mnist_5k.csv.gz", "rt") as f:
        assert number(more) == sum(1 for _ in f)


# ---------------------------------------------------------------- the lessons, the length, the links

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen".split())}


def test_every_count_of_the_lessons_is_the_number_of_notebooks():
    counts = []
    for page in PAGES:
        text = " ".join(page.read_text().split())
        for said in re.findall(r"\b(\d+|[a-z]+) lessons\b", text, re.I):
            value = int(said) if said.isdigit() else NUMBER_WORDS.get(said.lower())
            if value is not None:
                counts.append((page.name, said, value))
        counts += [(page.name, said, int(said)) for said in re.findall(r"全部 (\d+) 课", text)]
    assert ("README.md", "11", 11) in counts or len(NOTEBOOKS) != 11, "the README should say how many lessons"
    wrong = [(page, said) for page, said, value in counts if value != len(NOTEBOOKS)]
    assert not wrong, f"there are {len(NOTEBOOKS)} lessons (notebooks/NN_*.ipynb), but these say otherwise: {wrong}"
    rows = re.findall(r"^\| `(\d\d_[^`]+\.ipynb)` \|", README.read_text(), re.M)
    assert rows == [nb.name for nb in NOTEBOOKS]


@pytest.mark.parametrize("page", [README, README_ZH], ids=lambda p: p.name)
def test_the_readme_is_at_most_200_lines(page):
    assert len(page.read_text().splitlines()) <= 200


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)   # code is not a link
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_slugs_are_githubs():
    assert slug("Colab and Kaggle: what we ran") == "colab-and-kaggle-what-we-ran"
    assert slug("Pretrained weights in a classroom without internet") == "pretrained-weights-in-a-classroom-without-internet"
    assert slug("The command line and several processes") == "the-command-line-and-several-processes"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):   # https:, mailto:: not ours to check here
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(target)
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"


# ---------------------------------------------------------------- the README's commands, run

# Commands the README shows that this test does not run, each with why. A key is the start of a command (or of a
# Python block's first line).
NOT_RUN = {
    "make lab": "opens a JupyterLab server and waits for you to close it",
    "make test": "is this test suite itself (12 to 16 min on 2 cores in our runs: docs/measurements.md)",
    ".venv/bin/python -m lessonlib fetch-weights": "downloads torchvision's weights: needs the network",
    ".venv/bin/python -m lessonlib app": "serves a web page until Ctrl-C; tests/test_export.py loads an export and the app's tests "
                                         "serve its page",
    "!": "a Colab or Kaggle cell (`!` runs a shell there); tests/test_hosted.py checks what scripts/hosted.py writes",
    "make app": "serves a web page until Ctrl-C (the same command as the line below)",
    "path = learn.export(": "needs a trained learner from a lesson; tests/test_export.py exports one and loads it",
}
# How the ones that run are run: with this Python for `.venv/bin/python`, in the repository's root, in smoke mode
# (a small sample of the photos: the commands' own full mode is what `make test-full` times), offline (weights fall
# back to the packaged EfficientNet-Lite0, as the README says), with a LESSONLIB_HOME of their own.
SMOKE = {"LESSONLIB_SMOKE": "1", "LESSONLIB_OFFLINE": "1"}


def readme_commands(page=README):
    """Every shell command (one per line) and every Python block in the page's fenced code blocks."""
    found = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.M | re.S):
        if lang in ("bash", "sh", "shell", "console", ""):
            for line in body.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    found.append(shlex.join(words))
        elif lang == "python":
            found.append(body)
        else:
            found.append(f"<a ```{lang} block this test cannot run: {body[:40]!r}>")
    return found


def not_run_key(command, not_run=NOT_RUN):
    """The key of `not_run` that covers `command` (its first line starts with it, as a whole word), or None."""
    first = command.splitlines()[0]
    return next((start for start in not_run if first == start or first.startswith(
        start if start.endswith(("!", "(")) else start + " ")), None)


def _param(command):
    why = NOT_RUN.get(not_run_key(command))
    label = command.splitlines()[0][:60]
    return pytest.param(command, id=label, marks=[pytest.mark.skip(reason=why)] if why else [])


def test_the_commands_are_found_and_every_reason_is_still_needed():
    commands = readme_commands()
    assert ".venv/bin/python -m lessonlib doctor" in commands and "make lab" in commands
    assert any(c.startswith("from lessonlib import ConvLearner") for c in commands)
    stale = sorted(set(NOT_RUN) - {not_run_key(c) for c in commands})
    assert not stale, f"NOT_RUN names commands the README no longer shows: {stale}"


@pytest.mark.parametrize("command", [_param(c) for c in readme_commands()])
def test_a_command_the_readme_shows_runs(command, tmp_path):
    env = {**os.environ, **SMOKE, "LESSONLIB_HOME": str(tmp_path / "home")}
    if "\n" in command:   # a Python block
        argv = [sys.executable, "-c", command]
    else:
        words = shlex.split(command)
        assert words[0] == ".venv/bin/python", (
            f"the README shows {command!r}: run it here like the others, or add it to NOT_RUN with the reason")
        argv = [sys.executable, *words[1:]]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\nexit status {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


# ---------------------------------------------------------------- README.zh.md: the same figures, its own commands

def test_zh_time():
    assert [zh_time(t) for t in ("11 s", "1 min 39 s", "13 min 01 s")] == ["11 秒", "1 分 39 秒", "13 分 1 秒"]


def test_what_the_chinese_readme_says_comes_with_lessonlib_is_there():
    text = " ".join(README_ZH.read_text().split())
    found = re.search(r"`dogscats-mini`：([\d,]+) 张猫狗照片；`planet-mini`： ?([\d,]+) 张带标签的卫星图块；"
                      r"(\d+) 张 MNIST 手写数字，另有 ([\d,]+) 张", text)
    assert found, "README.zh.md no longer says what comes with lessonlib: update this test with the page"
    photos, chips, digits, more = found.groups()
    assert number(photos) == len(files("dogscats-mini"))
    assert number(chips) == len(list((SETS / "planet-mini" / "train-jpg").glob("*.jpg")))
    assert number(digits) == len(files("mnist-digits"))
    with gzip.open(SETS / "mnist-5k" / "mnist_5k.csv.gz", "rt") as f:
        assert number(more) == sum(1 for _ in f)


def test_the_chinese_readmes_sizes_are_the_measured_ones():
    """Every size README.zh.md gives (GiB, GB, MB) is one the README or docs/measurements.md states, there in the
    same unit or in bytes that round to it."""
    measured = README.read_text() + (ROOT / "docs" / "measurements.md").read_text()
    in_bytes = {number(b) for b in re.findall(r"\b(\d{1,3}(?:,\d{3}){2,})\b", measured)}
    sizes = re.findall(r"(\d+(?:\.\d+)?) (GiB|GB|MB)\b", README_ZH.read_text())
    assert len(sizes) >= 5
    unknown = [f"{n} {unit}" for n, unit in sizes
               if f"{n} {unit}" not in measured and f"{n}{unit[0]}" not in measured
               and not (unit == "MB" and any(f"{b / 1e6:.1f}" == n for b in in_bytes))]
    assert not unknown, f"README.zh.md gives sizes nobody measured: {unknown}"


def test_the_chinese_readme_uses_the_glossarys_words():
    """One word per idea, as the Chinese lessons: the translations check's rules (scripts/translations.py) on the
    page as if it were one cell of a lesson."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import translations
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    found = translations.word_problems({"cells": {"README.zh.md": {"zh": README_ZH.read_text()}}})
    assert not found, "\n".join(found)


# Commands README.zh.md shows and the README does not (those are run above, as the README's), each with why it is
# not run here. Its `make install PIP_INDEX_URL=...` is run, below.
NOT_RUN_ZH = {
    "make lab-zh": "opens a JupyterLab server and waits for you to close it",
    "python3.11 -m venv .venv": "the first step `make install` takes itself (`$(PYTHON) -m venv $(VENV)`); here it "
                                "would replace this checkout's .venv",
    ".venv/bin/python -m pip install torch==2.14.1": "needs download.pytorch.org, which our machines cannot reach "
                                                     "(its name does not resolve): not tried, and the page says so",
    "wsl --install": "Windows' own command (PowerShell), not one for Linux",
    "sudo apt install": "installs system packages as root",
}


def zh_only_commands():
    english = set(readme_commands())
    return [c for c in readme_commands(README_ZH) if c not in english]


def _zh_param(command):
    why = {**NOT_RUN, **NOT_RUN_ZH}.get(not_run_key(command, {**NOT_RUN, **NOT_RUN_ZH}))
    return pytest.param(command, id=command.splitlines()[0][:60], marks=[pytest.mark.skip(reason=why)] if why else [])


def test_the_chinese_commands_are_found_and_every_reason_is_still_needed():
    commands = zh_only_commands()
    assert any(c.startswith("make install PIP_INDEX_URL=") for c in commands)
    stale = sorted(set(NOT_RUN_ZH) - {not_run_key(c, NOT_RUN_ZH) for c in commands})
    assert not stale, f"NOT_RUN_ZH names commands README.zh.md no longer shows: {stale}"


def run_make_install(command, tmp_path):
    """Runs `make install ...` as the page shows it, but into a stand-in .venv whose python records the
    PIP_INDEX_URL each call was given (and installs nothing). Returns the recorded lines."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\necho "$PIP_INDEX_URL|$*" >> "$(dirname "$0")/../calls"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "MAKE"))}
    done = subprocess.run([*shlex.split(command), f"VENV={venv}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return (venv / "calls").read_text().splitlines()


@pytest.mark.parametrize("command", [_zh_param(c) for c in zh_only_commands()])
def test_a_command_only_the_chinese_readme_shows_runs(command, tmp_path):
    words = shlex.split(command)
    assert words[:2] == ["make", "install"], (
        f"README.zh.md shows {command!r}: run it here, or add it to NOT_RUN_ZH with the reason")
    url = dict(w.split("=", 1) for w in words[2:])["PIP_INDEX_URL"]
    calls = run_make_install(command, tmp_path)
    pips = [c for c in calls if "-m pip install" in c]
    assert pips and len(pips) == len(calls), calls
    assert all(c.split("|")[0] == url for c in calls), f"make did not hand pip the mirror: {calls}"
