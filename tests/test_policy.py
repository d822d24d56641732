"""The device policy: decided once, printable, passed to the data, the learner and the loop."""
import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from lessonlib import training
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.engine.policy import CPU_BODY_PIECE, Policy, resolve_policy
from lessonlib.engine.doctor import doctor
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders

LESSONLIB = Path(__file__).resolve().parent.parent / "lessonlib"


@pytest.mark.parametrize("native", [False, True])
def test_the_cpu_policy_and_what_printing_it_shows(fake_cpu_bf16, monkeypatch, native):
    monkeypatch.delenv("LESSONLIB_PRECISION", raising=False)
    fake_cpu_bf16(native)
    policy = resolve_policy("cpu")
    assert policy.device == torch.device("cpu")
    # bfloat16 only for forward passes, and only where the CPU computes it natively; float32 where the body trains
    assert (policy.precision, policy.backprop_precision) == (("bf16" if native else "fp32"), "fp32")
    assert ("where the body trains" in str(policy)) == native
    assert policy.channels_last and not policy.pin_memory and policy.image_cache_mb == 0
    assert policy.body_piece == CPU_BODY_PIECE and not policy.augment_on_device
    text = str(policy)
    for field in ("device", "precision", "channels_last", "num_workers", "pin_memory", "image_cache_mb",
                  "augment_on_device", "body_piece", "compile", "why"):
        assert field in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.device = torch.device("cuda")
    changed = policy.but(num_workers=policy.num_workers + 3)
    assert changed.num_workers == policy.num_workers + 3 and changed.device == policy.device and changed is not policy


def test_a_policy_given_as_device_is_used_as_it_is():
    custom = resolve_policy("cpu").but(num_workers=0, body_piece=None)
    assert resolve_policy(custom) is custom


@pytest.mark.parametrize("device, match", [
    ("tpu", "lessonlib runs on 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ("cuda:7", "cuda"),
])
def test_devices_that_are_not_here_are_clear_errors(device, match):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises((ValueError, RuntimeError), match=match):
        resolve_policy(device)


def test_device_cpu_keeps_every_part_of_the_run_on_the_cpu(tmp_path, home, monkeypatch):
    make_folders(tmp_path / "pets", n_train=8, n_valid=4, n_test=2)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, test_name="test", device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True, device="cpu")
    assert learn.policy.device == data.policy.device == torch.device("cpu")
    seen = set()
    original = training.train_step

    def spy(model, x, y, loss_fn, optimizer, plan):
        seen.add(plan.to_device(x, y)[0].device.type)
        seen.update(p.device.type for p in model.parameters())
        return original(model, x, y, loss_fn, optimizer, plan)
    monkeypatch.setattr(training, "train_step", spy)
    learn.fit(1e-2, 1)
    learn.precompute = False
    learn.fit(1e-2, 1)
    assert seen == {"cpu"}
    assert learn.activations("train")[0].device.type == "cpu"
    assert {p.device.type for p in learn.model.parameters()} == {"cpu"}
    assert learn.predict().shape == (8, 2) and learn.TTA(n_aug=1)[0].shape == (2, 8, 2)
    assert not data.trn_dl.pin_memory


def test_default_device_is_asked_in_one_place_only():
    callers = []
    for path in sorted(LESSONLIB.rglob("*.py")):   # the engine's modules too
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "default_device":
                callers.append(path.name)
    assert callers == ["policy.py"]


# The lesson's own names for from_csv are eight (path, folder, csv_fname, tfms, suffix, val_idxs, bs, test_name);
# the device is the ninth. Every other function takes at most eight.
# fit: the lesson's loop shows the schedule as its own argument, stepped where the student reads the epoch loop
# (issue 40), beside the recorder that only records
EXCEPTIONS = {("data.py", "from_csv"): 9, ("training.py", "fit"): 9}


