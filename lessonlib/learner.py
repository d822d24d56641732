"""`ConvLearner`: a pretrained body, a new head, and the lesson's training verbs.

    learn = ConvLearner.pretrained("resnet34", data, precompute=True)
    learn.fit(1e-2, 1)            # trains the head on cached activations of the frozen body
    learn.precompute = False      # full forward passes again, so augmentation takes effect
    learn.unfreeze()              # every layer group trains
    learn.fit([1e-4, 1e-3, 1e-2], 3, cycle_len=1)

The machinery lives elsewhere: the cache of activations in `lessonlib.precompute`, how the hardware
is used in `lessonlib.engine.policy`, the loop itself in `lessonlib.training`.
"""
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from lessonlib import export as exports
from lessonlib import models, training
from lessonlib.data import data_signature
from lessonlib.engine import checkpoints, distributed
from lessonlib.engine.language import problem, say
from lessonlib.engine.tables import Table
from lessonlib.engine.policy import resolve_policy
from lessonlib.engine.weights import create_body
from lessonlib.lr_finder import Sweep, find_lr, losses_at
from lessonlib.metrics import accuracy, f2
from lessonlib.precompute import ActivationCache, TensorBatches
from lessonlib.recorder import Recorder, group_label
from lessonlib.schedules import sgdr, sgdr_epochs

__all__ = ["ConvLearner", "GROUP_NAMES", "body_piece_for", "describe_start", "layer_groups_table"]

GROUP_NAMES = ["early body", "late body", "head"]


def body_piece_for(policy, model, body_piece="auto"):
    """Images per piece of a mini-batch through `model.body` in training (None: the whole mini-batch).

    `body_piece` is `learn.body_piece`: "auto" takes the policy's `body_piece` only where pieces give exactly the
    whole mini-batch's update, i.e. when no BatchNorm layer of the body trains (a frozen body, or
    `bn_freeze(True)`), and then only for images large enough for pieces to be faster (`policy.piece_for`); a
    number forces pieces of that size at every image size (BatchNorm layers that train then see one piece at a
    time); None sends whole mini-batches. benchmarks/body_pieces.py measures when pieces are faster, micro_batches.py what
    memory they save.
    """
    if body_piece == "auto":
        bn_trains = not model.bn_frozen and any(
            any(p.requires_grad for p in m.parameters()) for m in models.batchnorm_layers(model.body))
        return None if bn_trains else policy.body_piece
    if body_piece is not None and (isinstance(body_piece, bool) or not isinstance(body_piece, int) or body_piece < 1):
        raise ValueError(problem('learn.body_piece = {body_piece!r}: use "auto", None, or a whole number of images '
                                 "such as 16", body_piece=body_piece))
    return body_piece


def layer_groups_table(learn, lr):
    """A table of `learn`'s layer groups: how many parameters each holds, whether they all train, and the learning
    rate `lr` gives it (one per group). Code reads the English columns (`table.trains`); people read their words."""
    table = pd.DataFrame({"layer group": GROUP_NAMES,
                          "parameters": [sum(p.numel() for p in g.parameters()) for g in learn.layer_groups],
                          "trains": [all(p.requires_grad for p in g.parameters()) for g in learn.layer_groups],
                          "learning_rate": np.broadcast_to(np.asarray(lr, dtype=float), (len(GROUP_NAMES),))})
    return Table(table, labels={"layer group": say("layer group"), "parameters": say("parameters"),
                                "trains": say("trains"), "learning_rate": say("learning rate")},
                 cells={"layer group": {name: group_label(name) for name in GROUP_NAMES},
                        "trains": {True: say("True"), False: say("False")}})


def describe_start(lesson, loaded):
    """One line for people: whether lesson `lesson`'s saved weights were `loaded`, or the head is trained first."""
    if loaded:
        return say("starting from lesson {lesson}'s weights", lesson=lesson)
    return say("lesson {lesson}'s weights are not here (or are for another network): training the head first, "
               "with precompute", lesson=lesson)


