"""Take the model home: `learn.export(path)` writes one file, `load_learner(path)` predicts from it anywhere.

The file holds what a prediction needs and nothing that runs: the network's name, the classes, the image size
and transforms, the weights, and the format's version, as plain tensors, strings and numbers. It loads with
`torch.load(weights_only=True)`, which refuses any Python object a file could smuggle in, so opening an export
someone sent you cannot run their code. No data folder is needed to load it, and a model trained on a GPU
loads on a CPU.

    >>> learn.export(home() / "exports" / "pets.pt")     # prints where it went and its size
    >>> model = load_learner(home() / "exports" / "pets.pt")
    >>> model.predict("my_cat.jpg")                      # ('cats', {'cats': 0.97, 'dogs': 0.03})
"""
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lessonlib import models
from lessonlib.images import to_rgb
from lessonlib.engine import distributed
from lessonlib.engine.language import problem, say
from lessonlib.engine.runtime import home
from lessonlib.engine.storage import atomic_write
from lessonlib.engine.weights import random_model
from lessonlib.training import Objective, log_probs
from lessonlib.transforms import tfms_from_model

__all__ = ["FORMAT", "MAX_PIXELS", "VERSION", "ExportedData", "Predictor", "answers_side_by_side", "default_export_path",
           "export", "load_learner", "open_photo"]

FORMAT = "lessonlib-export"   # what marks a file as an export
VERSION = 1                   # the layout below; a lessonlib reads every version up to its own
MAX_PIXELS = Image.MAX_IMAGE_PIXELS   # Pillow's own limit against decompression bombs (89 megapixels)


def default_export_path():
    """Where `learn.export()` writes when given no path: LESSONLIB_HOME/exports/export.pt."""
    return home() / "exports" / "export.pt"


def _size(n_bytes):
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.0f} KB"


def export(learn, path=None):
    """Write `learn`'s model as one safe file at `path` (default `default_export_path()`); returns the path.

    The file holds the network's name, the classes, the image size of the validation transforms, the head's
    shape, the weights (on the CPU) and `VERSION`. It is written whole or not at all, and its size is printed.
    """
    path = Path(path) if path is not None else default_export_path()
    if path.is_dir():
        raise ValueError(problem("{path} is a folder: give a file name, e.g. {example}",
                                 path=path, example=path / "export.pt"))
    head = learn.head
    try:
        head_shape = {"n_features": head[0].num_features, "hidden": head[2].out_features,
                      "ps": [head[1].p, head[5].p]}
    except (IndexError, AttributeError, TypeError):
        raise ValueError(problem("this learner's head is not the one ConvLearner.pretrained builds (BatchNorm, "
                                 "Dropout, Linear, ReLU, BatchNorm, Dropout, Linear): export cannot rebuild it"))
    weights = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in learn.model.state_dict().items()}
    if not all(math.isfinite(float(t.float().abs().max())) for t in weights.values() if t.numel()):
        raise FloatingPointError(problem("not exporting: the model holds infinite or NaN weights"))
    tfms = learn.data.tfms
    state = {"format": FORMAT, "version": VERSION, "arch": learn.arch, "classes": [str(c) for c in learn.data.classes],
             "is_multi": bool(learn.data.is_multi), "tfms": {"arch": tfms.arch, "sz": int(tfms.sz)},
             "head": head_shape, "model": weights}
    if learn.policy.rank == 0:
        atomic_write(path, lambda f: torch.save(state, f))
        print(say("exported to {path}: {size} ({arch}, classes {classes})", path=path,
                  size=_size(path.stat().st_size), arch=learn.arch, classes=state["classes"]))
    distributed.barrier()
    return path


# ---------------------------------------------------------------- reading an export back

def _describe(state):
    """What a file that is not an export holds, in a few words."""
    if isinstance(state, dict) and {"model", "arch", "classes"} <= set(state):
        return say("a model saved by learn.save() (its weights, without the transforms): load it into a learner "
                   "with learn.load(name), then call learn.export(path)")
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return say("a plain state_dict ({n} tensors), not an export", n=len(state))
    keys = f" with keys {sorted(map(str, state))[:5]}" if isinstance(state, dict) else ""
    return say("a {kind}{keys}, not an export", kind=type(state).__name__, keys=keys)