def test_no_function_takes_more_than_eight_parameters():
    too_many = []
    for path in sorted(LESSONLIB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                names = [n for n in names if n not in ("self", "cls")]
                names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
                if len(names) > EXCEPTIONS.get((path.name, node.name), 8):
                    too_many.append(f"{path.name}:{node.name}({', '.join(names)})")
    assert not too_many


def test_every_module_says_what_is_public():
    missing = [p.name for p in sorted(LESSONLIB.rglob("*.py"))
               if p.name not in ("__main__.py",) and p != LESSONLIB / "engine" / "__init__.py"
               and "__all__" not in p.read_text()]
    assert not missing


def test_doctor_reports_the_policy_and_a_home_that_cannot_be_written(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    report = doctor("cpu")
    assert isinstance(report["policy"], Policy) and report["device"] == "cpu"
    assert report["lessonlib home"].endswith("(writable)")
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "file"))
    assert doctor("cpu")["lessonlib home"].startswith("PROBLEM: LESSONLIB_HOME=")


@pytest.mark.parametrize("files, cpus, memory", [
    ({"cpu.max": "200000 100000\n", "memory.max": str(4 * 2**30)}, 2, 4096),         # cgroup v2: 2 cores, 4 GB
    ({"cpu.max": "max 100000\n", "memory.max": "max\n"}, None, None),                 # v2 without limits
    ({"cpu/cpu.cfs_quota_us": "150000", "cpu/cpu.cfs_period_us": "100000",
      "memory/memory.limit_in_bytes": str(2 * 2**30)}, 1, 2048),                      # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000",
      "memory/memory.limit_in_bytes": "9223372036854771712"}, None, None),            # v1 without limits
    ({}, None, None),                                                                 # no cgroup files at all
])
def test_container_limits_are_read_from_the_cgroup(tmp_path, files, cpus, memory):
    from lessonlib.engine.policy import cgroup_cpus, cgroup_memory_mb, cpu_workers
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpus(str(tmp_path)) == cpus and cgroup_memory_mb(str(tmp_path)) == memory
    assert 1 <= cpu_workers(str(tmp_path)) <= (cpus or 10**6)


def test_torch_threads_never_exceed_the_cores_the_policy_counts():
    policy = resolve_policy("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(policy.threads + 3)
        policy.prepare(torch.nn.Linear(2, 2))
        assert torch.get_num_threads() == policy.threads
    finally:
        torch.set_num_threads(before)


@pytest.mark.real_cpu_bf16
@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                       (False, False, "fp32")])
def test_the_cpu_precision_follows_the_processors_bfloat16(monkeypatch, avx512_bf16, amx, expected):
    import platform
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)   # what the processor reports
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("LESSONLIB_PRECISION", raising=False)
    policy = resolve_policy("cpu")
    assert policy.precision == expected
    assert any(("native bfloat16" in r) for r in policy.reasons)
    assert resolve_policy("cpu", precision="fp32").precision == "fp32"      # a user can force either
    assert resolve_policy("cpu", precision="bf16").precision == "bf16"
    monkeypatch.setenv("LESSONLIB_PRECISION", "bf16" if expected == "fp32" else "fp32")
    assert resolve_policy("cpu").precision != expected
    with pytest.raises(ValueError, match="fp16' is for GPUs"):
        resolve_policy("cpu", precision="fp16")
    with pytest.raises(ValueError, match="choose one of"):
        resolve_policy("cpu", precision="half")


@pytest.mark.real_cpu_bf16
def test_where_torch_cannot_tell_a_measurement_decides_once(tmp_path, monkeypatch):
    import json
    import platform
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path))
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    from lessonlib.engine.policy import cpu_bf16
    first = cpu_bf16()
    files = list((tmp_path / "machine").glob("bf16-*.json"))
    assert len(files) == 1 and "measured once on this machine" in first[1]
    saved = json.loads(files[0].read_text())
    assert saved["fp32_per_s"] > 0 and saved["bf16_per_s"] > 0
    files[0].write_text(json.dumps({"fp32_per_s": 1.0, "bf16_per_s": 2.0}))   # the remembered result is used
    assert cpu_bf16()[0] is True and "2.00x" in cpu_bf16()[1]


def test_bf16_autocast_keeps_weights_activations_and_the_head_in_float32(tmp_path, home):
    from lessonlib import models
    make_folders(tmp_path / "pets", n_train=8, n_valid=4)
    tfms = tfms_from_model("efficientnet_lite0", 32)
    bf16 = resolve_policy("cpu", precision="bf16")
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device=bf16)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    x, _ = learn.activations("train")
    assert x.dtype == torch.float32 and all(p.dtype == torch.float32 for p in learn.model.parameters())
    fp32 = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device=resolve_policy("cpu", "fp32"))
    other = ConvLearner.pretrained("efficientnet_lite0", fp32, precompute=True)
    assert not torch.equal(other.activations("train")[0], x)            # two precisions, two cached entries
    assert torch.allclose(other.activations("train")[0], x, rtol=0.1, atol=0.1)
    with bf16.autocast():
        out = models.head_forward(learn.head.eval(), x[:4].bfloat16())
    assert out.dtype == torch.float32


