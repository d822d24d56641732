"""How this machine runs the four lines of a training step (forward, loss, backward, step), decided once.

`training.train_step` reads like the lesson; what it asks of a `StepPlan` is decided here, once per
epoch, from the run's `Policy`:
- the device and the memory format of the images (`to_device`), and the precision (`autocast`);
- a gradient scaler, switched on only for float16 (`GradScaler(enabled=...)`: otherwise it passes the
  loss and the step straight through);
- the body in pieces: on a CPU the body of a learner's `ConvNet` can take the mini-batch a few images at
  a time while the head sees it whole (`forward` and `backward`, the same gradients, less memory);
- the step itself: never cut in half by Ctrl-C, and undone when it would make the loss, the gradients
  or the weights infinite or NaN (`step`), or when it fails part way (the memory runs out in the backward
  pass, say: `undone_on_failure`, around each call of `train_step`).
"""
import contextlib

import torch

from lessonlib.engine.interrupts import deferred_interrupt
from lessonlib.engine.language import problem
from lessonlib.engine.networks import ConvNet, head_forward
from lessonlib.engine.snapshot import Snapshot

__all__ = ["StepPlan", "forward_in_pieces"]


class StepPlan:
    """What one training step needs from the machine, for `model` trained by `optimizer` under `policy`.

    `keep_finite=False` leaves out the copy of the weights taken before each step (the LR finder puts
    everything back at its end anyway); a step that is not finite then still raises FloatingPointError.
    """

    def __init__(self, policy, model, optimizer, keep_finite=True):
        self.policy = policy
        self.scaler = torch.amp.GradScaler(policy.device.type, enabled=policy.precision == "fp16")
        self.body_piece = policy.body_piece if isinstance(model, ConvNet) else None   # images per piece of the body
        self.before = Snapshot(model, optimizer, weights="trainable") if keep_finite else None
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self._pending = None   # the body's share of the backward pass, when it runs in pieces
        self._in_step = False  # between `start` and the end of `step`: what a failure there must undo

    def to_device(self, x, y):
        return self.policy.to_device(x), y.to(self.policy.device, non_blocking=True)

    def autocast(self):
        return self.policy.autocast()

    def start(self, optimizer):
        """Before the forward pass (which updates BatchNorm statistics): no old gradients, and a copy to go back to."""
        optimizer.zero_grad(set_to_none=True)
        if self.before is not None:
            self.before.take()
        self._in_step = True

    def forward(self, model, x):
        """`model(x)`; in pieces, the body runs without keeping its graph and `backward` runs it again."""
        if not self.body_piece or self.body_piece >= len(x):
            return model(x)
        rng = Snapshot(rng=True).take()                      # replayed when the body runs again
        with torch.no_grad():
            features = forward_in_pieces(model.body, x, self.body_piece)
        features.requires_grad_()
        self._pending = (model.body, x, features, rng)
        return head_forward(model.head, features)            # the head (and its BatchNorm) sees the whole batch

    def backward(self, loss):
        """`loss.backward()` (scaled in float16); in pieces, then the body's backward one piece at a time."""
        self.scaler.scale(loss).backward()
        pending, self._pending = self._pending, None
        if pending is not None:
            _body_backward(*pending, self.body_piece, self.policy)

    def step(self, optimizer, loss):
        """`optimizer.step()`, whole even on Ctrl-C; refused (FloatingPointError, everything as before
        `start`) when the loss, the gradients or the new weights are not finite."""
        if not torch.isfinite(loss.detach()):
            self._undo(optimizer, "training loss", float(loss.detach()))
        with deferred_interrupt():
            if self.scaler.is_enabled():   # float16: the scaler itself skips steps whose gradients overflowed
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                if not _all_finite([p.grad for p in self.params]):
                    self._undo(optimizer, "gradient")
                optimizer.step()
                if self.before is not None and not _all_finite(self.params):
                    self._undo(optimizer, "weights after the step")
        self._in_step = False

    @contextlib.contextmanager
    def undone_on_failure(self, desc, batch):
        """Around one call of `train_step`: a step that fails part way (out of memory in the forward or backward
        pass, or in the optimizer's step) is undone, the weights, BatchNorm statistics and optimizer state put back
        as before that mini-batch, and the error goes on; a FloatingPointError (already undone by `step`) names
        the mini-batch (`desc`, number `batch`)."""
        try:
            yield
        except FloatingPointError as e:
            raise FloatingPointError(problem("{desc}, mini-batch {batch}: {e}", desc=desc, batch=batch, e=e)) from None
        except Exception:
            if self._in_step and self.before is not None:
                self.before.restore()
            self._in_step = False
            raise

    def _undo(self, optimizer, what, value=None):
        optimizer.zero_grad(set_to_none=True)
        if self.before is not None:
            self.before.restore()
        self._in_step = False
        shown = f" became {value}" if value is not None else " became infinite or NaN"
        raise FloatingPointError(problem("the {what}{shown}: the learning rate is probably too high; try one ten "
                                         "times smaller (learn.lr_find() helps choose). The weights are those from "
                                         "before this mini-batch.", what=what, shown=shown))


def _all_finite(tensors):
    tensors = [t for t in tensors if t is not None]
    return not tensors or bool(torch.stack([t.detach().abs().amax().float() for t in tensors]).isfinite().all())


def _body_backward(body, x, features, rng, piece, policy):
    """The body's share of the gradients, keeping its activations for `piece` images only.

    The body ran on each piece without keeping its graph (`StepPlan.forward`) and the head's backward
    reached the features. Now the body runs each piece again, keeping its graph this time, and
    back-propagates that piece's share of the features' gradient: the gradients are those of the whole
    mini-batch, for one more forward pass of the body. Random layers (dropout) draw the same numbers both
    times, and BatchNorm running statistics count the first pass only. A BatchNorm layer of the body
    that is training normalises each piece with that piece's statistics (`learn.bn_freeze(True)` keeps
    them fixed, and then the result is exactly the whole mini-batch's).
    """
    if not any(p.requires_grad for p in body.parameters()):
        return
    devices = [x.device] if x.device.type == "cuda" else []
    pieces = x.split(piece)
    with torch.random.fork_rng(devices=devices), Snapshot(body, weights="buffers").kept():   # both put back after
        rng.restore()
        for i, (part, grad) in enumerate(zip(pieces, features.grad.split(piece))):
            # under several processes (DDP), gradients are exchanged once: with the last piece's backward
            last = i == len(pieces) - 1
            with body.no_sync() if hasattr(body, "no_sync") and not last else contextlib.nullcontext():
                with policy.autocast():
                    out = body(part)
                out.backward(grad)


def forward_in_pieces(model, x, piece):
    """`model(x)`, computed `piece` images at a time (the same result for a model in eval mode)."""
    return torch.cat([model(p) for p in x.split(piece)]) if piece and piece < len(x) else model(x)
