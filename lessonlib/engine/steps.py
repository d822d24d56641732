"""What this machine adds around the four lines of a training step (forward, loss, backward, step), decided once.

`training.train_step` is the lesson's step, written out; a `StepPlan`, made once per epoch from the run's
`Policy`, holds what it composes around those lines:
- the device and the memory format of the images (`to_device`), and the precision (`autocast`);
- a gradient scaler, switched on only for float16 (`GradScaler(enabled=...)`: otherwise it passes the
  loss and the step straight through);
- the guard (`guarded`): a step that would make the loss, the gradients or the weights infinite or NaN is not
  kept, the optimizer's step is never cut in half by Ctrl-C, and a step that fails part way (the memory runs
  out in the backward pass, say) is undone by `undone_on_failure`, around each call of `train_step`.
The body in pieces is not in the step: on a CPU the plan installs a `BodyInPieces` on a `ConvNet` once, and the
model's own forward takes the mini-batch through the body a few images at a time while the head sees it whole
(the same gradients, less memory).
"""
import contextlib

import torch

from lessonlib.engine.interrupts import deferred_interrupt
from lessonlib.engine.language import problem
from lessonlib.engine.networks import ConvNet
from lessonlib.engine.snapshot import Snapshot

__all__ = ["BodyInPieces", "StepPlan", "forward_in_pieces"]


class StepPlan:
    """What one training step needs from the machine, for `model` trained by `optimizer` under `policy`.

    `keep_finite=False` leaves out the copy of the weights taken before each step (the LR finder puts
    everything back at its end anyway); a step that is not finite then still raises FloatingPointError.
    """

    def __init__(self, policy, model, optimizer, keep_finite=True):
        self.policy = policy
        self.scaler = torch.amp.GradScaler(policy.device.type, enabled=policy.precision == "fp16")
        if isinstance(model, ConvNet):   # the body in pieces, in the model's own forward (None: whole)
            model.pieces = BodyInPieces(policy.body_piece, policy) if policy.body_piece else None
        self.before = Snapshot(model, optimizer, weights="trainable") if keep_finite else None
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self._in_step = False  # from the start of `guarded` to the end of its step: what a failure there must undo

    def to_device(self, x, y):
        return self.policy.to_device(x), y.to(self.policy.device, non_blocking=True)

    def autocast(self):
        return self.policy.autocast()

    @contextlib.contextmanager
    def guarded(self, optimizer):
        """Around one step. First a copy to go back to (the forward pass updates BatchNorm statistics); then it
        yields the finiteness guard, `check(loss)`, to call before the optimizer's step: a loss or (unscaled)
        gradients that are not finite are refused (FloatingPointError, everything as before the step), and from
        there to the end of the block Ctrl-C waits, so the step is applied whole. New weights that are not finite
        are refused the same way when the block ends."""
        if self.before is not None:
            self.before.take()
        self._in_step = True
        with contextlib.ExitStack() as held:
            def check(loss):
                if not torch.isfinite(loss.detach()):
                    self._undo(optimizer, "training loss", float(loss.detach()))
                held.enter_context(deferred_interrupt())
                if not self.scaler.is_enabled() and not _all_finite([p.grad for p in self.params]):
                    self._undo(optimizer, "gradient")   # float16: the scaler itself skips such steps
            yield check
            if not self.scaler.is_enabled() and self.before is not None and not _all_finite(self.params):
                self._undo(optimizer, "weights after the step")
        self._in_step = False

    @contextlib.contextmanager
    def undone_on_failure(self, desc, batch):
        """Around one call of `train_step`: a step that fails part way (out of memory in the forward or backward
        pass, or in the optimizer's step) is undone, the weights, BatchNorm statistics and optimizer state put back
        as before that mini-batch, and the error goes on; a FloatingPointError (already undone by the guard) names
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


class BodyInPieces:
    """How a `ConvNet`'s body takes a training mini-batch on a CPU: `piece` images at a time, less memory.

    Only for images large enough for pieces to be faster (`policy.piece_for`: the measured table, by precision
    and by whether the body trains); smaller ones go through whole.

    Installed on the model once by the step's plan (`model.pieces`); the model's forward calls it. In training
    with gradients on, the body runs on each piece without keeping its graph, and the backward pass runs it
    again one piece at a time (`_BodyPieces`, `_body_backward`): the gradients are those of the whole
    mini-batch, for one more forward pass of the body. Elsewhere (evaluation, no gradients, a batch of at most
    `piece` images) it is simply `body(x)`.
    """

    def __init__(self, piece, policy):
        self.piece, self.policy = piece, policy

    def __call__(self, body, x):
        params = [p for p in body.parameters() if p.requires_grad]
        piece = self.policy.piece_for(x, backprop=bool(params))   # None for small images: whole is faster there
        if not (torch.is_grad_enabled() and body.training and piece and piece < len(x)):
            return body(x)
        rng = Snapshot(rng=True).take()                      # replayed when the body runs again
        if not params:                                       # a frozen body: its pieces keep no graph at all
            with torch.no_grad():
                features = forward_in_pieces(body, x, piece)
            return features.requires_grad_()
        return _BodyPieces.apply(x, body, self, rng, *params)

    def __repr__(self):
        return f"BodyInPieces(piece={self.piece})"


class _BodyPieces(torch.autograd.Function):
    """The body on each piece without its graph (forward); its backward runs `_body_backward`, which puts the
    gradients straight into the body's parameters (inputs here only so that the features require a gradient)."""

    @staticmethod
    def forward(ctx, x, body, pieces, rng, *params):
        ctx.x, ctx.body, ctx.pieces, ctx.rng, ctx.n_params = x, body, pieces, rng, len(params)
        return forward_in_pieces(body, x, pieces.piece)     # gradients are off inside an autograd Function

    @staticmethod
    def backward(ctx, grad):
        with torch.enable_grad():
            _body_backward(ctx.body, ctx.x, grad, ctx.rng, ctx.pieces.piece, ctx.pieces.policy)
        return (None, None, None, None) + (None,) * ctx.n_params


def _all_finite(tensors):
    tensors = [t for t in tensors if t is not None]
    return not tensors or bool(torch.stack([t.detach().abs().amax().float() for t in tensors]).isfinite().all())


def _body_backward(body, x, grad, rng, piece, policy):
    """The body's share of the gradients, keeping its activations for `piece` images only.

    The body ran on each piece without keeping its graph (`BodyInPieces`) and the head's backward
    reached the features (their gradient: `grad`). Now the body runs each piece again, keeping its graph this time, and
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
        for i, (part, part_grad) in enumerate(zip(pieces, grad.split(piece))):
            # under several processes (DDP), gradients are exchanged once: with the last piece's backward
            last = i == len(pieces) - 1
            with body.no_sync() if hasattr(body, "no_sync") and not last else contextlib.nullcontext():
                with policy.autocast():
                    out = body(part)
                out.backward(part_grad)


def forward_in_pieces(model, x, piece):
    """`model(x)`, computed `piece` images at a time (the same result for a model in eval mode)."""
    return torch.cat([model(p) for p in x.split(piece)]) if piece and piece < len(x) else model(x)