@pytest.mark.parametrize("value, default, expected", [
    (None, False, False), ("", True, True), ("1", False, True), ("YES", False, True), (" true ", False, True),
    ("0", True, False), ("no", True, False), ("False", True, False), ("on", False, True), ("OFF", True, False)])
def test_yes_no_settings_are_read_one_way(value, default, expected):
    from lessonlib.engine.settings import Settings
    name, field = ("LESSONLIB_CUDNN_BENCHMARK", "cudnn_benchmark") if default else ("LESSONLIB_OFFLINE", "offline")
    assert getattr(Settings.from_environ({} if value is None else {name: value}), field) is expected



@pytest.mark.parametrize("value", ["2", "maybe", "ture"])
def test_a_yes_no_setting_that_is_neither_is_a_clear_error(monkeypatch, value):
    from lessonlib.engine.settings import settings
    monkeypatch.setenv("LESSONLIB_SMOKE", value)
    with pytest.raises(ValueError, match=f"LESSONLIB_SMOKE='{value}'.*use 1"):
        settings()


def _autocast_seen(module):
    """The autocast types `module`'s forward passes run under, as a list that fills as they run."""
    seen = []
    module.register_forward_hook(lambda m, i, o: seen.append(
        str(torch.get_autocast_dtype("cpu")).split(".")[-1] if torch.is_autocast_enabled("cpu") else "float32"))
    return seen


def test_each_stage_runs_in_its_own_precision_on_a_cpu_with_native_bfloat16(fake_cpu_bf16, monkeypatch, tmp_path, home):
    monkeypatch.delenv("LESSONLIB_PRECISION", raising=False)
    fake_cpu_bf16(True)
    make_folders(tmp_path / "pets", n_train=8, n_valid=4)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=False)
    assert (learn.policy.precision, learn.policy.backprop_precision) == ("bf16", "fp32")
    body, head = _autocast_seen(learn.body), _autocast_seen(learn.head)
    learn.fit(1e-3, 1)                                 # a frozen body: forward passes only
    assert set(body) == {"bfloat16"} and set(head) == {"float32"}   # the head always in float32
    body.clear()
    learn.unfreeze()
    learn.fit(1e-4, 1)                                 # the body back-propagates: float32 in training
    assert "float32" in body and "bfloat16" in body    # (validation is a forward pass: bfloat16)
    body.clear()
    learn.predict()
    assert set(body) == {"bfloat16"}


def test_for_training_picks_the_backprop_precision_only_where_the_body_trains(fake_cpu_bf16, monkeypatch):
    monkeypatch.delenv("LESSONLIB_PRECISION", raising=False)
    fake_cpu_bf16(True)
    policy = resolve_policy("cpu")
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert policy.for_training(net).precision == "fp32"                 # any plain model trains all of itself
    frozen = torch.nn.Module()
    frozen.body, frozen.head = torch.nn.Linear(2, 2).requires_grad_(False), torch.nn.Linear(2, 2)
    assert policy.for_training(frozen) is policy                         # a frozen body runs forward only
    forced = resolve_policy("cpu", precision="bf16")
    assert forced.for_training(net).precision == "bf16" and forced.backprop_precision == "bf16"
    monkeypatch.setenv("LESSONLIB_PRECISION", "fp32")
    assert (resolve_policy("cpu").precision, resolve_policy("cpu").backprop_precision) == ("fp32", "fp32")


