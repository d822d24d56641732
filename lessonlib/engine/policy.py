"""How a run uses its hardware, decided once: the device, precision, memory format, loaders, caches, pieces.

Machinery, not lesson. `resolve_policy(device=None)` looks at the hardware (and at any choice the
user made) once and returns a small frozen `Policy`; the data, the learner and the training loop
receive it and never look at the hardware themselves. `print(policy)` says what was chosen and why:

    >>> from lessonlib.engine.policy import resolve_policy
    >>> print(resolve_policy())            # what lessonlib does for speed on this machine
    >>> data = ImageClassifierData.from_paths(PATH, tfms, device="cpu")   # the CPU even with a GPU present

Nothing here changes what is computed, only how fast and in how much memory: the numbers it
rests on are measured in `benchmarks/` (see the README), not here.
"""
import contextlib
import hashlib
import os
import platform
import shutil
import time
from dataclasses import dataclass, field, replace

import torch

from lessonlib.engine.language import problem, say, shown_width
from lessonlib.engine.runtime import default_device
from lessonlib.engine.settings import PRECISIONS, settings

__all__ = ["CPU_BODY_PIECE", "CPU_PIECES_FROM_PX", "OutOfMemory", "PRECISIONS", "Policy", "cgroup_cpus", "cgroup_memory_mb", "cpu_bf16",
           "cpu_workers", "is_out_of_memory", "measured_cpu_bf16", "memory_explained", "resolve_policy"]

# Why a CPU back-propagates through the body in float32 even where it computes bfloat16 natively: a fine-tuning
# step (EfficientNet-Lite0, 224 px, mini-batches of 64, the body in pieces of 8) ran at 0.86x float32's speed in
# bf16 on an AMD EPYC with AVX-512 BF16 and at 0.85x on an Intel Xeon with AMX (2 cores each), while the body's
# forward pass without gradients ran 2.02x and 1.54x faster in bf16 (benchmarks/measured/2026-11-29-cpu-amx/).
# benchmarks/precision.py measures both stages on any machine.

# Images per piece of a mini-batch through the body on a CPU, and, per precision and stage, the smallest image
# side from which pieces are used. benchmarks/body_pieces.py measured it (EfficientNet-Lite0, mini-batches of
# 64, 2 cores with AMX; benchmarks/measured/2026-12-06-cpu-amx/body_pieces.md): at 32, 64 and 96 px whole
# mini-batches were 1.6-4.5x faster in every stage and precision; at 128 px pieces were faster only for float32
# without back-propagation (1.4-1.7x; float32 fine-tuning 0.8-0.9x, bfloat16 0.3-0.7x); at 224 px pieces were
# faster or even everywhere (1.2-2.5x; bfloat16 fine-tuning 0.95x, kept for its memory: a third of the whole
# mini-batch's). "forward": no gradient through the body (precompute, a frozen body, predictions);
# "backprop": the body trains.
CPU_BODY_PIECE = 8
CPU_PIECES_FROM_PX = {("fp32", "forward"): 128, ("fp32", "backprop"): 224,
                      ("bf16", "forward"): 224, ("bf16", "backprop"): 224}


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_cpus(root="/sys/fs/cgroup"):
    """The CPU quota of this container (cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`), in cores; None if none."""
    v2 = _read(f"{root}/cpu.max")
    quota, period = (v2.split() + ["100000"])[:2] if v2 else (_read(f"{root}/cpu/cpu.cfs_quota_us"),
                                                            _read(f"{root}/cpu/cpu.cfs_period_us"))
    if not quota or quota in ("max", "-1") or not period:
        return None
    return max(1, int(int(quota) / int(period)))


def cgroup_memory_mb(root="/sys/fs/cgroup"):
    """The memory limit of this container (cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`) in MB; None if none."""
    value = _read(f"{root}/memory.max") or _read(f"{root}/memory/memory.limit_in_bytes")
    if not value or value == "max" or int(value) >= 2**60:   # v1 writes "no limit" as a huge number
        return None
    return int(value) // 2**20


