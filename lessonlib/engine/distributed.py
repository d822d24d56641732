"""Several processes, one model: what `learn.fit` does differently under `torchrun`.

Machinery, not lesson; a notebook or a single process never goes through any of it. Started by
`torchrun --nproc_per_node=N` (or on several machines with `torchrun --nnodes ...`), each process
trains the same model with torch's own `DistributedDataParallel` (NCCL between GPUs, Gloo between
CPUs):

- each process takes its share of every mini-batch: the global mini-batch of `bs` images is split
  into `bs / N` per process (`ShardedSampler`), the same images in the same mini-batches as one
  process would see with the same seed;
- BatchNorm layers that train see the statistics of the whole mini-batch (torch's `SyncBatchNorm` on
  GPUs; on CPUs, where torch has none, `CPUSyncBatchNorm` sums over processes with torch's
  differentiable `all_reduce`);
- gradients are averaged by DDP; with the body in pieces, every piece but the last runs under
  `no_sync`, so the gradients are exchanged once per mini-batch;
- losses are averaged and validation predictions gathered, so every process computes the same table;
- the first process (rank 0) alone prints, saves, downloads and writes caches while the others wait.
"""
import contextlib
import datetime
import shutil
import tempfile
import warnings

import torch
import torch.distributed as dist
from torch import nn

from lessonlib.engine.language import problem, say
from lessonlib.engine.networks import ConvNet
from lessonlib.engine.settings import torchrun

RENDEZVOUS_TIMEOUT = 120   # seconds to wait for the other processes of a run to start

__all__ = ["CPUSyncBatchNorm", "Run", "ShardedSampler", "agree", "all_mean", "barrier", "convert_batchnorm", "gather_ordered",
           "is_distributed", "most_processes", "one_process_only", "processes", "wrap"]