def test_the_body_takes_pieces_only_from_the_size_where_they_are_faster():
    """benchmarks/body_pieces.py measured pieces of 8 slower than whole mini-batches at 32, 64 and 96 px in every stage
    and precision on a CPU, faster from 128 px for float32 forward passes and from 224 px otherwise
    (benchmarks/measured/2026-12-06-cpu-amx/): the policy follows that table."""
    from lessonlib.engine.policy import CPU_PIECES_FROM_PX
    assert CPU_PIECES_FROM_PX == {("fp32", "forward"): 128, ("fp32", "backprop"): 224,
                                  ("bf16", "forward"): 224, ("bf16", "backprop"): 224}
    images = lambda side: torch.zeros(16, 3, side, side + 50)
    for precision in ("fp32", "bf16"):
        policy = resolve_policy("cpu", precision=precision)
        assert policy.body_piece == CPU_BODY_PIECE and policy.body_piece_from_px is None   # None: the table
        for backprop in (False, True):
            from_px = CPU_PIECES_FROM_PX[precision, "backprop" if backprop else "forward"]
            assert policy.piece_for(images(from_px - 1), backprop) is None
            assert policy.piece_for(images(from_px), backprop) == CPU_BODY_PIECE
    policy = resolve_policy("cpu", precision="fp32")
    assert policy.piece_for(images(128)) == CPU_BODY_PIECE and policy.piece_for(images(128), backprop=True) is None
    assert policy.piece_for(torch.zeros(16, 1000)) is None                      # activations, not images
    assert policy.but(body_piece_from_px=0).piece_for(images(32), backprop=True) == CPU_BODY_PIECE   # every size
    assert policy.but(body_piece=None).piece_for(images(224)) is None           # a GPU's policy: always whole


ALLOCATOR_FAILURES = [
    RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 205520896 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.19 GiB"),
]


def _runs_out_on_call(module, n, monkeypatch, seen):
    """`module`'s forward runs as usual until its `n`-th call, which runs (updating BatchNorm statistics), then fails
    as the allocator does; `seen["state"]` is the model's state as that call began."""
    real, calls = module.forward, []

    def forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            seen["state"] = {k: v.clone() for k, v in seen["model"].state_dict().items()}
            real(*args, **kwargs)
            raise seen["error"]
        return real(*args, **kwargs)
    monkeypatch.setattr(module, "forward", forward)


@pytest.mark.parametrize("error", ALLOCATOR_FAILURES, ids=["cpu", "cuda"])
def test_memory_running_out_in_fit_says_to_use_a_smaller_bs_and_keeps_no_half_step(data, home, monkeypatch, error):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.unfreeze()   # the body's BatchNorm statistics change in the forward pass that fails
    seen = {"model": learn.model, "error": error}
    _runs_out_on_call(learn.body, 2, monkeypatch, seen)   # the second mini-batch: the first one's step was kept
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8, or a smaller sz .*and run it again; "
                                          r"the weights are those from before the mini-batch that failed") as caught:
        learn.fit(1e-2, 1)
    assert isinstance(caught.value, RuntimeError) and caught.value.__cause__ is error
    after = learn.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in seen["state"].items()), \
        [k for k, v in seen["state"].items() if not torch.equal(after[k], v)][:3]
    assert learn.history.empty


@pytest.mark.parametrize("error", ALLOCATOR_FAILURES, ids=["cpu", "cuda"])
def test_memory_running_out_in_predict_and_precompute_says_what_to_do(data, home, monkeypatch, error):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    seen = {"model": learn.model, "error": error}
    _runs_out_on_call(learn.body, 1, monkeypatch, seen)
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8") as caught:
        learn.predict()
    assert caught.value.__cause__ is error
    _runs_out_on_call(learn.body, 1, monkeypatch, seen)
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8, or a smaller sz than 32"):
        learn.precompute = True


@pytest.mark.parametrize("error", ALLOCATOR_FAILURES, ids=["cpu", "cuda"])
def test_memory_running_out_in_the_lr_finder_says_what_to_do_and_puts_the_model_back(data, home, monkeypatch, error):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    _runs_out_on_call(learn.body, 2, monkeypatch, {"model": learn.model, "error": error})
    with pytest.raises(MemoryError, match=r"out of memory: use bs=4 instead of 8") as caught:
        learn.lr_find()
    assert caught.value.__cause__ is error
    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_other_runtime_errors_are_not_taken_for_memory(data, home, monkeypatch):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    seen = {"model": learn.model, "error": RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x3 and 4x5)")}
    _runs_out_on_call(learn.body, 1, monkeypatch, seen)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as caught:
        learn.fit(1e-2, 1)
    assert not isinstance(caught.value, MemoryError)
