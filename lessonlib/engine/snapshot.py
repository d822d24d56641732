"""One way to put state back: a snapshot of what training changes, restored whole whatever Ctrl-C does.

Machinery, not lesson. Where lessonlib puts state back, it takes a `Snapshot`: the learning-rate finder after
its sweep (weights, buffers, train/eval modes, optimizer state and settings, random generators); a training
step that would leave non-finite weights (the trainable weights and the buffers, copied in place each step);
an epoch whose validation loss is not finite; the second pass of the body in pieces (`steps`: BatchNorm statistics).
"""
import contextlib
import random

import numpy as np
import torch

from lessonlib.engine.interrupts import run_whole
from lessonlib.engine.language import problem

__all__ = ["Snapshot"]


def _rng_states():
    return (torch.get_rng_state(), np.random.get_state(), random.getstate(),
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _set_rng_states(states):
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])
    if states[3] is not None:
        torch.cuda.set_rng_state_all(states[3])


def _copy_into(kept, value):
    """`value` copied into `kept` where it fits (no new memory each step), else a new copy."""
    if not torch.is_tensor(value):
        return value
    if torch.is_tensor(kept) and kept.shape == value.shape and kept.dtype == value.dtype and kept.device == value.device:
        return kept.copy_(value)
    return value.detach().clone()


class Snapshot:
    """What training changes, kept to be put back exactly.

    `model`: its weights and buffers, all of them (`weights="all"`), only the weights that train and every
    buffer (`weights="trainable"`, cheap enough for every step), or only the buffers (`weights="buffers"`:
    BatchNorm statistics); `weights=None` keeps none. `modes`: each
    layer's train/eval mode. `optimizer`: its per-weight state (momentum) and its groups' settings (rates).
    `rng`: Python's, NumPy's and PyTorch's random generators. `take()` copies into the same tensors each
    time; `restore()` puts everything back whole, even through Ctrl-C.

    Example:
        >>> with Snapshot(model, optimizer, rng=True).kept():
        ...     train_a_while(model, optimizer)   # then everything is as before
    """

    def __init__(self, model=None, optimizer=None, weights="all", modes=False, rng=False):
        if weights not in ("all", "trainable", "buffers", None):
            raise ValueError(problem("weights={weights!r}: choose 'all', 'trainable', 'buffers' or None",
                                     weights=weights))
        self.model, self.optimizer, self.weights, self.modes, self.rng = model, optimizer, weights, modes, rng
        self._saved, self._state = {}, {}

    def _model_tensors(self):
        if self.model is None or self.weights is None:
            return {}
        state = self.model.state_dict(keep_vars=True)
        if self.weights == "all":
            return state
        if self.weights == "buffers":
            return {k: t for k, t in state.items() if not isinstance(t, torch.nn.Parameter)}
        return {k: t for k, t in state.items() if not isinstance(t, torch.nn.Parameter) or t.requires_grad}

    def take(self):
        """Copy the state now (into the copies of the last `take` where the shapes still fit); returns self."""
        with torch.no_grad():
            tensors = self._model_tensors()
            self._saved = {key: _copy_into(self._saved.get(key), t) for key, t in tensors.items()}
            if self.optimizer is not None:
                self._groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
                state = {}
                for p, s in self.optimizer.state.items():
                    kept = self._state.get(p, {})
                    state[p] = {k: _copy_into(kept.get(k), v) for k, v in s.items()}
                self._state = state
        if self.modes and self.model is not None:
            self._modes = [(m, m.training) for m in self.model.modules()]
        if self.rng:
            self._rng = _rng_states()
        return self

    def restore(self):
        """Put back what `take` copied, whole: Ctrl-C waits until it is done (`run_whole`)."""
        def put_back():
            with torch.no_grad():
                if self._saved:
                    self.model.load_state_dict(self._saved, strict=False)
                if self.optimizer is not None:
                    self.optimizer.state.clear()   # also drops state a failed step created
                    for p, s in self._state.items():
                        self.optimizer.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                    for g, settings in zip(self.optimizer.param_groups, self._groups):
                        g.update(settings)
            if self.modes and self.model is not None:
                for m, mode in self._modes:
                    m.training = mode
            if self.rng:
                _set_rng_states(self._rng)
        run_whole(put_back)

    @contextlib.contextmanager
    def kept(self):
        """Take the snapshot, run the block, then put everything back (also after an error or Ctrl-C)."""
        self.take()
        try:
            yield self
        finally:
            self.restore()
