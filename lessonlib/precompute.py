"""Precomputed activations: what `precompute=True` stores, where, and when it is computed again.

With the body frozen, its output for an (un-augmented) image never changes. So lessonlib runs the
body once over every image of a split and keeps the result, the *activations* (one row of numbers
per image), in memory and on disk; training the head then only reads them. That is why an epoch
with precompute is so fast, and why augmentation does nothing while it is on: the stored rows were
computed from the plain images.

The stored activations are found again by a key made of everything they depend on:
- the network (its name and a hash of the body's weights: a trained body gives other activations),
- the image size and the validation transform,
- the image files (names, sizes and modification times) and their labels,
- the precision the body ran in, and how images are decoded (`images.READER`: upright by EXIF, floats scaled).
Change any of these and the key changes, so a stale file is never used. The files live in
`LESSONLIB_HOME/precompute/<key>.pt`; a file that cannot be read is named, deleted and computed again, and
one that cannot be written (a full disk) leaves the activations in memory, with one warning saying so.
"""
import hashlib
import warnings

import numpy as np
import torch

from lessonlib.engine import distributed
from lessonlib.engine.language import problem, say
from lessonlib.engine.policy import memory_explained
from lessonlib.engine.runtime import home
from lessonlib.engine.snapshot import Snapshot
from lessonlib.engine.storage import atomic_write, load_or_none
from lessonlib.training import get_preds

__all__ = ["ActivationCache", "TensorBatches", "describe_head_inputs", "describe_routes", "describe_rows",
           "describe_speedup", "describe_stored_row", "weights_digest"]


def weights_digest(module):
    """A hash of every weight and buffer of `module`: changes whenever any of them does."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _labels_digest(y):
    y = np.ascontiguousarray(np.asarray(y))
    return hashlib.sha256(f"{y.dtype}{y.shape}".encode() + y.tobytes()).hexdigest()


class ActivationCache:
    """The frozen body's activations of each split ("train", "valid", "test"), computed once per key."""

    def __init__(self):
        self.memory = {}          # key -> (features, labels)
        self._body_digest = None  # the body's weights are hashed once, until forget()
        self._told_not_cached = False

    def forget(self):
        """Drop everything kept in memory: the body changed (it trained, or other weights were loaded)."""
        self.memory.clear()
        self._body_digest = None

    def key(self, body, data, split, policy):
        """The hash of everything the activations of `split` depend on (see the module's docstring)."""
        from lessonlib.images import READER, files_digest

        ds = data.split_loader(split).dataset
        if self._body_digest is None:
            self._body_digest = weights_digest(body)
        parts = [body.arch, self._body_digest, str(data.sz), repr(data.tfms.valid), files_digest(ds.fnames),
                 _labels_digest(ds.y), policy.precision, READER]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def path(self, key):
        return home() / "precompute" / f"{key}.pt"

    def get(self, body, data, split, policy):
        """(features, labels) of `split`: from memory, from disk, or computed now and kept in both."""
        key = self.key(body, data, split, policy)
        if key in self.memory:
            return self.memory[key]
        ds = data.split_loader(split).dataset
        distributed.barrier()   # every process decides on the same file state
        saved = load_or_none(self.path(key), lambda p: torch.load(p, map_location="cpu", weights_only=True),
                             "cached activations")
        if saved is not None and len(saved["x"]) == len(ds) and np.array_equal(saved["y"].numpy(), np.asarray(ds.y)):
            found = (saved["x"], saved["y"])
        else:   # under several processes each computes its share and all get every row
            policy.prepare(body).eval()
            with Snapshot(rng=True).kept(), memory_explained(policy.device, data.bs, data.sz):
                # computed or read from disk, the random numbers that follow are the same
                found = get_preds(body, data.split_loader(split), policy,
                                  desc=say("precompute {split}", split=_split_word(split)))
            if policy.rank == 0:
                self._store(key, found, split)
            distributed.barrier()
        self.memory[key] = found
        return found

    def _store(self, key, found, split):
        """Write the activations to disk; where that fails (a full disk, a home that turned read-only) they stay in
        memory for this session, with one warning saying so: minutes of computing are not thrown away."""
        x, y = found
        try:
            atomic_write(self.path(key), lambda f: torch.save({"x": x, "y": y}, f),
                         size=x.numel() * x.element_size() + y.numel() * y.element_size())
        except OSError as e:
            if not self._told_not_cached:   # one line, not one per split
                warnings.warn(problem("the activations of {split} could not be cached on disk ({e}); they are kept "
                                      "in memory, so training goes on, but a new session computes them again",
                                      split=split, e=e.strerror or e), stacklevel=2)
            self._told_not_cached = True