def cpu_workers(root="/sys/fs/cgroup"):
    """CPU cores this process may use: its affinity mask and its container's CPU quota, not the host's count."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # macOS, Windows
        cores = os.cpu_count() or 1
    quota = cgroup_cpus(root)
    return min(cores, quota) if quota else cores


def _compile_missing(device):
    """Why `torch.compile` cannot build code for `device` here (no C++ compiler, no Triton), or None."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "torch.compile needs Triton for CUDA (pip install triton)"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++", "cl")):
        return "torch.compile needs a C++ compiler on a CPU (g++ or clang++), and none was found"
    return None


@dataclass(frozen=True)
class Policy:
    """How this run uses its hardware. Make one with `resolve_policy()`; change a field with `policy.but(...)`.

    Fields: `device`; `precision` ("bf16", "fp16" or "fp32": the autocast type of forward passes without
    gradients through the body: precompute, a frozen body, evaluation, predictions, TTA); `backprop_precision`
    (the autocast type where the body back-propagates: fine-tuning; `for_training` picks between the two);
    `channels_last` (memory format of images and conv weights); `num_workers` and `pin_memory` (the
    DataLoaders); `image_cache_mb` (decoded, resized images kept in memory up to this size; 0: never);
    `augment_on_device` (augment whole batches on the device instead of image by image);
    `body_piece` (images per piece of a mini-batch through the body where that gives the same update;
    None: whole mini-batches) and `body_piece_from_px` (pieces only for images at least this many pixels on a
    side, smaller ones go whole; None: the measured table `CPU_PIECES_FROM_PX`, by precision and stage; 0: every
    size; `piece_for` decides per batch); `compile_missing` (why `learn.compile()` cannot work here, or None);
    `cudnn_benchmark`; `threads` (PyTorch's CPU threads: the cores this process may use, container limits
    included); `rank`, `world_size` and `sharded` (this process's place among those `torchrun`
    started, whose mini-batches are cut into shares: `lessonlib.engine.distributed`); `reasons` (why, one line per
    field that needs one).
    """
    device: torch.device
    precision: str = "fp32"
    backprop_precision: str = "fp32"
    channels_last: bool = False
    num_workers: int = 0
    pin_memory: bool = False
    image_cache_mb: float = 0
    augment_on_device: bool = False
    body_piece: int = None
    body_piece_from_px: int = None
    compile_missing: str = None
    cudnn_benchmark: bool = False
    threads: int = 1
    rank: int = 0
    world_size: int = 1
    sharded: bool = False
    reasons: tuple = field(default=(), compare=False)

    def but(self, **changes):
        """A copy with some fields changed, e.g. `policy.but(body_piece=None)`."""
        return replace(self, **changes)

    # ------------------------------------------------------------ what the training loop asks of it
    def for_training(self, model):
        """The policy of steps that train `model`: `backprop_precision` where its body (a learner's `ConvNet`; any
        other model: all of it) has weights that train, else this one (a frozen body runs forward only)."""
        model = getattr(model, "module", model)   # under several processes, the DDP wrapper's model
        body = getattr(model, "body", model)
        if self.backprop_precision == self.precision or not any(p.requires_grad for p in body.parameters()):
            return self
        return self.but(precision=self.backprop_precision)

    def autocast(self):
        """The mixed-precision context for forward passes (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @property
    def rounding(self):
        """How far apart, relatively, two forward passes over the same numbers may come out in this precision:
        float32 keeps about 7 significant digits, float16 about 3, bfloat16 between 2 and 3 (lessons compare
        two ways of computing the same result within this)."""
        return ROUNDING[self.precision]

    def to_device(self, x):
        """Copy a batch to the device without blocking; images go channels-last where that is faster."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def piece_for(self, x, backprop=False):
        """Images per piece of the body for the image batch `x` (None: the whole batch): `body_piece`, where the
        images are at least `body_piece_from_px` pixels on a side (by default the measured `CPU_PIECES_FROM_PX`
        for this precision, and `backprop`: whether the body trains on this batch)."""
        if not self.body_piece or x.dim() != 4:
            return None
        from_px = self.body_piece_from_px
        if from_px is None:
            from_px = CPU_PIECES_FROM_PX[("bf16" if self.precision == "bf16" else "fp32",
                                          "backprop" if backprop else "forward")]
        return self.body_piece if min(x.shape[-2:]) >= from_px else None

    def prepare(self, model):
        """Move `model` to the device, its conv weights channels-last where that is faster; returns it."""
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark   # fixed image sizes: cuDNN times its kernels once
        if torch.get_num_threads() > self.threads:
            torch.set_num_threads(self.threads)   # more threads than cores the container gives only slows down
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def __str__(self):
        precision = (self.precision if self.backprop_precision == self.precision else
                     say("{forward} forward only (precompute, frozen body, predictions), {backprop} where the body "
                         "trains", forward=self.precision, backprop=self.backprop_precision))
        rows = [(say("device"), str(self.device)), (say("precision"), precision),
                ("channels_last", self.channels_last), ("num_workers", self.num_workers),
                ("pin_memory", self.pin_memory), ("image_cache_mb", self.image_cache_mb),
                ("augment_on_device", self.augment_on_device), ("body_piece", self.body_piece),
                (say("compile"), self.compile_missing or say("available")), ("cudnn_benchmark", self.cudnn_benchmark),
                (say("threads"), self.threads),
                (say("processes"), say("{rank} of {world_size}", rank=self.rank + 1, world_size=self.world_size))]
        rows += [(say("why"), reason) for reason in self.reasons]
        shown = lambda value: (say("True") if value else say("False")) if isinstance(value, bool) else value
        lines = [f"{' ' * (17 - shown_width(name))}{name}: {shown(value)}" for name, value in rows]
        return "\n".join([say("Policy:"), *lines])


