"""learn.export and load_learner: one safe file, loaded in a new process, predicts what the trained learner did."""
import io
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from PIL import Image

from lessonlib import ConvLearner, ImageClassifierData, load_learner, tfms_from_model
from lessonlib.export import MAX_PIXELS, VERSION, open_photo
from lessonlib.photos import TryIt
from tests.helpers import make_folders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(learner, export path, photo): the quick model (EfficientNet-Lite0, precompute, one epoch) on dogscats-mini's
    smoke sample, trained in a fresh home, then exported; the photo is one of its unlabelled test photos."""
    from lessonlib import datasets
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LESSONLIB_HOME", str(home))
        mp.setenv("LESSONLIB_SMOKE", "1")
        torch.manual_seed(0)
        path = datasets.get("dogscats-mini")
        data = ImageClassifierData.from_paths(path, tfms=tfms_from_model("efficientnet_lite0", 64), bs=8, device="cpu")
        learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
        learn.fit(1e-2, 1)
        f = learn.export(home / "exports" / "pets.pt")
        photo = sorted((datasets.get("dogscats-mini", smoke=False) / "test").iterdir())[0]
    return learn, f, photo


def learner_probs(learn, photo):
    """The trained learner's own probabilities for `photo` (on the CPU): its model, wherever it is, on the validation
    transform of the photo."""
    device = next(learn.model.parameters()).device
    x = learn.data.tfms.valid(open_photo(photo))
    with torch.no_grad():
        return torch.softmax(learn.model.eval()(x[None].to(device)).float(), 1)[0].cpu()


def test_a_new_process_without_the_data_predicts_what_the_trained_learner_predicts(trained, tmp_path):
    learn, f, photo = trained
    code = ("import json, sys; from lessonlib import load_learner; "
            "answer, probs = load_learner(sys.argv[1]).predict(sys.argv[2]); print(json.dumps([answer, probs]))")
    env = {**os.environ, "LESSONLIB_HOME": str(tmp_path / "other_home"), "LESSONLIB_DATA": str(tmp_path / "no_data")}
    out = subprocess.run([sys.executable, "-c", code, str(f), str(photo)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    answer, probs = json.loads(out.stdout.strip().splitlines()[-1])
    expected = learner_probs(learn, photo)
    assert answer == learn.data.classes[int(expected.argmax())]
    assert list(probs) == learn.data.classes
    assert torch.allclose(torch.tensor(list(probs.values())), expected, atol=1e-6, rtol=0), (probs, expected)
    shown, _ = TryIt(learn).predict(photo)   # what lesson 10's TryIt shows, to 4 decimals
    assert all(abs(shown[c] - probs[c]) < 1e-4 for c in shown)


def test_the_file_is_plain_data_with_its_format_version_and_its_size_is_printed(trained, capsys, tmp_path):
    learn, f, _ = trained
    state = torch.load(f, map_location="cpu", weights_only=True)   # nothing executable: the safe loader takes it
    assert (state["format"], state["version"], state["arch"]) == ("lessonlib-export", VERSION, "efficientnet_lite0")
    assert state["classes"] == ["cats", "dogs"] and state["tfms"] == {"arch": "efficientnet_lite0", "sz": 64}
    assert all(t.device.type == "cpu" for t in state["model"].values())
    learn.export(tmp_path / "again.pt")
    printed = capsys.readouterr().out
    assert f"exported to {tmp_path / 'again.pt'}: " in printed and " MB (efficientnet_lite0" in printed


def test_a_path_a_pil_image_and_bytes_give_the_same_answer(trained):
    _, f, photo = trained
    model = load_learner(f)
    by_path = model.predict(photo)
    assert model.predict(Image.open(photo)) == by_path
    assert model.predict(photo.read_bytes()) == by_path
    assert by_path[0] in ("cats", "dogs") and abs(sum(by_path[1].values()) - 1) < 1e-5


def test_the_default_place_is_the_home(trained, tmp_path, monkeypatch, capsys):
    learn, _, _ = trained
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "h"))
    assert learn.export() == tmp_path / "h" / "exports" / "export.pt"
    assert str(tmp_path / "h" / "exports" / "export.pt") in capsys.readouterr().out


def test_tryit_draws_from_a_loaded_model(trained):
    _, f, photo = trained
    probs, cam = TryIt(load_learner(f)).predict(photo)
    assert set(probs) == {"cats", "dogs"} and cam.max() <= 1


def _future_export(f, dest):
    state = torch.load(f, map_location="cpu", weights_only=True)
    state["version"] = VERSION + 1
    torch.save(state, dest)
    return dest


@pytest.mark.parametrize("kind, says", [
    ("saved", "a model saved by learn.save()"),
    ("state_dict", "a plain state_dict"),
    ("pickle", "it holds Python objects"),
    ("text", "cannot be read as a PyTorch file"),
    ("future", f"format version {VERSION + 1}, written by a newer lessonlib"),
    ("missing", "does not exist"),
])
def test_a_file_that_is_not_an_export_is_refused_with_what_it_is(trained, tmp_path, monkeypatch, capsys, kind, says):
    learn, f, _ = trained
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "h"))
    if kind == "saved":
        path = learn.save("mine")
    elif kind == "state_dict":
        path = tmp_path / "weights.pt"
        torch.save(learn.model.state_dict(), path)
    elif kind == "pickle":   # a whole model pickled: loading it would run code, so it is not even unpickled
        path = tmp_path / "model.pkl"
        torch.save(learn.model, path)
    elif kind == "text":
        path = tmp_path / "notes.pt"
        path.write_text("not a model")
    elif kind == "future":
        path = _future_export(f, tmp_path / "future.pt")
    else:
        path = tmp_path / "nothing.pt"
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        load_learner(path)
    assert says in str(caught.value) and str(path) in str(caught.value)


def test_a_pickle_is_never_run(tmp_path):
    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))
    bomb = {"format": "lessonlib-export", "version": 1, "bomb": Bomb()}
    torch.save(bomb, tmp_path / "evil.pt")                       # as torch.save writes it
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(bomb))      # as plain pickle writes it
    with pytest.raises(ValueError, match=r"holds Python objects \(posix.system|holds Python objects \(os.system"):
        load_learner(tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="is not a lessonlib export"):
        load_learner(tmp_path / "evil.pkl")
    assert not (tmp_path / "ran").exists()


def _jpeg(size=(80, 60)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_bad_photos_are_refused_with_a_message_before_they_are_decoded():
    with pytest.raises(ValueError, match="notes.txt is not a photo"):
        open_photo(b"the dog park, Sunday", "notes.txt")
    whole = _jpeg()
    with pytest.raises(ValueError, match="cut.jpg is damaged or incomplete"):
        open_photo(whole[:len(whole) // 2], "cut.jpg")
    big = io.BytesIO()   # 100 megapixels of one colour: a small file, but 300 MB once decoded
    Image.new("RGB", (10000, 10000), (120, 90, 60)).save(big, format="JPEG", quality=50)
    assert 10000 * 10000 > MAX_PIXELS
    with pytest.raises(ValueError, match=r"big.jpg is 10000x10000 pixels \(100 megapixels\)"):
        open_photo(big.getvalue(), "big.jpg")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_trained_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    make_folders(tmp_path / "pets", n_train=12, n_valid=6)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms_from_model("efficientnet_lite0", 64), bs=8,
                                          device="cuda")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 1)
    assert next(learn.model.parameters()).device.type == "cuda"
    f = learn.export(tmp_path / "gpu.pt")
    photo = data.val_ds.fnames[0]
    model = load_learner(f)
    assert next(model.model.parameters()).device.type == "cpu"
    assert torch.allclose(model.probabilities(photo), learner_probs(learn, photo), atol=1e-4)