def is_distributed():
    """True when this process is one of several (torch.distributed is set up with more than one process)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier():
    """Wait for every process (nothing to wait for in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def one_process_only(policy, what):
    """Refuse `what` under several processes, with what to do instead."""
    if policy.world_size > 1:
        raise RuntimeError(problem("{what} runs in one process: run it in a notebook or without torchrun, then "
                                   "give the rate it suggests to the command line (--lr)", what=what))


class Run:
    """This process's place in the run: its policy, and what only the first process does."""

    def __init__(self, policy):
        self.policy = policy

    @property
    def is_first(self):
        return self.policy.rank == 0

    def local_bs(self, bs):
        """This process's share of a global mini-batch of `bs` images (what each process's loader yields)."""
        world = self.policy.world_size
        if bs % world:
            raise ValueError(problem("--bs {bs} cannot be split evenly over {world} processes: use a multiple of "
                                     "{world}", bs=bs, world=world))
        return bs // world

    def first(self, fn):
        """`fn()` on the first process while the others wait, then on the others (finding its result done)."""
        result = fn() if self.is_first else None
        barrier()
        return result if self.is_first else fn()

    def print(self, *args, **kwargs):
        if self.is_first:
            print(*args, **kwargs)

    def agree(self, what, value):
        """`agree(self.policy, what, value)`."""
        agree(self.policy, what, value)


def agree(policy, what, value):
    """Check that every process has the same `value` (a string) for `what`; a ValueError on each if not, before
    any training: processes that read different folders, or train for other epochs or at other rates, must not
    train one model (nor wait for each other forever)."""
    if policy.world_size == 1:
        return
    values = [None] * policy.world_size
    dist.all_gather_object(values, value)
    differ = [rank for rank, v in enumerate(values) if v != values[0]]
    if differ:
        raise ValueError(problem("the processes do not agree on {what}: process(es) {differ} differ from process 0 "
                                 "({theirs!r} against {ours!r}); every process must be started with the same "
                                 "arguments on the same data",
                                 what=what, differ=differ, theirs=str(values[differ[0]])[:120], ours=str(values[0])[:120]))


@contextlib.contextmanager
def processes(device=None):
    """Join the processes `torchrun` started, or form a group of one; yield this process's `Run`.

    Sets up torch.distributed from torchrun's environment (NCCL for CUDA, Gloo for the CPU) and puts each
    process on its own GPU (`cuda:LOCAL_RANK`). Without torchrun it forms a group of one process, so that
    one process walks the same mini-batches as several would with the same seed (the command line's runs
    then agree, whatever the number of processes). Only the first process shows warnings. The group is
    taken down at the end.
    """
    from lessonlib.engine.policy import resolve_policy

    started_here, store = not dist.is_initialized(), None
    if started_here:
        wants_cuda = device is None and torch.cuda.is_available() or str(device or "").startswith("cuda")
        if wants_cuda:
            local = int(torchrun().get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        backend = "nccl" if wants_cuda else "gloo"
        if int(torchrun().get("WORLD_SIZE", "1")) > 1:
            try:
                dist.init_process_group(backend, timeout=datetime.timedelta(seconds=RENDEZVOUS_TIMEOUT))
            except (RuntimeError, ValueError, OSError) as e:   # DistStoreError is a RuntimeError
                leftover = {k: v for k, v in torchrun().items() if k != "LOCAL_RANK"}
                raise RuntimeError(problem("waited {RENDEZVOUS_TIMEOUT} s for the other processes of this run and "
                                           "they did not come ({kind}). This shell has {leftover}: under "
                                           "torchrun that is expected; if you did not start this with torchrun, "
                                           "they are left over from an earlier run: unset them (unset RANK "
                                           "WORLD_SIZE MASTER_ADDR MASTER_PORT)",
                                           RENDEZVOUS_TIMEOUT=RENDEZVOUS_TIMEOUT, kind=type(e).__name__, leftover=leftover)) \
                    from None
        else:
            store = tempfile.mkdtemp(prefix="lessonlib-group-")
            dist.init_process_group(backend, init_method=f"file://{store}/rendezvous", rank=0, world_size=1)
    run = Run(resolve_policy(device))
    failed = False
    try:
        with warnings.catch_warnings():
            if not run.is_first:
                warnings.simplefilter("ignore")   # the first process says it once
            yield run
    except BaseException:
        failed = True
        raise
    finally:
        # After a failure the other processes may be gone already, and taking the group down would wait for them
        # (seen with torch 2.6's Gloo: the first process hung there after the second had exited): leave it to exit.
        if started_here and not (failed and run.policy.world_size > 1):
            barrier()   # all arrive before any leaves: Gloo's teardown can hang when one process is already gone
            dist.destroy_process_group()
        if store is not None:   # the one-process group's rendezvous folder: nothing left in the temporary folder
            shutil.rmtree(store, ignore_errors=True)


class ShardedSampler(torch.utils.data.Sampler):
    """This process's share of each global mini-batch, in an order that depends only on the seed and the epoch.

    `bs` is one process's share; the global mini-batch is `bs * world` items. Every process draws the same
    order of all `n` items (a permutation seeded with `seed + epoch` when shuffling, the epoch counted by the
    sampler itself; else 0..n-1); global mini-batch b is items [b*bs*world, (b+1)*bs*world) of it, and process r
    takes the r-th slice of `bs`. So one process (world 1, the same seed) sees exactly the same global
    mini-batches. A last, partial global mini-batch is split evenly while training (at most `world - 1` items
    are left out, and all of it when each process would get fewer than 2); for evaluation every item is
    kept, the last global mini-batch shared as evenly as it goes (no process's share is empty), and
    `gather_ordered` puts the results back in order.

    So that no process is ever left without a mini-batch, `n` items are refused (ValueError, when the data is
    built) where they cannot go round: training needs 2 per process, evaluation 1; the message says how many
    processes the data allows (`most_processes`).
    """

    def __init__(self, n, bs, rank, world, shuffle=True, seed=42):
        if n < world * (2 if shuffle else 1):
            most = most_processes(n, shuffle)
            raise ValueError(problem("{n} images cannot be shared by {world} processes: each process needs at least "
                                     "{need} of them {purpose}, so this data allows at most {most} (torchrun "
                                     "--nproc_per_node {most}); start fewer processes, or use more images",
                                     n=n, world=world, need=2 if shuffle else 1, most=most,
                                     purpose=say("to train on") if shuffle else say("to evaluate")))
        self.n, self.bs, self.rank, self.world, self.shuffle, self.seed = n, bs, rank, world, shuffle, seed
        self.epoch = 0

    def _slices(self):
        """[(start, stop) of this process's slice] per global mini-batch, in positions of the order."""
        out, step = [], self.bs * self.world
        for start in range(0, self.n, step):
            size = min(step, self.n - start)
            if self.shuffle:   # training: equal shares of `local` items, the rest of a partial mini-batch left out
                local = self.bs if size == step else size // self.world
                if local < 2:
                    break
                lo, hi = self.rank * local, (self.rank + 1) * local
            else:              # evaluation: every item, the first `extra` processes one more than the others
                local, extra = divmod(size, self.world)
                lo = self.rank * local + min(self.rank, extra)
                hi = lo + local + (self.rank < extra)
            out.append((start + lo, start + hi))
        return out

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        self.epoch += 1
        for lo, hi in self._slices():
            yield from order[lo:hi].tolist()

    def __len__(self):
        return sum(hi - lo for lo, hi in self._slices())


def most_processes(n, shuffle=True):
    """How many processes `n` items can be shared by: each needs 2 of them to train on (a mini-batch of one would
    break BatchNorm), 1 to evaluate."""
    return n // 2 if shuffle else n


def all_mean(value, count):
    """The mean of `value` (a mean over `count` items in this process) over every process's items."""
    if not is_distributed():
        return value
    both = torch.tensor([value * count, float(count)], dtype=torch.float64)
    dist.all_reduce(both)
    return float(both[0] / both[1])


def gather_ordered(tensor, sampler):
    """Rows each process computed for its `sampler` (a ShardedSampler without shuffling), all of them, in order."""
    world = sampler.world
    if world == 1:
        return tensor
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(tensor)]))
    biggest = int(max(s.item() for s in sizes))
    padded = torch.zeros((biggest, *tensor.shape[1:]), dtype=tensor.dtype)
    padded[:len(tensor)] = tensor
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    rows = torch.empty((sampler.n, *tensor.shape[1:]), dtype=tensor.dtype)
    for r, part in enumerate(parts):   # each process's rows went to its slices, in order
        mine = ShardedSampler(sampler.n, sampler.bs, r, world, shuffle=False)
        positions = [i for lo, hi in mine._slices() for i in range(lo, hi)]
        rows[positions] = part[:len(positions)]
    return rows