ROUNDING = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}   # a few roundings of each, accumulated over a network


def cpu_bf16():
    """(True if this CPU computes bfloat16 natively, why): what torch reports of the processor.

    Native bfloat16 means AVX-512 BF16 (recent AMD and Intel server chips, recent AMD laptops) or AMX (Intel
    server chips); elsewhere (most Intel laptops, older chips) bfloat16 is emulated and slower than float32.
    Where torch cannot tell (an older torch, another kind of processor), a measurement decides, once per
    machine (`measured_cpu_bf16`).
    """
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if platform.machine().lower() in ("x86_64", "amd64") and all(checks):
        avx512_bf16, amx = (bool(check()) for check in checks)
        if avx512_bf16 or amx:
            return True, say("this CPU has {feature}: native bfloat16", feature="AMX" if amx else "AVX-512 BF16")
        return False, say("this CPU has no native bfloat16 (torch sees {capability}, without AVX-512 BF16 or AMX), "
                          "where bfloat16 is slower than float32",
                          capability=torch.backends.cpu.get_cpu_capability())
    return measured_cpu_bf16()


def measured_cpu_bf16():
    """(bfloat16 faster than float32 here?, why), from a 1-second convolution benchmark run once per machine and
    remembered under LESSONLIB_HOME (keyed by processor, torch version and core count)."""
    import json

    from lessonlib.engine.runtime import home
    from lessonlib.engine.storage import atomic_write, load_or_none

    key = f"{platform.machine()}|{platform.processor()}|{torch.__version__}|{cpu_workers()}"
    path = home() / "machine" / f"bf16-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    found = load_or_none(path, lambda p: json.loads(p.read_text()), "the bfloat16 measurement")
    if not isinstance(found, dict):
        conv = torch.nn.Conv2d(32, 32, 3, padding=1).eval()
        x = torch.randn(8, 32, 56, 56)

        def speed(dtype):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                conv(x)   # warm-up
                start = time.perf_counter()
                for _ in range(5):
                    conv(x)
                return 5 / (time.perf_counter() - start)
        found = {"fp32_per_s": speed("fp32"), "bf16_per_s": speed("bf16")}
        atomic_write(path, lambda f: f.write(json.dumps(found)), mode="w")
    ratio = found["bf16_per_s"] / found["fp32_per_s"]
    return ratio > 1.2, say("measured once on this machine: bfloat16 convolutions at {ratio:.2f}x float32's speed",
                            ratio=ratio)


