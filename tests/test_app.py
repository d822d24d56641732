"""The exported model's web page: `python -m lessonlib app MODEL`, opened in headless Chromium as a user would.

The browser tests need Debian's chromium (`apt-get install chromium`) and the playwright package (its driver
comes with the wheel; `playwright install` is never needed). Where either is missing they are skipped with the
reason, except in CI (CI=true), where they fail: CI must really open the page.
"""
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from lessonlib import ConvLearner, ImageClassifierData, tfms_from_model
from lessonlib.app import Page, prepare_page, voila_command
from lessonlib.export import load_learner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def browser_or_skip():
    """playwright's sync API, or a skip that says what is missing. In CI (CI=true) a missing chromium is a failure:
    .ci/run installs it, so the page must really be opened there. Without the packages of requirements.txt
    (playwright, voila: the compatibility job installs lessonlib alone) the test is skipped, also in CI."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = "the browser test needs Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": in CI it must run (.ci/run installs it)")
        pytest.skip(reason)
    missing = [f"the {name} package" for name in ("playwright", "voila") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip("the browser test needs " + " and ".join(missing) + " (pip install -r requirements.txt)")
    from playwright.sync_api import sync_playwright
    return sync_playwright


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(export path, {class: a validation photo the model gets right}): the quick model on dogscats-mini's smoke
    sample (EfficientNet-Lite0, precompute, one epoch), exported."""
    from lessonlib import datasets
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LESSONLIB_HOME", str(home))
        mp.setenv("LESSONLIB_SMOKE", "1")
        torch.manual_seed(0)
        data = ImageClassifierData.from_paths(datasets.get("dogscats-mini"), tfms=tfms_from_model("efficientnet_lite0", 64),
                                              bs=8, device="cpu")
        learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
        learn.fit(1e-2, 2)
        f = learn.export(home / "exports" / "pets.pt")
    model = load_learner(f)
    right = {}
    for file, label in zip(data.val_ds.fnames, data.val_ds.y):
        cls = data.classes[label]
        if cls not in right and model.predict(file)[0] == cls:
            right[cls] = Path(file)
    assert right, "the quick model got no validation photo right"
    return f, right


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """{file: what the page must say}: a text file, a 100-megapixel photo, a JPEG cut off mid-copy."""
    folder = tmp_path_factory.mktemp("bad")
    (folder / "notes.txt").write_text("the dog park, Sunday")
    Image.new("RGB", (10000, 10000), (120, 90, 60)).save(folder / "huge.jpg", quality=50)
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 160, 90)).save(photo, format="JPEG")
    (folder / "cut.jpg").write_bytes(photo.getvalue()[:len(photo.getvalue()) // 2])
    return {folder / "notes.txt": "notes.txt is not a photo",
            folder / "huge.jpg": "huge.jpg is 10000x10000 pixels (100 megapixels)",
            folder / "cut.jpg": "cut.jpg is damaged or incomplete"}


# ---------------------------------------------------------------- the page's state, without a browser

def test_the_page_answers_with_each_class_and_a_figure(exported):
    f, right = exported
    page = Page(f)
    cls, photo = next(iter(right.items()))
    html, fig = page.show(photo.name, photo.read_bytes())
    assert page.answer == cls and set(page.probs) == {"cats", "dogs"} and page.message is None
    assert f"its answer: {cls}" in html and html.count("<tr>") == 2 and fig is not None
    assert len(fig.axes) >= 2   # TryIt's picture: the Grad-CAM map and a bar per class


def test_each_bad_input_gets_a_message_and_the_page_keeps_working(exported, bad_inputs):
    f, right = exported
    page = Page(f)
    for file, says in bad_inputs.items():
        html, fig = page.show(file.name, file.read_bytes())
        assert fig is None and page.answer is None and says in page.message and "lessonlib-problem" in html
    photo = next(iter(right.values()))
    assert page.show(photo.name, photo.read_bytes())[1] is not None and page.answer is not None


def test_the_page_speaks_chinese(exported, monkeypatch):
    f, right = exported
    monkeypatch.setenv("LESSONLIB_LANG", "zh")
    page = Page(f)
    photo = next(iter(right.values()))
    assert "它的答案" in page.show(photo.name, photo.read_bytes())[0]
    assert "不是" in page.show("notes.txt", b"the dog park")[0]


def test_a_class_name_is_shown_as_text_not_as_html(exported):
    page = Page(exported[0])
    page.name, page.answer, page.probs = "<b>x</b>.jpg", "<script>", {"<script>": 1.0}
    html = page._answer_html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html


def test_the_app_command_refuses_a_file_that_is_not_an_export(tmp_path, capsys, monkeypatch):
    from lessonlib.__main__ import main
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    (tmp_path / "notes.pt").write_text("hello")
    assert main(["app", str(tmp_path / "notes.pt"), "--port", "1"]) == 1
    assert "is not a lessonlib export" in capsys.readouterr().err


def test_the_page_is_a_copy_the_student_can_change(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    page = prepare_page(exported[0])
    assert page == tmp_path / "home" / "app" / "app.ipynb" and (page.parent / "app.json").is_file()
    page.write_text(page.read_text().replace("page.widget()", "page.widget()  # mine"))
    assert "# mine" in prepare_page(exported[0]).read_text()   # kept, not copied over
    command = voila_command(page, 8123)
    assert "--port=8123" in command and "--Voila.ip=127.0.0.1" in command


def test_two_app_commands_in_one_home_each_serve_their_own_model(exported, tmp_path, monkeypatch):
    """The second command rewrites app.json (for JupyterLab), but each server's pages keep the model it was started
    with: the command gives it to its own server as LESSONLIB_APP_MODEL."""
    import lessonlib.app as app
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    shutil.copyfile(exported[0], first)
    shutil.copyfile(exported[0], second)
    started = []

    class Voila:   # stands in for the server: records how it was started
        def __init__(self, command, cwd, env):
            started.append(env)

        def wait(self):
            return 0
    monkeypatch.setattr(app.subprocess, "Popen", Voila)
    monkeypatch.setitem(sys.modules, "voila", types.ModuleType("voila"))   # installed or not: it is not started
    for model in (first, second):
        assert app.serve(model, port=_free_port()) == 0
    assert [env["LESSONLIB_APP_MODEL"] for env in started] == [str(first.resolve()), str(second.resolve())]
    assert json.loads((app.page_folder() / app.SETTINGS).read_text())["model"] == str(second.resolve())
    monkeypatch.setenv("LESSONLIB_APP_MODEL", started[0]["LESSONLIB_APP_MODEL"])   # inside the first server
    assert Page.from_settings(app.page_folder()).model.source == first.resolve()


# ---------------------------------------------------------------- the page in Chromium

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid):
    """Every process started under `pid` (children, grandchildren: Voila's kernels), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p and c not in found]
        found.update(kids)
        todo.extend(kids)
    return found


class Server:
    """`python -m lessonlib app MODEL --port P`, started and always stopped with everything it started."""

    def __init__(self, model, home, lang="en"):
        self.port = _free_port()
        env = {**os.environ, "LESSONLIB_HOME": str(home), "LESSONLIB_LANG": lang}
        self.log = open(Path(home).parent / f"app-{self.port}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "lessonlib", "app", str(model), "--port",
                                         str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"

    def wait(self, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the app stopped (exit {self.process.returncode}): {self.text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the app did not answer at {self.url} in {timeout} s: {self.text()}")

    def text(self):
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self):
        started = _descendants(self.process.pid)
        self.process.send_signal(signal.SIGTERM)   # the app stops Voila, which shuts its kernels down
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        deadline = time.time() + 30
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in started):
            time.sleep(0.5)
        left = [p for p in started if Path(f"/proc/{p}").exists()]
        for p in left:   # never leave a process behind, even if the test is about to fail
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        return left


def upload(page, file, timeout=120_000):
    """Give `file` to the page's upload button as a user would, and wait for the page's reply to it; returns the
    seconds from the upload to the reply shown."""
    with page.expect_file_chooser() as chooser:
        page.click("button.widget-upload")
    start = time.perf_counter()
    chooser.value.set_files(str(file))
    page.wait_for_selector(f'[data-file="{Path(file).name}"]', timeout=timeout)
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    browser_or_skip()
    home = tmp_path_factory.mktemp("app_home")
    running = Server(exported[0], home)
    try:
        yield running.wait()
    finally:
        left = running.stop()
        assert not left, f"processes left after the app stopped: {left}"


@pytest.fixture(scope="module")
def browser(server):
    sync_playwright = browser_or_skip()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_photo_given_to_the_page_shows_the_right_class(server, browser, exported):
    _, right = exported
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("button.widget-upload", timeout=180_000)
    for cls, photo in right.items():
        seconds = upload(page, photo)
        answer = page.inner_text(".lessonlib-answer")
        assert answer == f"its answer: {cls}", answer
        assert page.locator(".lessonlib-probs tr").count() == 2
        assert page.locator("img.widget-image").is_visible()   # TryIt's picture: Grad-CAM and the bars
        print(f"{photo.name}: '{answer}' {seconds:.2f} s after the upload")
    page.close()


def test_each_bad_input_gets_a_message_on_the_page_and_the_server_keeps_serving(server, browser, bad_inputs,
                                                                                 exported):
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("button.widget-upload", timeout=180_000)
    for file, says in bad_inputs.items():
        upload(page, file)
        shown = page.inner_text(".lessonlib-problem")
        assert says in shown, shown
        print(f"{file.name}: {shown}")
    cls, photo = next(iter(exported[1].items()))
    upload(page, photo)
    assert page.inner_text(".lessonlib-answer") == f"its answer: {cls}"
    page.close()
    assert server.process.poll() is None, server.text()


def test_the_page_in_chinese(exported, browser, tmp_path):
    running = Server(exported[0], tmp_path / "home", lang="zh")
    try:
        running.wait()
        page = browser.new_page()
        page.goto(running.url)
        page.wait_for_selector("button.widget-upload", timeout=180_000)
        assert "给它一张照片" in page.inner_text("h2")
        cls, photo = next(iter(exported[1].items()))
        upload(page, photo)
        assert page.inner_text(".lessonlib-answer") == f"它的答案：{cls}"
        font = page.request.get(running.url + "voila/files/NotoSansSC-lessonlib.otf")   # for browsers without CJK
        assert font.ok and len(font.body()) > 1_000_000
        page.close()
    finally:
        assert not running.stop()
