"""The class on a real JupyterHub (tools/classroom_hub.py): its install lines are the doc's, and it leaves
nothing behind, also when stopped midway. The hub runs need root and the shared environment the check installs
(under /opt/lessonlib-hub-check, kept between runs); without them they are skipped."""
import importlib.util
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("/opt/lessonlib-hub-check")


def _hub():
    spec = importlib.util.spec_from_file_location("classroom_hub", ROOT / "tools" / "classroom_hub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_doc_installs_lessonlib_non_editable_from_any_folder_with_the_tested_versions():
    block = _hub().install_block()
    assert "LESSONS=/path/to/lessons" in block
    assert "-e " not in block.replace("grep -v '^-e'", "")        # never the editable line
    assert 'pip install -c /tmp/lesson-pins.txt "$LESSONS[keras]"' in block
    pins = subprocess.run(["grep", "-v", "^-e", str(ROOT / "requirements.txt")], capture_output=True, text=True)
    assert "torch==" in pins.stdout and "-e ." not in pins.stdout


# `hub`: deselected in .ci/compat, whose old package versions do not change what the hub runs (its own environment)
needs_hub = pytest.mark.skipif(os.geteuid() != 0 or not (CACHE / "env" / "bin" / "jupyterhub").exists()
                               or not (CACHE / "node" / "node_modules" / ".bin" / "configurable-http-proxy").exists(),
                               reason="needs root and the hub check's environment (run tools/classroom_hub.py once)")


def _leftovers():
    users = [u.pw_name for u in pwd.getpwall() if u.pw_name.startswith("lsnhub")]
    procs = subprocess.run(["pgrep", "-f", "lessonlib-hubcheck-"], capture_output=True, text=True).stdout.split()
    owned = subprocess.run(["ps", "-e", "-o", "user="], capture_output=True, text=True).stdout.split()
    return users, procs, [u for u in owned if u.startswith("lsnhub")]


@pytest.mark.hub
@needs_hub
def test_two_students_on_a_real_hub_then_nothing_left(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "classroom_hub.py"), "--users", "2",
                           "--lessons", "00"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((ROOT / "benchmarks" / "results" / "classroom_hub_smoke.json").read_text())
    run, = result["runs"]
    assert run["mirror_unchanged"] and run["writes_into_others_homes"] == []
    assert all(u["errors"] == {} and u["doctor"]["torch threads"] == "1" for u in run["per_user"])
    assert "2 student(s) with a class log" in run["class_report"]
    assert _leftovers() == ([], [], [])


@pytest.mark.hub
@needs_hub
def test_stopped_midway_it_removes_every_user_file_and_process():
    check = subprocess.Popen([sys.executable, str(ROOT / "tools" / "classroom_hub.py"), "--users", "2",
                              "--lessons", "00", "02"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):   # until the users exist and their servers run
        if len(_leftovers()[2]) >= 2:
            break
        time.sleep(0.2)
    assert _leftovers()[0], "the check never created its users"
    check.send_signal(signal.SIGTERM)
    check.wait(120)
    assert _leftovers() == ([], [], [])
    assert not Path("/var/tmp/lessonlib-hub-check.json").exists()