class ConvLearner:
    """A pretrained convolutional body with a new head for `data`'s classes.

    Make one with `ConvLearner.pretrained(arch, data, precompute=False)`. Attributes: `model` (a
    `models.ConvNet`: `model.body`, `model.head`), `history` (every epoch trained so far), `sched` (learning
    rates and losses per mini-batch of the latest fit), `policy` (how it uses the hardware).
    """

    def __init__(self, data, model, metrics=None, policy=None):
        self.data, self.model, self.policy = data, model, policy or data.policy
        self._agree(())   # under several processes: the same data everywhere, before anything is computed
        if data.is_multi:   # several tags per image: one independent yes/no (sigmoid) per tag
            self.objective = training.Objective(nn.BCEWithLogitsLoss(), tuple(metrics or [f2]), torch.sigmoid)
            # Start each tag's output at its frequency in the training set instead of 50%: most tags
            # are absent from most images, and learning that first would waste the first epochs.
            freq = torch.as_tensor(data.trn_y.mean(0)).clamp(1e-3, 1 - 1e-3)
            with torch.no_grad():
                model.head[-1].bias.copy_(torch.log(freq / (1 - freq)))
        else:               # one class per image: softmax over the classes
            self.objective = training.Objective(nn.CrossEntropyLoss(), tuple(metrics or [accuracy]))
        self.history, self.sched = training.history_table(pd.DataFrame()), None
        self.body_piece = "auto"   # images per piece of a mini-batch through the body (see body_piece_for)
        self._precompute, self._cache, self._advised_precompute = False, ActivationCache(), False
        self.model.eval()
        self.freeze()

    @classmethod
    def pretrained(cls, arch, data, precompute=False, xtra_fc=512, ps=(0.25, 0.5), metrics=None, weights=None,
                   device=None):
        """A learner whose body holds ImageNet weights for `arch`, frozen, and whose head is new.

        Args:
            arch: "resnet34", "resnet50", "efficientnet_lite0", or a torchvision function. Without
                torchvision's weights at hand, the packaged ImageNet efficientnet_lite0 is used instead,
                and one line says so (see `lessonlib.engine.weights`).
            data: an `ImageClassifierData`.
            precompute: compute the frozen body's activations once and train the head on them.
            xtra_fc: width of the head's hidden layer; ps: its two dropout probabilities.
            metrics: functions (preds, y) -> float shown per epoch (default: accuracy, or f2 for multi-label data).
            weights: "imagenet"; "random" times the network where its weights cannot be had, and says so.
            device: "cpu", "cuda:1", ... or a `Policy` (default: the data's).

        Example:
            >>> learn = ConvLearner.pretrained("resnet34", data, precompute=True)
            >>> learn.fit(1e-2, 1)
        """
        body = create_body(arch, weights)
        model = models.ConvNet(body, models.create_head(body.n_features, data.c, xtra_fc, ps))
        learn = cls(data, model, metrics, resolve_policy(device) if device is not None else None)
        learn._set_precompute(precompute, advise=False)   # the lesson's recipe: precompute first, augment later
        return learn

    body = property(lambda self: self.model.body, doc="The pretrained body (`models.Body`).")
    head = property(lambda self: self.model.head, doc="The new head.")
    arch = property(lambda self: self.model.body.arch, doc="The network's name.")
    layer_groups = property(lambda self: self.model.layer_groups, doc="[early body, late body, head].")

    def __repr__(self):
        frozen = sum(not any(p.requires_grad for p in g.parameters()) for g in self.layer_groups)
        return (f"ConvLearner({self.arch}, {self.data.c} classes, precompute={self.precompute}, "
                f"{frozen} of 3 layer groups frozen, on {self.policy.device})")

    def set_data(self, data):
        """Train on other data with the same classes, e.g. the same images at a larger size."""
        if list(data.classes) != list(self.data.classes):
            raise ValueError(problem("set_data needs the same classes: {classes} is not {classes2}",
                                     classes=data.classes, classes2=self.data.classes))
        self.data = data
        self._cache.forget()
        if self.precompute:
            self.precompute = True   # compute the activations of the new images

    # ------------------------------------------------------------ layer groups, freezing
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
            warnings.warn(problem("unfreeze() switched precompute off: the body now trains, so its cached "
                                  "activations would be stale."), stacklevel=2)
            self.precompute = False
        self.freeze_to(0)

    def bn_freeze(self, flag=True):
        """Keep the body's BatchNorm layers in eval mode (running mean/var fixed) while training."""
        self.model.bn_frozen = bool(flag)

    def _body_trains(self):
        return any(p.requires_grad for g in self.layer_groups[:-1] for p in g.parameters())

    # ------------------------------------------------------------ precompute (the cache: lessonlib.precompute)
    @property
    def precompute(self):
        """True: the head trains on the frozen body's cached activations (no augmentation)."""
        return self._precompute

    @precompute.setter
    def precompute(self, flag):
        self._set_precompute(flag, advise=True)

    def _set_precompute(self, flag, advise, stacklevel=3):
        """Switch precompute; with `advise`, say once per learner that augmentation stops while it is on (not
        when `pretrained(..., precompute=True)` starts the lesson's recipe: precompute first, augmentation after)."""
        if flag and self._body_trains():
            raise ValueError(problem("precompute=True needs a frozen body: call learn.freeze() first"))
        if flag and advise and self.data.tfms.augments and not self._advised_precompute:
            warnings.warn(problem("precompute is on, so data augmentation does nothing: the activations are "
                                  "computed once from un-augmented images. Set learn.precompute = False to train "
                                  "with augmentation."),
                          stacklevel=stacklevel)
            self._advised_precompute = True
        self._precompute = bool(flag)
        if flag:
            for split in ("train", "valid", "test") if self.data.test_dl is not None else ("train", "valid"):
                self.activations(split)

    def activations(self, split="train"):
        """(features, labels): the frozen body's output for every image of `split` ("train", "valid", "test").

        Computed once (un-augmented) and kept; `lessonlib.precompute` says where and for how long.
        """
        return self._cache.get(self.body, self.data, split, self.policy)

    # ------------------------------------------------------------ training
    def _batches(self, split, shuffle=False):
        """Mini-batches for the model being trained: images, or cached activations with precompute."""
        if self.precompute:
            x, y = self.activations(split)
            sampler = None
            if self.policy.sharded:   # each process takes its share of each mini-batch
                sampler = distributed.ShardedSampler(len(x), self.data.bs, self.policy.rank, self.policy.world_size,
                                                     shuffle, seed=torch.initial_seed() % 2**31)
            return TensorBatches(x, y, self.data.bs, shuffle, sampler)
        if split == "train" and shuffle:
            return self.data.augmented_batches()
        return self.data.split_loader(split)

    def _setup(self, rates, wd=0.0, momentum=0.9):
        """(model to train, SGD with one group per trainable layer group, group names, policy for this run)."""
        chosen = [(name, g, lr) for name, g, lr in zip(GROUP_NAMES, self.layer_groups, rates)
                  if any(p.requires_grad for p in g.parameters()) and (not self.precompute or g is self.head)]
        param_groups = [{"params": [p for p in g.parameters() if p.requires_grad], "lr": lr} for _, g, lr in chosen]
        optimizer = torch.optim.SGD(param_groups, lr=rates[-1], momentum=momentum, weight_decay=wd)
        if self.policy.world_size > 1:   # BatchNorm over the whole mini-batch, every process's share
            distributed.convert_batchnorm(self.model, self.policy.device)
        model = self.policy.prepare(self.head if self.precompute else self.model)
        model = distributed.wrap(model, self.policy)
        return model, optimizer, [name for name, _, _ in chosen], self._run_policy()

    def _run_policy(self):
        """The policy of this run's steps: pieces of the body from `learn.body_piece` (`body_piece_for`); the head
        alone (precompute) in float32, as `models.head_forward` runs it."""
        if self.precompute:
            return self.policy.but(body_piece=None, precision="fp32")
        piece = body_piece_for(self.policy, self.model, self.body_piece)
        if self.body_piece == "auto":
            return self.policy.but(body_piece=piece)
        return self.policy.but(body_piece=piece, body_piece_from_px=0)   # a number the student chose: every size

    def fit(self, lrs, n_cycle, cycle_len=None, cycle_mult=1, wd=0.0, momentum=0.9):
        """Train with SGD (momentum 0.9) and print the table `[epoch, trn_loss, val_loss, accuracy, time]`.

        Args:
            lrs: one learning rate, or one per layer group ([early body, late body, head]).
            n_cycle: number of cycles; without `cycle_len` each cycle is one epoch at a constant rate.
            cycle_len: epochs per cycle of SGDR (cosine annealing, restarting each cycle).
            cycle_mult: each cycle is this many times longer than the previous one.
            wd: weight decay.

        If the loss becomes infinite or NaN, training stops with a message and the weights from before that
        mini-batch, so a smaller rate can be tried at once.

        Example:
            >>> learn.fit(1e-2, 3, cycle_len=1)                 # 3 epochs, the rate restarts each epoch
            >>> learn.fit([1e-4, 1e-3, 1e-2], 3, cycle_len=1, cycle_mult=2)   # 1 + 2 + 4 = 7 epochs
        """
        rates = training.group_rates(self.layer_groups, lrs)            # one rate per layer group
        epochs = sgdr_epochs(n_cycle, cycle_len, cycle_mult)
        self._agree((rates, epochs, cycle_len, cycle_mult, wd, momentum, self.precompute))
        model, optimizer, names, policy = self._setup(rates, wd, momentum)   # SGD, one group per layer group
        train_batches = self._batches("train", shuffle=True)
        schedule = sgdr(optimizer, len(train_batches), cycle_len, cycle_mult)   # stepped after each mini-batch
        self.sched = Recorder(optimizer, names)                                # records each mini-batch
        table = training.EpochTable(show=policy.rank == 0)
        try:
            training.fit(model, (train_batches, self._batches("valid")), self.objective, optimizer, epochs,
                         device=policy, recorder=self.sched, table=table, schedule=schedule)
        finally:
            self._trained(table)

    def _agree(self, settings):
        """Under several processes (torchrun), before anything is computed or trained: every process has the same
        data and `settings`, or each stops with a ValueError. (One on other photos, or with more epochs, would
        otherwise train one model wrongly, or leave the others waiting for it forever.)"""
        if self.policy.world_size > 1:
            distributed.agree(self.policy, "the data and the training settings",
                              f"{data_signature(self.data)}|{settings!r}")

    def _trained(self, table):
        """After `fit`, finished or not: the epochs it finished join `learn.history`; stale activations go."""
        self.model.eval()
        done = table.frame()
        if len(done):
            done.insert(0, "fit", int(self.history["fit"].max()) + 1 if len(self.history) else 1)
            self.history = training.history_table(pd.concat([self.history, done], ignore_index=True))
        if self._body_trains():
            self._cache.forget()   # the body trained: its cached activations are stale

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
        distributed.one_process_only(self.policy, "learn.lr_find()")
        rates = training.group_rates(self.layer_groups, start_lr)
        model, optimizer, names, policy = self._setup(rates, wd)
        result = find_lr(model, optimizer, self.objective.loss_fn, self._batches("train", shuffle=True),
                         device=policy, sweep=Sweep(rates[-1], end_lr, num_it), group_names=names)
        self.model.eval()
        self.sched = result.recorder
        result.report()
        return result

    def try_lr(self, lr, num_it=20):
        """Losses of `num_it` mini-batches trained at a constant `lr`, after which everything is restored."""
        distributed.one_process_only(self.policy, "learn.try_lr()")
        model, optimizer, _, policy = self._setup(training.group_rates(self.layer_groups, lr))
        losses = losses_at(model, optimizer, self.objective.loss_fn, self._batches("train", shuffle=True), lr,
                           num_it, device=policy)
        self.model.eval()
        return losses

    def compile(self, **kwargs):
        """Compile the body and the head with `torch.compile` (in place) for faster steps on a GPU.

        The first mini-batches of each new shape then take longer while they compile; weights, `save` and `load`
        are unchanged. On a CPU, compiling the whole network's training step takes longer than a lesson's
        training. Keyword arguments go to `torch.compile`, e.g. mode="max-autotune".

        Example:
            >>> learn.compile()
            >>> learn.fit(1e-2, 3, cycle_len=1)
        """
        if self.policy.compile_missing:
            raise RuntimeError(problem("learn.compile() cannot work here: {compile_missing}. Training runs without "
                                       "it.", compile_missing=self.policy.compile_missing))
        if self.policy.device.type == "cpu":
            warnings.warn(problem("learn.compile() on a CPU: compiling the training step of the whole network can "
                                  "take longer than the lesson's training; it pays off on a GPU."), stacklevel=2)
        for module in (self.body, self.head):   # in place: same modules, same state_dict keys
            module.compile(**kwargs)
        return self

    # ------------------------------------------------------------ predictions
    def predict_with_targs(self, is_test=False):
        """(log-probabilities as a numpy array, targets) on the validation (or test) set."""
        split = "test" if is_test else "valid"
        self.data.split_loader(split)   # a clear error when there is no test set
        model = self.policy.prepare(self.head if self.precompute else self.model).eval()
        out, y = training.get_preds(model, self._batches(split), self._run_policy())
        return self.objective.to_preds(out).numpy(), y.numpy()

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
            raise ValueError(problem("TTA needs training augmentations: build the data with tfms_from_model(..., "
                                     "aug_tfms=transforms_side_on) or max_zoom > 1"))
        plain, y = self.predict_with_targs(is_test)
        ds = self.data.test_ds if is_test else self.data.val_ds
        loader = self.data.loader(ds.with_transform(self.data.tfms.tta))
        model = self.policy.prepare(self.model).eval()
        runs = [plain]
        for i in range(n_aug):
            out, _ = training.get_preds(model, loader, self.policy, desc=say("TTA {i}/{n}", i=i + 1, n=n_aug))
            runs.append(self.objective.to_preds(out).numpy())
        return np.stack(runs), y

    # ------------------------------------------------------------ save, load
    def save(self, name):
        """Write the model's weights to LESSONLIB_HOME/models/<name>.pt; returns the path (see `lessonlib.engine.checkpoints`)."""
        return checkpoints.save(self.model, self.arch, self.data.classes, name, self.policy)

    def load(self, name):
        """Read weights written by `save(name)` into this learner's model."""
        checkpoints.load(self.model, self.arch, self.data.classes, name)
        self._cache.forget()
        return self

    def export(self, path=None):
        """Write the model, its classes and transforms to one safe file (default LESSONLIB_HOME/exports/export.pt)
        that `lessonlib.load_learner(path)` reads anywhere, without the data; prints where and its size."""
        return exports.export(self, path)
