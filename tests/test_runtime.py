"""lessonlib/engine/runtime.py: LESSONLIB_HOME, checked where it is used and named when it cannot be used."""
import os
from pathlib import Path

import pytest

from lessonlib.__main__ import main as cli
from lessonlib.data import ImageClassifierData
from lessonlib.engine.doctor import doctor
from lessonlib.engine.runtime import HomeError
from lessonlib.transforms import tfms_from_model
from tests.helpers import make_folders

TFMS = tfms_from_model("efficientnet_lite0", 32)


@pytest.mark.parametrize("kind", ["a file", "/proc", "read-only"])
def test_an_unusable_home_says_which_setting_and_how_to_fix_it(tmp_path, monkeypatch, capsys, kind):
    if kind == "a file":
        bad = tmp_path / "home"
        bad.write_text("not a folder")
    elif kind == "/proc":
        bad = Path("/proc")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; /proc covers a home that cannot be written")
        bad = tmp_path / "ro"
        bad.mkdir()
        bad.chmod(0o555)
    monkeypatch.setenv("LESSONLIB_HOME", str(bad))
    make_folders(tmp_path / "pets")
    with pytest.raises(HomeError, match=f"LESSONLIB_HOME={bad}.*set LESSONLIB_HOME to a folder you can write to"):
        ImageClassifierData.from_paths(tmp_path / "pets", tfms=TFMS, device="cpu")
    assert doctor("cpu")["lessonlib home"].startswith("PROBLEM")
    assert cli(["doctor", "--device", "cpu"]) == 1
    assert cli(["train", str(tmp_path / "pets"), "--device", "cpu"]) == 1
    assert "LESSONLIB_HOME" in capsys.readouterr().err


def test_a_home_that_stops_being_writable_is_named_the_next_time_it_is_used(tmp_path, monkeypatch):
    """No remembered "it was writable once": a disk that fills or turns read-only mid-session is named at once."""
    import tempfile
    from lessonlib.engine.runtime import home
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    assert home() == tmp_path / "home"

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(HomeError, match="is not writable .Read-only file system.*set LESSONLIB_HOME"):
        home()


def test_a_stray_space_around_lessonlib_home_is_not_a_folder_named_space(tmp_path, monkeypatch):
    from lessonlib.engine.runtime import home
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LESSONLIB_HOME", " ~/lessons ")
    assert home() == tmp_path / "user" / "lessons"
    assert not (tmp_path / " ").exists() and not any(p.name.strip() == "" for p in tmp_path.iterdir())
