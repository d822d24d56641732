"""The model on a web page: a photo in; the answer, a bar per class and where it looked (Grad-CAM) out.

The page is a notebook, `lessonlib/pages/app.ipynb`, that Voilà runs and shows without its code.
`python -m lessonlib app MODEL` copies it to LESSONLIB_HOME/app/ (once: your changes to that copy are kept),
writes `app.json` beside it naming the model (for when you open the copy in JupyterLab to change the page), and
starts Voilà on it. The server's own pages take their model from LESSONLIB_APP_MODEL, which the command sets for
that server alone: two `app` commands in one home, each with its own model and port, never show each other's. Install Voilà with `pip install "lessonlib[app]"`.

    python -m lessonlib app ~/.cache/lessonlib/exports/export.pt --port 8866

`Page` keeps its state apart from its display: `Page(model).show(name, content)` gives the answer's HTML and
the figure without a browser; `widget()` only builds the upload and the display around them.
"""
import html
import io
import json
import re
import shutil
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

from lessonlib.engine.fonts import SHIPPED
from lessonlib.engine.language import problem, say
from lessonlib.engine.runtime import home
from lessonlib.engine.settings import child_environ, settings
from lessonlib.engine.storage import atomic_write
from lessonlib.export import default_export_path, load_learner

__all__ = ["PAGE", "SETTINGS", "Page", "page_folder", "prepare_page", "serve", "voila_command"]

PAGE = "app.ipynb"      # the notebook Voilà serves
SETTINGS = "app.json"   # beside it: {"model": the export's path}
# lessonlib's CJK font, served by Voila beside the page (`prepare_page`): the browser takes from it only the
# characters its own fonts lack, and fetches it only then
FONT = (f'<style>@font-face {{font-family: "lessonlib CJK"; src: url("voila/files/{SHIPPED.name}"); font-display: swap;}} '
        'body, .jupyter-widgets, .widget-html-content, .widget-html-content * '
        '{font-family: var(--jp-ui-font-family), "lessonlib CJK";}'
        '</style>')
MAX_UPLOAD_MB = 100     # Voilà's websocket takes messages up to 10 MB by default: too small for some photos


class Page:
    """The page's state: the model, and the last answer (`answer`, `probs`) or `message` (what went wrong).

    Example:
        >>> page = Page("export.pt")
        >>> html, fig = page.show("cat.jpg", open("cat.jpg", "rb").read())
        >>> page.answer, page.probs          # 'cats', {'cats': 0.97, 'dogs': 0.03}
    """

    def __init__(self, model):
        """`model`: the path of an export, or what `load_learner` returned."""
        self.model = load_learner(model) if isinstance(model, (str, Path)) else model
        self.answer, self.probs, self.message, self.name = None, None, None, None

    @classmethod
    def from_settings(cls, folder="."):
        """The page for the model its server was started with (LESSONLIB_APP_MODEL), else the one `folder`/app.json
        names (written by `python -m lessonlib app`, for the page opened in JupyterLab)."""
        if settings().app_model:
            return cls(settings().app_model)
        named = Path(folder) / SETTINGS
        if not named.is_file():
            raise FileNotFoundError(problem("{settings} is missing: start the page with python -m lessonlib app "
                                            "MODEL, or write {{\"model\": \"path/to/export.pt\"}} into it",
                                            settings=named.resolve()))
        return cls(json.loads(named.read_text(encoding="utf-8"))["model"])

    def show(self, name, content):
        """(HTML of the answer or of the problem, figure or None) for the uploaded file `name` with bytes `content`.

        A file the model cannot take (not a photo, cut off, too large) gives a message, never an exception.
        """
        import matplotlib.pyplot as plt

        from lessonlib.photos import TryIt
        self.answer, self.probs, self.message, self.name = None, None, None, name
        try:
            self.answer, self.probs = self.model.predict(content, name=name)
            fig = TryIt(self.model).draw(content)   # where it looked, and a bar per class
        except ValueError as e:   # the file is not a usable photo: the message says why
            return self._problem(str(e)), None
        except Exception as e:    # anything else: say it on the page, and the page keeps working
            return self._problem(problem("{name} cannot be used: {kind}: {e}", name=name, kind=type(e).__name__,
                                         e=e)), None
        plt.close(fig)
        return self._answer_html(), fig

    def _problem(self, message):
        self.message = message
        return (f'<div class="lessonlib-problem" data-file="{html.escape(self.name)}" '
                f'style="color:#a40000; border:1px solid #a40000; padding:8px; white-space:pre-wrap">'
                f'{html.escape(message)}</div>')

    def _answer_html(self):
        answer = ", ".join(self.answer) if isinstance(self.answer, list) else self.answer
        rows = "".join(
            f'<tr><td style="padding-right:8px">{html.escape(c)}</td>'
            f'<td style="width:240px"><div style="background:#1f77b4; height:14px; width:{100 * p:.1f}%"></div></td>'
            f'<td style="padding-left:8px">{100 * p:.1f}%</td></tr>' for c, p in self.probs.items())
        title = say("its answer: {answer}", answer=answer)
        return (f'<h3 class="lessonlib-answer" data-file="{html.escape(self.name)}">{html.escape(title)}</h3>'
                f'<table class="lessonlib-probs">{rows}</table>')

    def widget(self):
        """The page: a title, the photo upload, then the answer with a bar per class and the Grad-CAM map."""
        import ipywidgets as w

        from lessonlib.photos import uploaded_files
        title = w.HTML(f"<h2>{html.escape(say('What does the model see? Give it a photo.'))}</h2>"
                       f"<p>{html.escape(say('classes: {classes}', classes=', '.join(self.model.classes)))}</p>")
        upload = w.FileUpload(accept="image/*,.jfif", multiple=False, description=say("a photo"))
        answer = w.HTML()
        picture = w.Image(format="png", layout=w.Layout(display="none", max_width="800px"))

        def on_upload(_):
            files = uploaded_files(upload.value)
            if not files:
                return
            name, content = files[-1]
            answer.value = html.escape(say("looking at {name} ...", name=name))
            picture.layout.display = "none"
            text, fig = self.show(name, content)
            if fig is not None:   # as a PNG of its own: the same on any matplotlib backend
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=90)
                picture.value, picture.layout.display = buffer.getvalue(), None
            answer.value = text   # last: when the answer shows, the picture is there too

        upload.observe(on_upload, names="value")
        return w.VBox([w.HTML(FONT), title, upload, answer, picture])


