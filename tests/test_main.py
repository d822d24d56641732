"""lessonlib/__main__.py: the command line checks everything it can before it trains, and fails plainly."""
import re

import pytest

from lessonlib.__main__ import main as cli
from lessonlib.learner import ConvLearner
from tests.helpers import make_folders


def test_a_nan_rate_on_the_command_line_fails_and_saves_nothing(tmp_path, home, capsys):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--lr", "nan", "--save", "m", "--device", "cpu"])
    assert code != 0 and "learning rate" in capsys.readouterr().err
    assert not (home / "models" / "m.pt").exists()


def test_the_command_line_checks_before_it_trains(tmp_path, home, capsys, monkeypatch):
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    monkeypatch.setattr(ConvLearner, "pretrained", lambda *a, **k: pytest.fail("no learner before the checks"))
    assert cli(["train", str(tmp_path / "pets"), "--save", "../outside", "--device", "cpu"]) == 1
    assert "plain name" in capsys.readouterr().err
    assert not (home / "models").exists()
    assert cli(["train", "/nonexistent/path", "--device", "cpu"]) == 1
    assert "neither a folder nor a data set of the catalog" in capsys.readouterr().err


def test_a_command_line_run_leaves_nothing_in_the_temporary_folder(tmp_path, home, monkeypatch):
    import tempfile
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)   # let tempfile read TMPDIR again
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--epochs", "1", "--device", "cpu"])
    assert code == 0
    assert not list((tmp_path / "tmp").glob("lessonlib-group-*"))


@pytest.mark.parametrize("extra, says", [
    (["--test-name", "test", "--submission", "{tmp}/no-such-folder/sub.csv"], "--submission .*does not exist"),
    (["--history", "{tmp}/no-such-folder/h.csv"], "--history .*does not exist"),
    (["--history", "{tmp}"], "--history .*is a folder"),
    (["--unfreeze", "--lrs", "1e-3,1e-2"], "--lrs .*one positive rate, or three"),
    (["--unfreeze", "--lrs", "1e-4,nan,1e-2"], "--lrs .*one positive rate, or three"),
    (["--lrs", "1e-4,1e-3,1e-2"], "--lrs sets the rates .* after --unfreeze"),
    (["--save", "m" * 300], "at most 252"),
    (["--sz", "100000"], "--sz 100000: .*at most 2048"),
    (["--lr", "-1"], "--lr -1.0: .*positive"),
])
def test_a_mistake_in_the_flags_is_found_before_any_training(tmp_path, home, monkeypatch, capsys, extra, says):
    trained = []
    monkeypatch.setattr(ConvLearner, "fit", lambda self, *a, **k: trained.append(a))
    make_folders(tmp_path / "pets", n_train=4, n_valid=2, n_test=2)
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--device", "cpu", *args])
    err = capsys.readouterr().err
    assert code == 1 and trained == [] and re.search(says, err), err


def test_fetch_weights_to_a_file_says_it_is_a_file(tmp_path, capsys):
    target = tmp_path / "weights"
    target.write_text("not a folder")
    assert cli(["fetch-weights", "resnet34", "--to", str(target)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_run_that_fails_at_its_end_still_saves_the_model_it_trained(tmp_path, home, monkeypatch, capsys):
    from lessonlib import __main__ as command_line

    def broken_finish(*args):
        raise OSError("the disk of the submission went away")
    monkeypatch.setattr(command_line, "_finish", broken_finish)
    make_folders(tmp_path / "pets", n_train=4, n_valid=2)
    code = cli(["train", str(tmp_path / "pets"), "--arch", "efficientnet_lite0", "--sz", "32", "--bs", "4",
                "--save", "kept", "--device", "cpu"])
    assert code == 1 and "went away" in capsys.readouterr().err
    assert (home / "models" / "kept.pt").exists()