class _AllReduceSum(torch.autograd.Function):
    """The sum over processes; its gradient is the sum of every process's gradient (each loss saw the sum)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the whole mini-batch over every process, on CPUs.

    torch's own `SyncBatchNorm` needs GPUs; this sums count, sum and sum of squares over the processes with an
    `all_reduce` that carries gradients back through the sum (as torch's own does). In a single process, or in
    eval mode, it is exactly `BatchNorm`.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(problem("expected at least 2D input (got {dim}D input)", dim=input.dim()))

    def forward(self, x):
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = stats[channels:2 * channels] / total - mean * mean
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
            self.running_var.mul_(1 - momentum).add_(var.detach() * float(total / (total - 1)) * momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def convert_batchnorm(module, device):
    """`module` with its BatchNorm layers synchronised over the processes (same parameters and buffers)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        new = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child, device))
    return module


def wrap(model, policy):
    """`model` for training in this process: unchanged alone; under several processes, the parts that train in
    torch's `DistributedDataParallel` (a ConvNet keeps its two parts, so that the body can go in pieces)."""
    if policy.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [policy.device.index] if policy.device.type == "cuda" else None

    def ddp(part):
        trains = any(p.requires_grad for p in part.parameters())
        return DistributedDataParallel(part, device_ids=ids) if trains else part
    if isinstance(model, ConvNet):
        wrapped = ConvNet(ddp(model.body), ddp(model.head))
        wrapped.bn_frozen = model.bn_frozen
        return wrapped
    return ddp(model)