# ---------------------------------------------------------------- serving it: python -m lessonlib app MODEL

def page_folder():
    """Where the page's notebook and its app.json live: LESSONLIB_HOME/app."""
    return home() / "app"


def prepare_page(model, page=None):
    """Copy the packaged page to `page_folder()` unless it is there already (your changes are kept), or use your
    own notebook `page`; write app.json beside it, naming `model`. Returns the notebook's path."""
    if page is None:
        page = page_folder() / PAGE
        if not page.exists():
            page.parent.mkdir(parents=True, exist_ok=True)
            with resources.as_file(resources.files("lessonlib").joinpath("pages", PAGE)) as packaged:
                shutil.copyfile(packaged, page)
    page = Path(page)
    if not page.is_file():
        raise FileNotFoundError(problem("{page} does not exist: give a notebook, or leave --page out for lessonlib's "
                                        "own page", page=page))
    named = json.dumps({"model": str(Path(model).resolve())}).encode("utf-8")
    atomic_write(page.parent / SETTINGS, lambda f: f.write(named))   # a second app command never half-writes it
    if page.parent == page_folder() and not (page.parent / SHIPPED.name).exists():
        shutil.copyfile(SHIPPED, page.parent / SHIPPED.name)   # Chinese text, also where the browser has no CJK font
    # Voila's own settings, in a folder of lessonlib's (a number cannot be given to it on its command line)
    config = {"Voila": {"tornado_settings": {"websocket_max_message_size": MAX_UPLOAD_MB * 2**20}},
              "VoilaConfiguration": {"file_allowlist": [r".*\.(png|jpg|gif|svg)", re.escape(SHIPPED.name)]}}
    page_folder().mkdir(parents=True, exist_ok=True)
    config = json.dumps(config).encode("utf-8")
    atomic_write(page_folder() / "voila.json", lambda f: f.write(config))
    return page


def voila_command(page, port):
    """The command that serves `page` at http://127.0.0.1:`port`/ (this machine only)."""
    return [sys.executable, "-m", "voila", str(page), f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0", f"--Voila.config_file_paths={page_folder()}"]


def serve(model, port=8866, page=None):
    """Serve the page for the export `model` until Ctrl-C; returns Voilà's exit status."""
    model = model or default_export_path()
    predictor = load_learner(model)   # a file that is not an export is refused now, not on the page
    try:
        import voila  # noqa: F401   (only to say how to install it)
    except ImportError:
        raise RuntimeError(problem('the page needs Voila: pip install "lessonlib[app]" (or pip install voila)')) \
            from None
    page = prepare_page(model, page)
    print(say("the page for {model}: http://127.0.0.1:{port}/ (Ctrl-C stops it)", model=predictor, port=port))
    print(say("it is the notebook {page}: open it in JupyterLab to change the page", page=page))
    env = child_environ(LESSONLIB_APP_MODEL=Path(model).resolve())   # this server's pages show this model
    server = subprocess.Popen(voila_command(page, port), cwd=page.parent, env=env)
    try:   # a `kill` of this command stops Voila too, which shuts its kernels down
        previous = signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    except ValueError:   # not the main thread: Ctrl-C and kill reach Voila directly
        previous = None
    try:
        return server.wait()
    except KeyboardInterrupt:   # Voila has the Ctrl-C too, and stops
        return server.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