def resolve_policy(device=None, precision=None):
    """The policy for `device` ("cpu", "cuda", "cuda:1", "mps", a torch.device; None: the best one present).

    `precision` ("bf16", "fp16", "fp32"; default `LESSONLIB_PRECISION`, else chosen for the hardware: bfloat16
    on GPUs that have it; on CPUs that compute it natively, bfloat16 for forward passes and float32 where the
    body back-propagates; float32 elsewhere) forces one autocast type for every stage.

    Example:
        >>> policy = resolve_policy("cpu")
        >>> with policy.autocast():
        ...     out = model(policy.to_device(x))
    """
    if isinstance(device, Policy):
        if precision is None:
            return device
        return device.but(precision=_check_precision(precision), backprop_precision=precision)
    policy = _resolve(device)
    forced = precision or settings().precision
    if forced is not None and (forced, forced) != (policy.precision, policy.backprop_precision):
        forced = _check_precision(forced)
        if forced == "fp16" and policy.device.type == "cpu":
            raise ValueError(problem("precision='fp16' is for GPUs; on a CPU choose 'bf16' or 'fp32'"))
        why = "LESSONLIB_PRECISION" if precision is None else "precision="
        policy = policy.but(precision=forced, backprop_precision=forced,
                            reasons=policy.reasons + (say("{forced} in every stage: chosen by {why}", forced=forced, why=why),))
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        policy = policy.but(rank=dist.get_rank(), world_size=dist.get_world_size(), sharded=True)
    return policy


def _check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(problem("precision={precision!r}: choose one of {PRECISIONS}",
                                 precision=precision, PRECISIONS=PRECISIONS))
    return precision