def _read(path):
    """The export's contents, checked; a ValueError that says what the file is when it is not one we can use."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(problem("{path} does not exist: give the file learn.export() wrote (it printed "
                                        "where)", path=path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:   # a pickle that names Python objects: the safe loader stopped before building any
            raise ValueError(problem("{path} is not a lessonlib export: it holds Python objects ({what}; a pickle, "
                                     "such as fastai's export.pkl or torch.save(model)), which could run code when "
                                     "loaded, so nothing in it was run; export the model with learn.export(path)",
                                     path=path, what=found.group(1))) from None
        raise ValueError(problem("{path} is not a lessonlib export: it cannot be read as a PyTorch file ({kind}: "
                                 "{reason}); the file is damaged, incomplete, or something else",
                                 path=path, kind=type(e).__name__, reason=str(e)[:100])) from None
    if not (isinstance(state, dict) and state.get("format") == FORMAT):
        raise ValueError(problem("{path} is not a lessonlib export: it holds {what}", path=path, what=_describe(state)))
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(problem("{path} says it is a lessonlib export but has no valid format version ({version!r}):"
                                 " the file is damaged; export the model again", path=path, version=version))
    if version > VERSION:
        raise ValueError(problem("{path} is a lessonlib export of format version {version}, written by a newer "
                                 "lessonlib; this one reads versions up to {VERSION}: upgrade lessonlib "
                                 "(pip install -U lessonlib)", path=path, version=version, VERSION=VERSION))
    missing = sorted({"arch", "classes", "is_multi", "tfms", "head", "model"} - set(state))
    if missing:
        raise ValueError(problem("{path} is an incomplete lessonlib export (missing {missing}): export the model "
                                 "again", path=path, missing=missing))
    return state


def _build(state):
    """The network an export describes, with its weights (on the CPU, in evaluation mode)."""
    name = models.arch_name(state["arch"])
    mean, std = models.ARCHS[name]["stats"]
    early, late, channels = models.split_backbone(name, random_model(name))   # the shape only: weights follow
    body = models.Body(name, models.ImageNormalize(mean, std), early, late, 2 * channels)
    h = state["head"]
    model = models.ConvNet(body, models.create_head(h["n_features"], len(state["classes"]), h["hidden"], h["ps"]))
    weights = models.upgrade_state_dict(state["model"])
    expected = model.state_dict()
    wrong = sorted(set(expected) ^ set(weights)) + [k for k in expected if k in weights
                                                     and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(problem("the export's weights do not fit a {arch} with this head ({wrong}): the file is "
                                 "damaged or was changed; export the model again", arch=name, wrong=wrong[:3]))
    model.load_state_dict(weights)
    return model.eval()


@dataclass
class ExportedData:
    """What a loaded model knows of the data it was trained on: the classes and the validation transforms."""
    classes: list
    is_multi: bool
    tfms: object

    @property
    def c(self):
        """Number of classes."""
        return len(self.classes)


def open_photo(photo, name=None):
    """`photo` (a file path, a PIL image, or a file's bytes) as an upright RGB PIL image.

    A file that is not a photo, is cut off, or has more than `MAX_PIXELS` pixels is refused with a ValueError
    that says which, before it is decoded in full.
    """
    if isinstance(photo, Image.Image):
        return to_rgb(ImageOps.exif_transpose(photo))
    name = name or (str(photo) if isinstance(photo, (str, Path)) else say("the photo"))
    source = io.BytesIO(photo) if isinstance(photo, (bytes, bytearray, memoryview)) else photo
    try:
        with warnings.catch_warnings():   # a photo above Pillow's limit is refused below, with its size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
    except Image.DecompressionBombError:   # more than twice the limit: Pillow refuses to open it at all
        raise ValueError(problem("{name} has more than {limit:.0f} megapixels: save a smaller copy (e.g. 4000 pixels "
                                 "on its long side) and try that", name=name, limit=2 * MAX_PIXELS / 1e6)) from None
    except UnidentifiedImageError:
        raise ValueError(problem("{name} is not a photo this machine can read (JPEG, PNG, WebP, GIF, BMP, ...): is "
                                 "it a photo at all?", name=name)) from None
    except (OSError, SyntaxError, ValueError) as e:   # what Pillow's decoders raise for a file cut short
        raise ValueError(problem("{name} is damaged or incomplete ({reason}): a photo cut off while copying or "
                                 "downloading; copy it again", name=name, reason=str(e)[:80])) from None
    with img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ValueError(problem("{name} is {w}x{h} pixels ({mp:.0f} megapixels): more than the {limit:.0f} "
                                     "megapixels a photo may have here; save a smaller copy (e.g. 4000 pixels on "
                                     "its long side) and try that", name=name, w=w, h=h, mp=w * h / 1e6,
                                     limit=MAX_PIXELS / 1e6))
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise ValueError(problem("{name} is damaged or incomplete ({reason}): a photo cut off while copying or "
                                     "downloading; copy it again", name=name, reason=str(e)[:80])) from None
        return to_rgb(ImageOps.exif_transpose(img))


class Predictor:
    """A trained model from an export: `predict(photo)` gives its answer and each class's probability.

    It also has what `lessonlib.photos.TryIt` draws from (`model`, `body`, `head`, `data`, `objective`), so
    `TryIt(load_learner(path)).widget()` works as on the learner that was exported.

    Example:
        >>> model = load_learner("pets.pt")
        >>> answer, probs = model.predict("my_cat.jpg")     # 'cats', {'cats': 0.97, 'dogs': 0.03}
    """

    def __init__(self, model, arch, data, source=None, version=VERSION):
        self.model, self.arch, self.data, self.source, self.version = model, arch, data, source, version
        self.objective = Objective(None, (), torch.sigmoid if data.is_multi else log_probs)

    body = property(lambda self: self.model.body, doc="The pretrained body (`models.Body`).")
    head = property(lambda self: self.model.head, doc="The head that was trained.")
    classes = property(lambda self: self.data.classes, doc="The class names, in the model's order.")

    def __repr__(self):
        device = next(self.model.parameters()).device
        return f"Predictor({self.arch}, classes {self.classes}, {self.data.tfms.sz} px, on {device})"

    def probabilities(self, photo, name=None):
        """Each class's probability for `photo` (a file path, PIL image or bytes), as a float32 tensor."""
        x = self.data.tfms.valid(open_photo(photo, name))
        device = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model.eval()(x[None].to(device)).float().cpu()
        preds = self.objective.to_preds(out)[0]
        return preds if self.data.is_multi else preds.exp()

    def predict(self, photo, name=None):
        """(answer, {class: probability}) for `photo`: a file path, a PIL image, or a file's bytes.

        The answer is the most probable class; for a multi-label model, the list of tags above 0.5.
        """
        probs = self.probabilities(photo, name)
        result = dict(zip(self.classes, probs.tolist()))
        if self.data.is_multi:
            return [c for c, p in result.items() if p > 0.5], result
        return self.classes[int(probs.argmax())], result


def load_learner(path, device=None):
    """The model exported to `path`, ready to predict: a `Predictor`.

    No data folder is needed. `device`: "cpu" (the default: the same answers on any machine), "cuda", ... A
    file that is not an export, or an export of a newer format, is refused with a message saying what it is;
    nothing in the file is run.

    Example:
        >>> model = load_learner(home() / "exports" / "export.pt")
        >>> model.predict("my_cat.jpg")
    """
    state = _read(path)
    model = _build(state).to(torch.device(device or "cpu"))
    tfms = tfms_from_model(state["tfms"]["arch"], state["tfms"]["sz"])
    return Predictor(model, state["arch"], ExportedData(list(state["classes"]), bool(state["is_multi"]), tfms),
                     Path(path), state["version"])


def answers_side_by_side(probs, answer, loaded):
    """Two lines for people: the trained learner's probabilities `probs`, then the answer and probabilities
    (`loaded`, to 4 decimals) of the model loaded from its export in a new process."""
    return "\n".join([say("the trained learner: {probs}", probs=probs),
                      say("a new process:       {answer} {probs}", answer=answer,
                          probs={c: round(p, 4) for c, p in loaded.items()})])
