"""`ConvLearner`: a pretrained body, a new head, and the lesson's training verbs.

    learn = ConvLearner.pretrained("resnet34", data, precompute=True)
    learn.fit(1e-2, 1)            # trains the head on cached activations of the frozen body
    learn.precompute = False      # full forward passes again, so augmentation takes effect
    learn.unfreeze()              # every layer group trains
    learn.fit([1e-4, 1e-3, 1e-2], 3, cycle_len=1)
"""
import hashlib
import os

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lessonlib import models, training
from lessonlib.data import ImageDataset, files_digest
from lessonlib.lr_finder import find_lr, losses_at
from lessonlib.metrics import f2
from lessonlib.runtime import default_device, home
from lessonlib.schedules import Recorder, sgdr, sgdr_epochs

GROUP_NAMES = ["early body", "late body", "head"]


class DeviceAugmentedBatches:
    """Mini-batches moved to the device and augmented there, all images of a batch at once."""

    def __init__(self, loader, augment, device):
        self.loader, self.augment, self.device = loader, augment, device

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield self.augment(training.to_device(x, self.device)), y


class TensorBatches:
    """Mini-batches sliced straight from tensors (the cached activations): no per-item overhead."""

    def __init__(self, x, y, bs, shuffle=False):
        self.x, self.y, self.bs, self.shuffle = x, y, bs, shuffle

    def __len__(self):
        n = len(self.x)
        full, rest = divmod(n, self.bs)
        return full + (rest > 1 or (rest == 1 and not self.shuffle))

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            yield self.x[idx], self.y[idx]


def compile_missing(device):
    """Why `torch.compile` cannot build code for `device` here (no C++ compiler, no Triton), or None."""
    import shutil

    if device.type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "torch.compile needs Triton for CUDA (pip install triton)"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++", "cl")):
        return "torch.compile needs a C++ compiler on a CPU (g++ or clang++), and none was found"
    return None