def _resolve(device):
    try:
        device = torch.device(device) if device is not None else default_device()
    except (RuntimeError, TypeError) as e:
        raise ValueError(problem("device={device!r}: lessonlib runs on 'cpu', 'cuda', 'cuda:N' or 'mps' ({e})",
                                 device=device, e=e)) from None
    _check_available(device)
    reasons = []
    cores = cpu_workers()
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        bf16 = torch.cuda.is_bf16_supported()
        precision = "bf16" if bf16 else "fp16"
        reasons.append(say("bf16 autocast on this GPU") if bf16 else
                       say("fp16 autocast with a gradient scaler: this GPU has no bf16"))
        budget = settings().image_cache_mb
        budget = 512 if budget is None else budget
        limit = cgroup_memory_mb()
        if limit is not None and budget > limit / 8:   # in a container, an eighth of its memory at most
            budget = limit / 8
            reasons.append(say("image cache at most {budget:.0f} MB: an eighth of this container's {limit} MB",
                               budget=budget, limit=limit))
        benchmark = settings().cudnn_benchmark
        if not benchmark:
            reasons.append(say("cudnn.benchmark off (LESSONLIB_CUDNN_BENCHMARK=0)"))
        return Policy(device, precision, precision, channels_last=True, num_workers=min(8, cores), pin_memory=True,
                      image_cache_mb=budget, augment_on_device=True, body_piece=None,
                      compile_missing=_compile_missing(device), cudnn_benchmark=benchmark, threads=cores,
                      reasons=tuple(reasons + [say("loader workers decode JPEGs so the GPU never waits; augmentation "
                                                   "per batch on the GPU; decoded images kept in memory when they fit")]))
    if device.type == "mps":
        return Policy(device, "fp32", channels_last=False, num_workers=0 if cores <= 2 else min(4, cores // 2),
                      compile_missing=_compile_missing(device), threads=cores,
                      reasons=(say("Apple GPU: fp32, contiguous memory (channels-last is not faster there)"),))
    bf16, why = cpu_bf16()
    if bf16:
        reasons += [say("bf16 autocast where nothing back-propagates through the body: {why}", why=why),
                    say("fp32 where the body trains: on CPUs with native bfloat16 a fine-tuning step measured slower in "
                        "bf16 than in fp32 (0.85x-0.86x, EfficientNet-Lite0; benchmarks/precision.py measures this "
                        "machine)")]
    else:
        reasons.append(say("fp32: {why}", why=why))
    return Policy(device, "bf16" if bf16 else "fp32", "fp32", channels_last=True, num_workers=0 if cores <= 2 else min(4, cores // 2),
                  body_piece=CPU_BODY_PIECE, compile_missing=_compile_missing(device), threads=cores,
                  reasons=tuple(reasons + [
                      say("{cores} cores: no loader workers, the model needs them all", cores=cores) if cores <= 2 else
                      say("{cores} cores: some loader workers", cores=cores),
                      say("the body takes mini-batches of large images {piece} images at a time where that gives "
                          "the same update (from {forward} px in float32 without back-propagation, from {other} px "
                          "otherwise: less memory, and faster there); smaller images go whole, which is faster for "
                          "them", piece=CPU_BODY_PIECE, forward=CPU_PIECES_FROM_PX["fp32", "forward"],
                          other=CPU_PIECES_FROM_PX["bf16", "forward"])]))


def _check_available(device):
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(problem("device={device!r}, but PyTorch sees no CUDA GPU here: use device='cpu' (or "
                                     "leave device out to use the best device present)", device=str(device)))
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(problem("device={device!r}, but this machine has {device_count} CUDA GPU(s): cuda:0 "
                                     "to cuda:{last}",
                                     device=str(device), device_count=torch.cuda.device_count(), last=torch.cuda.device_count() - 1))
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ValueError(problem("device='mps', but this machine has no Apple GPU that PyTorch can use: use "
                                     "device='cpu'"))
    elif device.type != "cpu":
        raise ValueError(problem("device={device!r}: lessonlib runs on 'cpu', 'cuda', 'cuda:N' or 'mps'",
                                 device=str(device)))


# ---------------------------------------------------------------- when the memory runs out

class OutOfMemory(RuntimeError, MemoryError):
    """The memory (or the GPU's) ran out: lessonlib's message says what to do; the allocator's error is its cause.
    Both a RuntimeError (as torch's own) and a MemoryError (as Python's), so either `except` catches it."""

    def __init__(self, original, device=None, bs=None, sz=None):
        self.original, self.device, self.bs, self.sz = original, device, bs, sz
        cuda = device is not None and torch.device(device).type == "cuda"
        memory = say("the GPU's memory") if cuda else say("memory")
        bs_advice = (say("bs={smaller} instead of {bs}", smaller=max(bs // 2, 2), bs=bs) if bs else
                     say("a smaller bs (images per mini-batch)"))
        sz_advice = say("a smaller sz than {sz}", sz=sz) if sz else say("a smaller sz (image size)")
        others = say(" Another notebook's kernel may be holding GPU memory: shut down those you do not use.") \
            if cuda else ""
        reason = (str(original).strip().splitlines() or [""])[0][:160]
        super().__init__(problem("out of {memory}: use {bs_advice}, or {sz_advice}, and run it again; the weights "
                                 "are those from before the mini-batch that failed.{others} ({kind}: {reason})",
                                 memory=memory, bs_advice=bs_advice, sz_advice=sz_advice, others=others,
                                 kind=type(original).__name__, reason=reason))

    def __reduce__(self):   # rebuilt from what made it (a process that ran out hands it to the one that started it)
        return type(self), (self.original, self.device, self.bs, self.sz)


# How each allocator words it: PyTorch's CPU allocator on Linux ("DefaultCPUAllocator: can't allocate memory: you
# tried to allocate ...") and Windows ("... not enough memory ..."), CUDA's and MPS's ("... out of memory ...").
_OUT_OF_MEMORY_TEXTS = ("can't allocate memory", "not enough memory", "out of memory", "DefaultCPUAllocator")


def is_out_of_memory(e):
    """True when `e` says that an allocation failed: torch.OutOfMemoryError, Python's MemoryError, or the
    RuntimeError of PyTorch's CPU allocator."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and any(text in str(e) for text in _OUT_OF_MEMORY_TEXTS)


@contextlib.contextmanager
def memory_explained(device=None, bs=None, sz=None):
    """Around an entry point (fit, predictions, precompute): an exhausted memory becomes `OutOfMemory`, which says
    to use a smaller `bs` or `sz` (the values given here, where known) and keeps the allocator's error as its
    cause. Nested, the message with the most it knows wins.

    Example:
        >>> with memory_explained(policy.device, bs=64, sz=224):
        ...     train_epoch(...)
    """
    try:
        yield
    except OutOfMemory as e:
        if (bs and not e.bs) or (sz and not e.sz):   # this level knows more: say it
            raise OutOfMemory(e.original, device or e.device, bs or e.bs, sz or e.sz) from e.original
        raise
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        raise OutOfMemory(e, device, bs, sz) from e
