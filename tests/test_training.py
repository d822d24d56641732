"""The training loop itself: steps, pieces of a mini-batch, predictions, divergence, the table."""
import copy
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from lessonlib import models, training
from lessonlib.engine.policy import resolve_policy
from lessonlib.engine.runtime import in_notebook
from lessonlib.engine.interrupts import deferred_interrupt
from lessonlib.engine.steps import StepPlan
from lessonlib.learner import ConvLearner
from tests.conftest import tolerance


def _body_and_head(body_dropout=0.0):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(body_dropout),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return models.ConvNet(body, models.create_head(4, 2, hidden=8))


def _one_step(model, x, y, policy, seed=1):
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = training.train_step(model, x, y, nn.functional.cross_entropy, opt, StepPlan(policy, model, opt))
    return float(loss), [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_body_in_pieces_gives_the_whole_batch_update_when_its_batchnorm_is_fixed(precision):
    cpu, tol = resolve_policy("cpu", precision=precision), tolerance(precision)
    net = _body_and_head()
    x, y = torch.randn(10, 3, 8, 8), torch.randint(0, 2, (10,))
    results = []
    for piece in (None, 4):   # 10 images in pieces of 4, 4 and 2; the head (BatchNorm, dropout) sees all 10
        model = copy.deepcopy(net).train()
        model[0][1].eval()       # what learn.bn_freeze(True) does to the body's BatchNorm
        results.append(_one_step(model, x, y, cpu.but(body_piece=piece, body_piece_from_px=0)))
    (whole_loss, whole), (split_loss, split) = results
    assert abs(whole_loss - split_loss) < tol
    assert all(torch.allclose(a, b, atol=tol, rtol=tol) for a, b in zip(whole, split))
    assert not torch.equal(whole[0], net[0][0].weight)   # the step did change the weights
    if precision != "fp32":
        return   # the difference below is smaller than bfloat16's rounding: float32 tells the two ways apart
    model = copy.deepcopy(net).train()                     # the head's BatchNorm in pieces would differ:
    model[0][1].eval()                                     # this test can tell the two ways apart
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(1)
    for xs, ys in zip(x.split(4), y.split(4)):
        (nn.functional.cross_entropy(model(xs), ys) * len(xs) / len(x)).backward()
    opt.step()
    assert not torch.allclose(list(model.parameters())[-1], split[-1], atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pieces_replay_the_body_randomness_and_count_batchnorm_statistics_once(precision):
    cpu, tol = resolve_policy("cpu", precision=precision), tolerance(precision)
    net = _body_and_head(body_dropout=0.5)
    x, y = torch.randn(10, 3, 8, 8), torch.randint(0, 2, (10,))
    model = copy.deepcopy(net).train()
    _one_step(model, x, y, cpu.but(body_piece=4, body_piece_from_px=0))
    grads = [p.grad.clone() for p in model.parameters()]
    # the same computation with every piece's graph kept in memory at once: the gradients must agree
    reference = copy.deepcopy(net).train()
    torch.manual_seed(1)
    pieces = cpu.to_device(x).split(4)   # channels_last, as train_step makes them
    with cpu.autocast():
        features = torch.cat([reference[0](piece) for piece in pieces])
    nn.functional.cross_entropy(models.head_forward(reference[1], features), y).backward()
    assert all(torch.allclose(a, p.grad, atol=tol, rtol=tol) for a, p in zip(grads, reference.parameters()))
    # running statistics: updated by the first pass over the pieces only, not again by the second
    bn, ref_bn = model[0][1], reference[0][1]
    assert int(bn.num_batches_tracked) == 3 == int(ref_bn.num_batches_tracked)
    assert torch.allclose(bn.running_mean, ref_bn.running_mean, atol=tol, rtol=tol)
    assert torch.allclose(bn.running_var, ref_bn.running_var, atol=tol, rtol=tol)


def test_the_body_in_pieces_gives_the_weights_of_before_the_step_was_written_out():
    """Issue 40 moved the body in pieces out of the step into the model's forward (`BodyInPieces`): the weights,
    BatchNorm statistics and losses after 3 steps are those of the code before, bit for bit, in float32 and
    bfloat16, body trainable and frozen (tests/reference/pieces_steps.pt, written by that code)."""
    from tests.reference.pieces_steps import CASES, REFERENCE, environment, run
    reference = torch.load(REFERENCE)
    if reference["environment"] != environment():   # other kernels round otherwise: bits say nothing there
        pytest.skip(f"the reference was written with {reference['environment']}; this is {environment()}")
    for precision, frozen in CASES:
        case = f"{precision}-{'frozen' if frozen else 'trainable'}"
        got, want = run(precision, frozen), reference[case]
        assert torch.equal(got["losses"], want["losses"]), case
        assert got["state"].keys() == want["state"].keys()
        assert all(torch.equal(got["state"][k], want["state"][k]) for k in want["state"]), case


def test_the_body_takes_a_training_batch_in_pieces_and_an_evaluation_batch_whole():
    cpu = resolve_policy("cpu").but(body_piece=4, body_piece_from_px=0)
    model = _body_and_head().train()
    sizes = []
    model[0][0].register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(10, 3, 8, 8), torch.randint(0, 2, (10,))
    training.train_step(model, x, y, nn.functional.cross_entropy, optimizer, StepPlan(cpu, model, optimizer))
    assert sizes == [4, 4, 2, 4, 4, 2]   # the pieces, then again in the backward pass
    sizes.clear()
    with torch.no_grad():
        model.eval()(x)
    assert sizes == [10] and repr(model.pieces) == "BodyInPieces(piece=4)"


def test_small_images_go_through_the_body_whole_large_ones_in_pieces():
    """The CPU policy's table (benchmarks/body_pieces.py, `CPU_PIECES_FROM_PX`): small images go through the body
    whole, large ones in pieces, in training and in predictions alike."""
    cpu = resolve_policy("cpu")
    for side, in_training, in_predictions in ((64, [10], [10]), (224, [8, 2, 8, 2], [8, 2])):
        model = _body_and_head().train()
        model.bn_frozen = True                        # as learn.bn_freeze(True): pieces give the same update
        sizes = []
        model[0][0].register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(10, 3, side, side), torch.randint(0, 2, (10,))
        training.train_step(model, x, y, nn.functional.cross_entropy, optimizer, StepPlan(cpu, model, optimizer))
        assert sizes == in_training, side             # pieces: the forward pass, then again in the backward pass
        sizes.clear()
        training.get_preds(model.eval(), [(x, y)], cpu)
        assert sizes == in_predictions, side


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_predictions_come_in_pieces_with_the_same_outputs(precision):
    cpu, tol = resolve_policy("cpu", precision=precision).but(body_piece_from_px=0), tolerance(precision)
    model = _body_and_head().eval()
    x = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8).float()
    batches = [(x[:10], torch.zeros(10)), (x[10:], torch.ones(10))]
    calls = []
    model[0].register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    out, y = training.get_preds(model, batches, cpu)
    assert calls == [8, 2, 8, 2]                     # the CPU policy's pieces: 8 images at a time
    with torch.no_grad(), cpu.autocast():
        whole = models.head_forward(model[1], model[0](x))   # the whole batch at once, in the same precision
    assert torch.allclose(out, whole.float(), atol=tol, rtol=tol) and y.tolist() == [0] * 10 + [1] * 10


def test_an_interrupt_waits_for_the_optimizer_step():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("finished the step")
    assert steps == ["finished the step"]


# ---------------------------------------------------------------- a step that breaks the model is not kept

class _InfiniteGradient(torch.autograd.Function):
    """The identity going forward; an infinite gradient going back (a finite loss, broken gradients)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def _linear_problem():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    return model, x, y


def _state(model, optimizer):
    return copy.deepcopy((model.state_dict(), optimizer.state_dict()))


def _same(a, b):
    sa, sb = a[0], b[0]
    if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
        return False
    return repr(a[1]) == repr(b[1])


@pytest.mark.parametrize("breaks", ["loss", "gradient", "weights"])
def test_a_non_finite_step_stops_with_the_weights_and_optimizer_of_before(cpu, breaks):
    model, x, y = _linear_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    plan = StepPlan(cpu, model, optimizer)
    training.train_step(model, x, y, nn.functional.cross_entropy, optimizer, plan)   # momentum exists now
    before = _state(model, optimizer)
    loss_fn = nn.functional.cross_entropy
    if breaks == "loss":
        loss_fn = lambda out, t: nn.functional.cross_entropy(out, t) * float("nan")   # noqa: E731
    elif breaks == "gradient":
        loss_fn = lambda out, t: nn.functional.cross_entropy(_InfiniteGradient.apply(out), t)   # noqa: E731
    else:   # finite loss, gradients and rate, but the step overflows float32
        optimizer.param_groups[0]["lr"] = 3e38
        loss_fn = lambda out, t: nn.functional.cross_entropy(out, t) * 100   # noqa: E731
    with pytest.raises(FloatingPointError, match="learning rate is probably too high"):
        training.train_step(model, x, y, loss_fn, optimizer, plan)
    optimizer.param_groups[0]["lr"] = 0.1
    assert _same(before, _state(model, optimizer))
    training.train_step(model, x, y, nn.functional.cross_entropy, optimizer, plan)   # and training goes on
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_first_step_that_breaks_leaves_no_optimizer_state(cpu):
    model, x, y = _linear_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=3e38, momentum=0.9)
    with pytest.raises(FloatingPointError):
        training.train_step(model, x, y, lambda out, t: nn.functional.cross_entropy(out, t) * 100, optimizer,
                            StepPlan(cpu, model, optimizer))
    assert len(optimizer.state) == 0 or all(not s for s in optimizer.state.values())


def test_a_non_finite_validation_loss_restores_the_epoch_start(cpu):
    model, x, y = _linear_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = _state(model, optimizer)

    calls = []

    def loss_fn(out, t):   # finite for the one training mini-batch, NaN when evaluating
        calls.append(1)
        loss = nn.functional.cross_entropy(out, t)
        return loss if len(calls) == 1 else loss * float("nan")
    with pytest.raises(FloatingPointError, match="validation loss became nan.*start of this epoch"):
        training.fit(model, ([(x, y)], [(x, y)]), training.Objective(loss_fn), optimizer, 1, cpu,
                     table=training.EpochTable(show=False))
    assert _same(before, _state(model, optimizer))


def test_fit_trains_a_plain_model_and_returns_the_table(cpu):
    model, x, y = _linear_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    table = training.fit(model, ([(x, y)] * 4, [(x, y)]), training.Objective(nn.functional.cross_entropy),
                         optimizer, 3, cpu, table=training.EpochTable(show=False))
    assert list(table.columns) == ["epoch", "trn_loss", "val_loss", "accuracy", "time"]
    assert table.trn_loss.iloc[-1] < table.trn_loss.iloc[0]
    assert not model.training


# ---------------------------------------------------------------- notebooks are recognised by type

def test_a_kernel_whose_shell_subclasses_jupyters_is_a_notebook(monkeypatch):
    from ipykernel.zmqshell import ZMQInteractiveShell
    import IPython

    class HostedShell(ZMQInteractiveShell):   # as Colab's shell subclasses Jupyter's, under another name
        pass
    shell = HostedShell.__new__(HostedShell)   # its type is what counts; no kernel is started
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert in_notebook() and training.EpochTable().in_notebook
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert not in_notebook()

    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    terminal = TerminalInteractiveShell.__new__(TerminalInteractiveShell)
    monkeypatch.setattr(IPython, "get_ipython", lambda: terminal)
    assert not in_notebook()


def test_objective_defaults_to_log_probabilities_and_accuracy():
    objective = training.Objective(nn.CrossEntropyLoss())
    out = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(objective.to_preds(out).exp().sum(1), torch.ones(2))
    assert [m(objective.to_preds(out), torch.tensor([0, 0])) for m in objective.metrics] == [0.5]
    assert np.isclose(float(objective.loss_fn(out, torch.tensor([0, 1]))),
                      float(nn.functional.cross_entropy(out, torch.tensor([0, 1]))))


def test_fit_and_find_lr_take_a_plain_model_optimizer_and_loss_on_a_named_device():
    """Plain PyTorch in, plain PyTorch out: no Policy, no Objective, no learner."""
    from lessonlib.lr_finder import Sweep, find_lr

    torch.manual_seed(0)
    x = torch.randn(64, 6)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lrf = find_lr(model, optimizer, nn.CrossEntropyLoss(), batches, device="cpu", sweep=Sweep(num_it=30))
    assert len(lrf.lrs) >= 3 and lrf.suggestion > 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the finder changes nothing"
    history = training.fit(model, (batches, batches), nn.CrossEntropyLoss(), optimizer, 5, device="cpu")
    assert list(history.columns) == ["epoch", "trn_loss", "val_loss", "accuracy", "time"]
    assert history.trn_loss.iloc[-1] < history.trn_loss.iloc[0] and history.accuracy.iloc[-1] > 0.8


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fit_and_find_lr_leave_a_plain_models_memory_layout_as_it_was_given(layout):
    """A student's conv net keeps its weights' layout (lesson 06's numbers depend on it: before issue 27's
    refactor fit never changed it, and channels-last weights round differently)."""
    from lessonlib.lr_finder import Sweep, find_lr

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = [(torch.randn(8, 3, 8, 8), torch.randint(0, 2, (8,))) for _ in range(3)]
    find_lr(model, optimizer, nn.CrossEntropyLoss(), batches, device="cpu", sweep=Sweep(num_it=5))
    training.fit(model, (batches, batches), nn.CrossEntropyLoss(), optimizer, 1, device="cpu")
    assert model[0].weight.is_contiguous(memory_format=layout)


def test_the_schedule_is_stepped_in_the_epoch_loop_and_the_recorder_only_records():
    """One place for each job: `train_epoch` steps the learning-rate schedule where the student reads the loop; the
    Recorder records the rates each mini-batch was trained with, and steps nothing."""
    import ast
    import inspect

    from lessonlib import recorder
    calls = [n.func.attr for n in ast.walk(ast.parse(inspect.getsource(recorder))) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)]
    assert "step" not in calls and "scheduler" not in inspect.getsource(recorder)
    assert "schedule.step()" in inspect.getsource(training.train_epoch)
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 / (i + 1))
    rec = recorder.Recorder(optimizer)
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(4)]
    training.train_epoch(model, batches, nn.functional.cross_entropy, optimizer, resolve_policy("cpu"), rec, schedule)
    assert [row[0] for row in rec.lrs] == [1.0, 1 / 2, 1 / 3, 1 / 4]   # each batch's own rate, then the next's set
    assert optimizer.param_groups[0]["lr"] == 1 / 5


def test_the_lessons_code_fits_on_a_screen():
    """`??train_step` and `??ConvLearner.fit` show the lesson, not the machinery (issues 27 and 40)."""
    import inspect

    from lessonlib.learner import ConvLearner
    step = inspect.getsource(training.train_step)
    assert len(step.splitlines()) <= 20
    lines = ["optimizer.zero_grad()", "with plan.autocast():", "out = model(x)", "loss = loss_fn(out, y)",
             "scaler.scale(loss).backward()", "finite_or_undone(loss)", "scaler.step(optimizer)"]
    assert [line for line in lines if line in step] == lines
    assert sorted(lines, key=step.index) == lines   # in the lesson's order
    assert "plan.forward" not in step and "plan.backward" not in step and step.count("with ") == 2
    fit = inspect.getsource(ConvLearner.fit)
    assert len(fit.splitlines()) <= 30
    order = [fit.index(s) for s in ("group_rates(", "self._setup(", "sgdr(", "training.fit(")]
    assert order == sorted(order)   # rates -> optimizer per layer group -> SGDR -> epochs


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -1e-3, None, "fast", [1e-4, float("nan"), 1e-2]])
def test_bad_rates_are_refused_before_training(data, rate):
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError, match="learning rate"):
        learn.fit(rate, 1)
    assert learn.history.empty and all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