def _weights_digest(module):
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ConvLearner:
    """A pretrained convolutional body with a new head for `data`'s classes.

    Make one with `ConvLearner.pretrained(arch, data, precompute=False)`. Attributes:
    `model` (body then head), `history` (every epoch trained so far), `sched` (learning
    rates and losses per mini-batch of the latest fit).
    """

    def __init__(self, data, body, head, metrics=None):
        self.data, self.body, self.head = data, body, head
        self.arch = body.name
        self.model = nn.Sequential(body.module, head)
        if data.is_multi:   # several tags per image: one independent yes/no (sigmoid) per tag
            self.metrics = list(metrics) if metrics else [f2]
            self.loss_fn = nn.BCEWithLogitsLoss()
            # Start each tag's output at its frequency in the training set instead of 50%: most tags
            # are absent from most images, and learning that first would waste the first epochs.
            freq = torch.as_tensor(data.trn_y.mean(0)).clamp(1e-3, 1 - 1e-3)
            with torch.no_grad():
                head[-1].bias.copy_(torch.log(freq / (1 - freq)))
        else:               # one class per image: softmax over the classes
            self.metrics = list(metrics) if metrics else [training.accuracy]
            self.loss_fn = nn.CrossEntropyLoss()
        self.history = pd.DataFrame()
        self.sched = None
        self.bn_frozen = False
        self.augment_on_device = None   # None: per batch on CUDA, per image elsewhere; True/False to choose
        self.micro_bs = "auto"   # images per piece of a mini-batch through the body in training (see _micro_bs)
        self._precompute = False
        self._activations = {}   # cache key -> (features, labels), kept while the body is unchanged
        self._body_digest = None
        self.model.eval()
        self.freeze()

    @classmethod
    def pretrained(cls, arch, data, precompute=False, xtra_fc=512, ps=(0.25, 0.5), metrics=None, weights=None):
        """A learner whose body holds ImageNet weights for `arch`, frozen, and whose head is new.

        Args:
            arch: "resnet34", "resnet50", "efficientnet_lite0", or a torchvision function. Without
                network access to torchvision's weights, the packaged ImageNet efficientnet_lite0 is
                used instead, and one line says so.
            data: an `ImageClassifierData`.
            precompute: compute the frozen body's activations once and train the head on them.
            xtra_fc: width of the head's hidden layer; ps: its two dropout probabilities.
            metrics: functions (preds, y) -> float shown per epoch; preds are log-probabilities, or tag
                probabilities for multi-label data (default: accuracy, or f2 for multi-label data).
            weights: "imagenet"; "random" times the network where its weights cannot be had, and says so
                (default: `LESSONLIB_WEIGHTS`, else "imagenet").

        Example:
            >>> learn = ConvLearner.pretrained("resnet34", data, precompute=True)
            >>> learn.fit(1e-2, 1)
        """
        body = models.create_body(arch, weights)
        head = models.create_head(body.n_features, data.c, xtra_fc, ps)
        learn = cls(data, body, head, metrics)
        learn.precompute = precompute
        return learn

    def __repr__(self):
        frozen = sum(not any(p.requires_grad for p in g.parameters()) for g in self.layer_groups)
        return (f"ConvLearner({self.arch}, {self.data.c} classes, precompute={self.precompute}, "
                f"{frozen} of 3 layer groups frozen)")

    def set_data(self, data):
        """Train on other data with the same classes, e.g. the same images at a larger size."""
        if list(data.classes) != list(self.data.classes):
            raise ValueError(f"set_data needs the same classes: {data.classes} is not {self.data.classes}")
        self.data = data
        self._forget_activations()
        if self.precompute:
            self.precompute = True   # compute the activations of the new images

    # ------------------------------------------------------------ layer groups, freezing
    @property
    def layer_groups(self):
        """[early body, late body, head]: what differential learning rates address."""
        return models.layer_groups(self.body.module, self.head)

    def freeze_to(self, n):
        """Freeze layer groups before index `n` and let the rest train."""
        for i, group in enumerate(self.layer_groups):
            for p in group.parameters():
                p.requires_grad_(i >= n)

    def freeze(self):
        """Train only the head (the state after `pretrained`)."""
        self.freeze_to(len(self.layer_groups) - 1)

    def unfreeze(self):
        """Let every layer train; switches precompute off, since the body's activations will change."""
        if self.precompute:
            print("unfreeze(): precompute switched off, because the body now trains and its cached "
                  "activations would be stale.")
            self.precompute = False
        self.freeze_to(0)

    def bn_freeze(self, flag=True):
        """Keep the body's BatchNorm layers in eval mode (running mean/var fixed) while training."""
        self.bn_frozen = bool(flag)

    def _train_mode(self):
        self.model.train()
        for m in self.body.module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                frozen = not any(p.requires_grad for p in m.parameters(recurse=False))
                if self.bn_frozen or frozen:
                    m.eval()   # a frozen layer's statistics must not drift either

    # ------------------------------------------------------------ precompute
    @property
    def precompute(self):
        """True: the head trains on the frozen body's cached activations (no augmentation)."""
        return self._precompute

    @precompute.setter
    def precompute(self, flag):
        if flag and any(p.requires_grad for g in self.layer_groups[:-1] for p in g.parameters()):
            raise ValueError("precompute=True needs a frozen body: call learn.freeze() first")
        if flag and self.data.tfms.augments:
            print("Note: precompute is on, so data augmentation does nothing: the activations are computed "
                  "once from un-augmented images. Set learn.precompute = False to train with augmentation.")
        self._precompute = bool(flag)
        if flag:
            for split in self._splits():
                self.activations(split)

    def _forget_activations(self):
        self._activations.clear()
        self._body_digest = None

    def _splits(self):
        splits = {"train": self.data.fix_dl, "valid": self.data.val_dl}
        if self.data.test_dl is not None:
            splits["test"] = self.data.test_dl
        return splits

    def _activation_key(self, split):
        ds = self._splits()[split].dataset
        if self._body_digest is None:
            self._body_digest = _weights_digest(self.body.module)
        parts = [self.arch, str(self.data.sz), repr(self.data.tfms.valid), self._body_digest, files_digest(ds.fnames)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def activations(self, split="train"):
        """(features, labels): the frozen body's output for every image of `split` ("train", "valid", "test").

        Computed once (un-augmented), then kept in memory and on disk under LESSONLIB_HOME/precompute,
        keyed by backbone, weights, image size and files. This is what precompute trains the head on.
        """
        key = self._activation_key(split)
        if key in self._activations:
            return self._activations[key]
        path = home() / "precompute" / f"{key}.pt"
        if path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            found = (saved["x"], saved["y"])
        else:
            device = default_device()
            training.prepare_model(self.body.module, device).eval()
            found = training.get_preds(self.body.module, self._splits()[split], device,
                                       desc=f"precompute {split}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save({"x": found[0], "y": found[1]}, tmp)
            os.replace(tmp, path)   # atomic: an interrupted run never leaves a half-written cache
        self._activations[key] = found
        return found

    # ------------------------------------------------------------ training
    def _group_lrs(self, lrs):
        groups = self.layer_groups
        arr = np.atleast_1d(np.asarray(lrs, dtype=float))
        if arr.size == 1:
            return [float(arr[0])] * len(groups)
        if arr.size != len(groups):
            raise ValueError(f"got {arr.size} learning rates but this model has {len(groups)} layer groups "
                             f"({', '.join(GROUP_NAMES)}): give one rate, or one per group")
        return [float(v) for v in arr]

    def _batches(self, split, shuffle=False):
        """Mini-batches for the model being trained: images, or cached activations with precompute."""
        if self.precompute:
            x, y = self.activations(split)
            return TensorBatches(x, y, self.data.bs, shuffle)
        if split == "train" and self._augment_per_batch():
            return DeviceAugmentedBatches(self.data.base_trn_dl, self.data.tfms.batch_augment, default_device())
        return {"train": self.data.trn_dl, "valid": self.data.val_dl, "test": self.data.test_dl}[split]

    def _augment_per_batch(self):
        if self.data.tfms.batch_augment is None:
            return False
        if self.augment_on_device is None:
            return default_device().type == "cuda"
        return bool(self.augment_on_device)

    def _micro_bs(self):
        """Images per piece of a mini-batch that goes through the body in training (None: all at once).

        The body takes the mini-batch in pieces, the head sees it whole (`training.backward_in_pieces`):
        a mini-batch of 64 at 224 px through EfficientNet-Lite0 with the body training needs 6.0 GB on a
        CPU all at once, 1.7 GB in pieces of 8, and runs 1.3x faster (benchmarks/micro_batches.py); a
        frozen body's forward pass runs 1.5x faster in pieces of 8.
        `learn.micro_bs`: "auto" (the default) uses pieces of 8 (`training.CPU_PIECE`) on a CPU when that
        gives exactly the whole mini-batch's update, i.e. when no BatchNorm layer of the body trains (a
        frozen body, or `learn.bn_freeze(True)`); a number forces pieces of that size (training BatchNorm
        layers of the body then see one piece at a time); None always sends whole mini-batches.
        """
        if self.precompute:
            return None
        if self.micro_bs == "auto":
            bn_trains = not self.bn_frozen and any(
                isinstance(m, nn.modules.batchnorm._BatchNorm) and any(p.requires_grad for p in m.parameters())
                for m in self.body.module.modules())
            return training.CPU_PIECE if not bn_trains and default_device().type == "cpu" else None
        if self.micro_bs is not None and (isinstance(self.micro_bs, bool) or not isinstance(self.micro_bs, int)
                                          or self.micro_bs < 1):
            raise ValueError(f"learn.micro_bs = {self.micro_bs!r}: use \"auto\", None, or a whole number of "
                             f"images such as 16")
        return self.micro_bs

    def fit(self, lrs, n_cycle, cycle_len=None, cycle_mult=1, wd=0.0, momentum=0.9):
        """Train with SGD (momentum 0.9) and print the table `[epoch, trn_loss, val_loss, accuracy, time]`.

        Args:
            lrs: one learning rate, or one per layer group ([early body, late body, head]).
            n_cycle: number of cycles; without `cycle_len` each cycle is one epoch at a constant rate.
            cycle_len: epochs per cycle of SGDR (cosine annealing, restarting each cycle).
            cycle_mult: each cycle is this many times longer than the previous one.
            wd: weight decay.

        Example:
            >>> learn.fit(1e-2, 3, cycle_len=1)                 # 3 epochs, the rate restarts each epoch
            >>> learn.fit([1e-4, 1e-3, 1e-2], 3, cycle_len=1, cycle_mult=2)   # 1 + 2 + 4 = 7 epochs
        """
        rates = self._group_lrs(lrs)
        if not (isinstance(n_cycle, int) and n_cycle >= 1):
            raise ValueError(f"n_cycle={n_cycle!r}: it must be a whole number of cycles, 1 or more")
        device, model, optimizer, names, train_mode = self._prepare(rates, wd, momentum)
        train_batches, valid_batches = self._batches("train", shuffle=True), self._batches("valid")
        scheduler = sgdr(optimizer, len(train_batches), cycle_len, cycle_mult)
        self.sched = Recorder(optimizer, names)
        table = training.EpochTable()
        try:
            training.fit(model, train_batches, valid_batches, self.loss_fn, optimizer,
                         sgdr_epochs(n_cycle, cycle_len, cycle_mult), device, scheduler, self.metrics,
                         train_mode=train_mode, on_batch=self.sched.on_batch, table=table,
                         to_preds=self._to_preds, micro_bs=self._micro_bs())
        finally:
            self.model.eval()
            done = table.frame()
            if len(done):
                done.insert(0, "fit", int(self.history["fit"].max()) + 1 if len(self.history) else 1)
                self.history = pd.concat([self.history, done], ignore_index=True)
            if any(p.requires_grad for g in self.layer_groups[:-1] for p in g.parameters()):
                self._forget_activations()   # the body trained: its cached activations are stale
        return None

    def _prepare(self, rates, wd=0.0, momentum=0.9):
        """(device, model to train, SGD optimizer with one group per trainable layer group, names, train mode)."""
        device = default_device()
        chosen = [(name, g, lr) for name, g, lr in zip(GROUP_NAMES, self.layer_groups, rates)
                  if any(p.requires_grad for p in g.parameters())]
        if self.precompute:
            chosen = [c for c in chosen if c[1] is self.head]
        param_groups = [{"params": [p for p in g.parameters() if p.requires_grad], "lr": lr} for _, g, lr in chosen]
        optimizer = torch.optim.SGD(param_groups, lr=rates[-1], momentum=momentum, weight_decay=wd)
        model = self.head if self.precompute else self.model
        training.prepare_model(model, device)
        train_mode = self.head.train if self.precompute else self._train_mode
        return device, model, optimizer, [name for name, _, _ in chosen], train_mode

    def lr_find(self, start_lr=1e-7, end_lr=10, num_it=100, wd=0.0):
        """Run the learning-rate finder; print its suggestions; return an `LRFinder`.

        The rate grows exponentially from `start_lr` to `end_lr` over `num_it` mini-batches
        (the training data is cycled if shorter). `start_lr` may hold one rate per layer group:
        their ratios are kept. Weights, BatchNorm statistics and random state are restored
        afterwards, exactly. `learn.sched.plot()` then shows loss against learning rate.

        Example:
            >>> lrf = learn.lr_find()
            >>> learn.sched.plot()
            >>> learn.fit(lrf.suggestion, 3)
        """
        rates = self._group_lrs(start_lr)
        device, model, optimizer, names, train_mode = self._prepare(rates, wd)
        result = find_lr(model, optimizer, self.loss_fn, self._batches("train", shuffle=True),
                         start_lr=rates[-1], end_lr=end_lr, num_it=num_it, device=device,
                         train_mode=train_mode, group_names=names, micro_bs=self._micro_bs())
        self.model.eval()
        self.sched = result.recorder
        result.report()
        return result

    def try_lr(self, lr, num_it=20):
        """Losses of `num_it` mini-batches trained at a constant `lr`, after which everything is restored."""
        device, model, optimizer, _, train_mode = self._prepare(self._group_lrs(lr))
        losses = losses_at(model, optimizer, self.loss_fn, self._batches("train", shuffle=True), lr, num_it,
                           device, train_mode, self._micro_bs())
        self.model.eval()
        return losses

    def compile(self, **kwargs):
        """Compile the body and the head with `torch.compile` (in place) for faster steps on a GPU.

        The first mini-batches of each new shape then take longer while they compile (a minute or more);
        weights, `save` and `load` are unchanged. On a CPU it works too, but compiling the whole network's
        training step took over 10 minutes on 2 cores (measured), longer than a lesson's training: on a
        CPU, `learn.head.compile()` at most. Keyword arguments go to `torch.compile`, e.g. mode="max-autotune".

        Example:
            >>> learn.compile()
            >>> learn.fit(1e-2, 3, cycle_len=1)
        """
        missing = compile_missing(default_device())
        if missing:
            raise RuntimeError(f"learn.compile() cannot work here: {missing}. Training runs without it.")
        if default_device().type == "cpu":
            print("learn.compile() on a CPU: the first mini-batches with the body training can take over 10 "
                  "minutes to compile on a laptop; it pays off on a GPU.")
        for module in (self.body.module, self.head):   # in place: same modules, same state_dict keys
            module.compile(**kwargs)
        return self

    # ------------------------------------------------------------ predictions
    def predict_with_targs(self, is_test=False):
        """(log-probabilities as a numpy array, targets) on the validation (or test) set."""
        split = "test" if is_test else "valid"
        if is_test and self.data.test_dl is None:
            raise ValueError("this data has no test set: pass test_name='test' to ImageClassifierData.from_paths")
        device = default_device()
        model = self.head if self.precompute else self.model
        training.prepare_model(model, device).eval()
        out, y = training.get_preds(model, self._batches(split), device)
        return self._to_preds(out).numpy(), y.numpy()

    def _to_preds(self, out):
        """Log-probabilities (one class per image) or tag probabilities (multi-label) from raw outputs."""
        return torch.sigmoid(out) if self.data.is_multi else F.log_softmax(out, dim=1)

    def predict(self, is_test=False):
        """One row per image of the validation (or test) set: log-probabilities of each class, as in the
        lesson, or for multi-label data the probability of each tag."""
        return self.predict_with_targs(is_test)[0]

    def TTA(self, n_aug=4, is_test=False):
        """Test-time augmentation: log-probabilities of the plain images and of `n_aug` augmented copies.

        Returns `(log_preds, y)` with `log_preds` of shape (n_aug + 1, images, classes), as in the
        lesson: average the probabilities with `probs = np.mean(np.exp(log_preds), 0)`. The augmented
        copies are shifted crops of a slightly larger image, mirrored as the training augmentations
        allow (`tfms.tta`); the body runs on them even when precompute is on. For
        multi-label data the slices hold tag probabilities: average them with `np.mean(log_preds, 0)`.

        Example:
            >>> log_preds, y = learn.TTA()
            >>> probs = np.mean(np.exp(log_preds), 0)
            >>> accuracy = (probs.argmax(1) == y).mean()
        """
        if not self.data.tfms.augments:
            raise ValueError("TTA needs training augmentations: build the data with tfms_from_model(..., "
                             "aug_tfms=transforms_side_on) or max_zoom > 1")
        if is_test and self.data.test_dl is None:
            raise ValueError("this data has no test set: pass test_name='test' to ImageClassifierData.from_paths")
        plain, y = self.predict_with_targs(is_test)
        ds = self.data.test_ds if is_test else self.data.val_ds
        augmented = ImageDataset(ds.fnames, ds.y, self.data.tfms.tta, ds.min_side)
        loader = self.data.loader(augmented)
        device = default_device()
        model = training.prepare_model(self.model, device).eval()
        runs = [plain]
        for i in range(n_aug):
            out, _ = training.get_preds(model, loader, device, desc=f"TTA {i + 1}/{n_aug}")
            runs.append(self._to_preds(out).numpy())
        return np.stack(runs), y

    # ------------------------------------------------------------ save, load
    def _model_path(self, name):
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise ValueError(f"name={name!r}: use a plain name such as '224_lastlayer'")
        return home() / "models" / f"{name}.pt"

    def save(self, name):
        """Write the whole model's weights to LESSONLIB_HOME/models/<name>.pt (atomically)."""
        path = self._model_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"model": self.model.state_dict(), "arch": self.arch, "classes": self.data.classes}, tmp)
        os.replace(tmp, path)
        print(f"saved to {path}")
        return path

    def load(self, name):
        """Read weights written by `save(name)` into this learner's model."""
        path = self._model_path(name)
        if not path.exists():
            saved = sorted(p.stem for p in path.parent.glob("*.pt")) if path.parent.exists() else []
            raise FileNotFoundError(f"no saved model {name!r} in {path.parent}; saved models: {saved}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["arch"] != self.arch or list(state["classes"]) != list(self.data.classes):
            raise ValueError(f"{name!r} holds a {state['arch']} model for classes {state['classes']}, "
                             f"but this learner is {self.arch} for {self.data.classes}")
        self.model.load_state_dict(state["model"])
        self._forget_activations()
        return self