class TensorBatches:
    """Mini-batches sliced straight from tensors (the cached activations): no per-item overhead.

    With a `sampler` (a `distributed.ShardedSampler`, under several processes) the items come in its order.
    """

    def __init__(self, x, y, bs, shuffle=False, sampler=None):
        self.x, self.y, self.bs, self.shuffle, self.sampler = x, y, bs, shuffle, sampler

    batch_size = property(lambda self: self.bs, doc="Items per mini-batch, as a DataLoader calls it.")

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.x)
        full, rest = divmod(n, self.bs)
        return full + (rest > 1 or (rest == 1 and not self.shuffle))   # never a training batch of one

    def __iter__(self):
        if self.sampler is not None:
            order = torch.tensor(list(self.sampler), dtype=torch.long)
        else:
            order = torch.randperm(len(self.x)) if self.shuffle else torch.arange(len(self.x))
        for i in range(len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            yield self.x[idx], self.y[idx]


def _split_word(split):
    """A split's name ("train", "valid", "test": the names code uses) as people read it in a progress bar."""
    return {"train": say("train"), "valid": say("valid"), "test": say("test")}.get(split, split)


# ---------------------------------------------------------------- what lessons 01, 03 and 04 measure, in words

def describe_rows(arch, features, split):
    """One line for people on the stored activations of `split` ("train" or "valid"): `features`, one row per
    image, from the body of `arch`."""
    n, k = features.shape[0], features.shape[1]
    if split == "train":
        return say("{arch}: {k} numbers per photo, stored for {n} training photos", arch=arch, k=k, n=n)
    return say("{arch}: {k} numbers per photo, stored for {n} validation photos", arch=arch, k=k, n=n)


def describe_speedup(head_seconds, full_seconds):
    """One line for people: an epoch on the stored activations against one through the whole network."""
    return say("one epoch on cached activations: {head:.3f} s; one epoch through the whole network: {full:.1f} s; "
               "precompute is {times:.0f}x faster here", head=head_seconds, full=full_seconds,
               times=full_seconds / head_seconds)


def describe_routes(precision, apart):
    """One line for people: how far the probabilities from the stored activations and from the whole network lie
    apart (`apart`), in the precision the body ran in."""
    return say("precision {precision}: the two routes differ by at most {apart:.1e} in probability",
               precision=precision, apart=apart)


def describe_stored_row(to_plain, to_augmented, policy):
    """Two lines for people: how far a stored row lies from the body's output on the plain photo and on an
    augmented version (relative distances), and how much rounding `policy`'s precision allows."""
    return (say("stored row vs the body on the plain photo: {to_plain:.1e} apart; on an augmented version: "
                "{to_augmented:.2f}", to_plain=to_plain, to_augmented=to_augmented) + "\n" +
            say("precision {precision}: rounding up to {rounding:.0e}", precision=policy.precision,
                rounding=policy.rounding))


def describe_head_inputs(same_with_precompute, same_without):
    """One line for people: whether the head got the same inputs in two epochs, with precompute on and off."""
    def word(same):
        return say("identical") if same else say("different")
    return say("precompute on: the head's inputs in two epochs are {on}; off: {off}",
               on=word(same_with_precompute), off=word(same_without))
