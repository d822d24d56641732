"""Checks that only mean something on a CUDA GPU (skipped elsewhere)."""
import copy

import pytest
import torch

from lessonlib import models, training
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.engine.policy import resolve_policy
from lessonlib.engine.steps import StepPlan
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


@pytest.fixture
def gpu_data(tmp_path, home):
    """16 training and 8 validation images per class, 64 px, mini-batches of 8, on the GPU."""
    make_folders(tmp_path / "pets", n_train=16, n_valid=8)
    tfms = tfms_from_model("efficientnet_lite0", 64, aug_tfms=transforms_side_on)
    return ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8, device="cuda")


@pytest.mark.gpu
def test_the_gpu_policy_uses_mixed_precision_channels_last_and_pinned_memory():
    policy = resolve_policy("cuda")
    assert policy.device.type == "cuda" and policy.channels_last and policy.pin_memory
    assert policy.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    plan = StepPlan(policy, torch.nn.Linear(4, 4), torch.optim.SGD(torch.nn.Linear(4, 4).parameters()))
    assert plan.scaler.is_enabled() == (policy.precision == "fp16")
    with policy.autocast():
        y = torch.nn.Linear(4, 4).cuda()(torch.randn(2, 4, device="cuda"))
    assert y.dtype in (torch.bfloat16, torch.float16)


@pytest.mark.gpu
def test_full_training_on_cuda_runs_batches_channels_last_on_the_gpu(gpu_data, monkeypatch):
    assert gpu_data.trn_dl.pin_memory
    learn = ConvLearner.pretrained("efficientnet_lite0", gpu_data)
    learn.unfreeze()
    seen = {}
    original = training.train_step

    def spy(model, x, y, loss_fn, optimizer, plan):
        moved, _ = plan.to_device(x, y)
        seen["channels_last"] = moved.is_contiguous(memory_format=torch.channels_last)
        seen["device"] = moved.device.type
        return original(model, x, y, loss_fn, optimizer, plan)
    monkeypatch.setattr(training, "train_step", spy)
    learn.fit(1e-3, 1)
    assert seen == {"channels_last": True, "device": "cuda"}
    assert next(learn.model.parameters()).device.type == "cuda"


@pytest.mark.gpu
def test_device_cpu_keeps_everything_on_the_cpu_with_a_gpu_present(tmp_path, home):
    make_folders(tmp_path / "pets", n_train=8, n_valid=4)
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=transforms_side_on)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=4, device="cpu")
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 1)
    assert {p.device.type for p in learn.model.parameters()} == {"cpu"}
    assert learn.activations("train")[0].device.type == "cpu"
    assert not data.trn_dl.pin_memory
    assert learn.predict().shape == (8, 2) and learn.policy.device.type == "cpu"


@pytest.mark.gpu
def test_compiled_learner_with_cached_images_trains_on_cuda(gpu_data):
    assert gpu_data.image_cache is not None and len(gpu_data.image_cache) == 48   # filled before the workers start
    learn = ConvLearner.pretrained("efficientnet_lite0", gpu_data).compile()
    learn.unfreeze()
    learn.fit(1e-3, 2)
    assert len(learn.history) == 2 and learn.history.trn_loss.notna().all()


@pytest.mark.gpu
def test_body_in_pieces_matches_the_whole_batch_on_cuda_in_mixed_precision():
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    net = models.ConvNet(body, models.create_head(8, 2, hidden=16)).cuda().train()
    net[0][1].eval()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 2, (16,))
    policy = resolve_policy("cuda")
    grads = []
    for piece in (None, 4):
        model = copy.deepcopy(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        torch.manual_seed(1)
        training.train_step(model, x, y, torch.nn.functional.cross_entropy, opt,
                            StepPlan(policy.but(body_piece=piece, body_piece_from_px=0), model, opt))
        grads.append([p.grad.float() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=2e-2, rtol=2e-2) for a, b in zip(*grads))
