"""Saved models: `learn.save(name)` and `learn.load(name)`, in LESSONLIB_HOME/models/<name>.pt.

A model is written whole or not at all (`storage.atomic_write`), never with infinite or NaN weights, and
under several processes by the first one only. Reading checks that the file holds the same network for
the same classes, and upgrades models saved before the body's parts had names.
"""
import math

import torch

from lessonlib import distributed
from lessonlib.models import upgrade_state_dict
from lessonlib.runtime import home
from lessonlib.storage import atomic_write

__all__ = ["load", "model_path", "save"]


def model_path(name):
    """Where `learn.save(name)` writes: LESSONLIB_HOME/models/<name>.pt; a name that would leave it is refused."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\\0") or name.startswith(".") \
            or name != name.strip():
        raise ValueError(f"name={name!r}: use a plain name such as '224_lastlayer' (no folders, no leading dot)")
    return home() / "models" / f"{name}.pt"


def save(model, arch, classes, name, policy):
    """Write `model`'s weights as `name`; returns the path."""
    path = model_path(name)
    if not all(math.isfinite(float(t.float().abs().max())) for t in model.state_dict().values() if t.numel()):
        raise FloatingPointError(f"not saving {name!r}: the model holds infinite or NaN weights")
    if policy.rank == 0:
        state = {"model": model.state_dict(), "arch": arch, "classes": list(classes)}
        atomic_write(path, lambda f: torch.save(state, f))
        print(f"saved to {path}")
    distributed.barrier()
    return path


def load(model, arch, classes, name):
    """Read the weights saved as `name` into `model`, which must be the same network for the same classes."""
    path = model_path(name)
    if not path.exists():
        saved = sorted(p.stem for p in path.parent.glob("*.pt")) if path.parent.exists() else []
        raise FileNotFoundError(f"no saved model {name!r} in {path.parent}; saved models: {saved}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # truncated, corrupt, or not a saved model
        raise ValueError(f"{path} cannot be read as a saved model ({type(e).__name__}: {str(e)[:100]}): the file "
                         f"is damaged or incomplete; save the model again") from e
    if state["arch"] != arch or list(state["classes"]) != list(classes):
        raise ValueError(f"{name!r} holds a {state['arch']} model for classes {state['classes']}, "
                         f"but this learner is {arch} for {list(classes)}")
    model.load_state_dict(upgrade_state_dict(state["model"]))
    return model
