"""Saved models: `learn.save(name)` and `learn.load(name)`, in LESSONLIB_HOME/models/<name>.pt.

A model is written whole or not at all (`storage.atomic_write`), never with infinite or NaN weights, and
under several processes by the first one only. Reading checks that the file holds the same network for
the same classes, and upgrades models saved before the body's parts had names.
"""
import math

import torch

from lessonlib.engine import distributed
from lessonlib.engine.language import problem, say
from lessonlib.engine.networks import upgrade_state_dict
from lessonlib.engine.runtime import home
from lessonlib.engine.storage import atomic_write

__all__ = ["load", "model_path", "save"]


def model_path(name):
    """Where `learn.save(name)` writes: LESSONLIB_HOME/models/<name>.pt; a name that would leave it is refused."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\\0") or name.startswith(".") \
            or name != name.strip():
        raise ValueError(problem("name={name!r}: use a plain name such as '224_lastlayer' (no folders, no leading "
                                 "dot)", name=name))
    if len(f"{name}.pt".encode()) > 255:   # the longest file name most file systems take
        raise ValueError(problem("name={name!r}... is {len} bytes long: file names can be at most 252 bytes plus "
                                 "'.pt'; use a shorter name", name=name[:20], len=len(name.encode())))
    return home() / "models" / f"{name}.pt"


def save(model, arch, classes, name, policy):
    """Write `model`'s weights as `name`; returns the path."""
    path = model_path(name)
    if not all(math.isfinite(float(t.float().abs().max())) for t in model.state_dict().values() if t.numel()):
        raise FloatingPointError(problem("not saving {name!r}: the model holds infinite or NaN weights", name=name))
    if policy.rank == 0:
        state = {"model": model.state_dict(), "arch": arch, "classes": list(classes)}
        size = sum(t.numel() * t.element_size() for t in state["model"].values())
        atomic_write(path, lambda f: torch.save(state, f), size=size)   # a full disk: named, the old file kept
        print(say("saved to {path}", path=path))
    distributed.barrier()
    return path


def load(model, arch, classes, name):
    """Read the weights saved as `name` into `model`, which must be the same network for the same classes.

    All or nothing: the file is checked whole first (what it holds, the network, the classes, every tensor's
    name and shape, finite values); only then are its weights copied in. A file that fails a check leaves the
    model as it was, and the message says what the file holds and what was expected.
    """
    path = model_path(name)
    if not path.exists():
        saved = sorted(p.stem for p in path.parent.glob("*.pt")) if path.parent.exists() else []
        raise FileNotFoundError(problem("no saved model {name!r} in {parent}; saved models: {saved}",
                                        name=name, parent=path.parent, saved=saved))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # truncated, corrupt, or not a saved model
        raise ValueError(problem("{path} cannot be read as a saved model ({kind}: {reason}): the file is damaged "
                                 "or incomplete; save the model again",
                                 path=path, kind=type(e).__name__, reason=str(e)[:100])) from e
    weights = _checked(state, path, model, arch, classes)
    model.load_state_dict(weights)
    return model


def _checked(state, path, model, arch, classes):
    """The weights in `state`, upgraded, once every check has passed; else a ValueError saying what is wrong."""
    if not (isinstance(state, dict) and {"model", "arch", "classes"} <= set(state)):
        if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
            what = f"a plain state_dict ({len(state)} tensors)"
        else:
            what = f"a {type(state).__name__}" + (f" with keys {sorted(map(str, state))[:5]}" if isinstance(state, dict) else "")
        raise ValueError(problem("{path} holds {what}, not a model saved by learn.save() (a dict with the weights, "
                                 "the network's name and the classes): the learner is unchanged",
                                 path=path, what=what))
    if state["arch"] != arch or list(state["classes"]) != list(classes):
        raise ValueError(problem("{stem!r} holds a {state} model for classes {state2}, but this learner is {arch} "
                                 "for {classes}: the learner is unchanged",
                                 stem=path.stem, state=state['arch'], state2=state['classes'], arch=arch, classes=list(classes)))
    weights = upgrade_state_dict(state["model"])
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    shapes = [f"{k}: {tuple(weights[k].shape)} in the file, {tuple(v.shape)} here" for k, v in expected.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or extra or shapes:
        problems = ([f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"] if missing else []) + \
                   ([f"not in this model {extra[:3]}{' ...' if len(extra) > 3 else ''}"] if extra else []) + shapes[:3]
        raise ValueError(problem("{stem!r} was saved from a differently built {arch} ({problems}), e.g. with another "
                                 "head (xtra_fc, ps): build the learner as it was when saved; the learner is "
                                 "unchanged", stem=path.stem, arch=arch, problems='; '.join(problems)))
    bad = [k for k, t in weights.items() if t.is_floating_point() and t.numel() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(problem("{stem!r} holds infinite or NaN weights ({bad}): refused, the learner is unchanged",
                                 stem=path.stem, bad=bad[:3]))
    return weights
