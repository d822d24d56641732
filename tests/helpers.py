"""Test helpers: small generated image folders (fixtures of the tests, not teaching data), a local HTTP server,
and processes started with a deadline."""
import errno
import faulthandler
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lessonlib.engine import storage


def needs_keras():
    """Skip the calling test where Keras (an optional extra) cannot be imported on the PyTorch backend."""
    import pytest

    from lessonlib.keras_compare import import_keras
    try:
        return import_keras()
    except ImportError as e:
        pytest.skip(f"Keras is an optional extra: {e}")


def write_image(path, color, size=(40, 30), mode="RGB"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def make_folders(root, classes=("cats", "dogs"), n_train=6, n_valid=3, n_test=0, size=(40, 30)):
    """root/train/<class>/*.jpg and root/valid/<class>/*.jpg with one flat colour per class."""
    root = Path(root)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for c, cls in enumerate(classes):
            for i in range(n):
                shade = int(rng.integers(0, 40))
                color = (200 + shade // 2, 60 + shade, 40) if c == 0 else (40, 60 + shade, 200 + shade // 2)
                write_image(root / split / cls / f"{cls}.{i}.jpg", color, size)
    for i in range(n_test):
        write_image(root / "test" / f"{i:04d}.jpg", (120, 120, 120), size)
    return root


class FileServer:
    """A small HTTP server on 127.0.0.1 for download tests: serves `files` ({path: bytes}), can drop connections.

    `cut_first`: that many requests send the headers of the whole file but stop halfway and close.
    `ranges`: honour `Range: bytes=N-` with 206 Partial Content (a server that ignores it sends 200 and all).
    `chunk_delay`: seconds between 64 KiB chunks, so that two clients overlap.
    `requests` records (path, Range header) of every request.
    """

    def __init__(self, files, cut_first=0, ranges=True, chunk_delay=0.0):
        import http.server
        import threading
        import time

        self.files, self.cut_left, self.ranges, self.requests = dict(files), cut_first, ranges, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path)
                server.requests.append((self.path, self.headers.get("Range")))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if server.ranges and rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                cut = server.cut_left > 0
                if cut:
                    server.cut_left -= 1
                    rest = rest[:len(rest) // 2]
                for i in range(0, len(rest), 1 << 16):
                    self.wfile.write(rest[i:i + (1 << 16)])
                    if chunk_delay:
                        time.sleep(chunk_delay)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


PROCESS_DEADLINE = 300   # seconds; the multi-process tests take 10 to 60 s here, with other jobs on the cores


STARTUP_LIMIT = 900   # seconds for the processes to start (import torch and this module); slow only under load


def _within(rank, started, fn, deadline, *args):
    faulthandler.dump_traceback_later(deadline, exit=True)   # stuck: every thread's stack to stderr, then exit 1
    Path(started, str(rank)).touch()
    fn(rank, *args)


def spawn_processes(fn, args, nprocs, deadline=PROCESS_DEADLINE):
    """`torch.multiprocessing.start_processes(fn, args, nprocs, start_method="spawn")`, bounded.

    A process still running `deadline` seconds after it started (imported torch and this module) prints where
    each of its threads is (pytest shows it with the failure) and exits, so the test fails with that instead of
    waiting for ever; one that does not even manage that is killed 30 s later. The clock starts when the last
    process has started, not at the spawn: on a loaded machine starting an interpreter that imports torch took
    over 35 s here. Returns nothing; raises as `start_processes` does.
    """
    import pytest
    import torch.multiprocessing as mp

    started = Path(tempfile.mkdtemp(prefix="lessonlib-started-"))
    try:
        context = mp.start_processes(_within, args=(str(started), fn, deadline, *args), nprocs=nprocs,
                                     start_method="spawn", join=False)
        give_up = time.monotonic() + STARTUP_LIMIT + deadline + 30
        all_started = False
        while not context.join(timeout=1):
            if not all_started and len(list(started.iterdir())) == nprocs:
                all_started, give_up = True, time.monotonic() + deadline + 30
            if time.monotonic() > give_up:
                for process in context.processes:
                    process.kill()
                pytest.fail(f"{nprocs} process(es) of {fn.__name__} still running "
                            f"{deadline + 30 if all_started else STARTUP_LIMIT + deadline + 30} s after "
                            f"{'they started' if all_started else 'the spawn'}; killed")
    finally:
        shutil.rmtree(started, ignore_errors=True)


def csv_set(root, rows, n=None):
    """root/imgs/<name>.jpg (a colour per image) and root/labels.csv with `rows` ("name,tags")."""
    rng = np.random.default_rng(0)
    for row in rows:
        name = row.split(",")[0]
        if not (root / "imgs" / f"{name}.jpg").exists():
            write_image(root / "imgs" / f"{name}.jpg", tuple(int(v) for v in rng.integers(0, 255, 3)))
    (root / "labels.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    return root


def disk_fills_after(monkeypatch, n_bytes):
    """Files that lessonlib writes (`storage.atomic_write`) take `n_bytes`, then every write fails as on a full disk
    (OSError ENOSPC); `torch.save` itself turns that into its RuntimeError ("... unexpected pos ...")."""
    real_open = open

    class Filling:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            if self.written + len(b) > n_bytes:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(storage, "open", lambda *args, **kwargs: Filling(real_open(*args, **kwargs)), raising=False)
