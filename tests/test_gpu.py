"""Checks that only mean something on a CUDA GPU (skipped elsewhere)."""
import pytest
import torch

from lessonlib import training
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


@pytest.fixture
def data(tmp_path, monkeypatch):
    """16 training and 8 validation images per class, 64 px, mini-batches of 8."""
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    make_folders(tmp_path / "pets", n_train=16, n_valid=8)
    tfms = tfms_from_model("efficientnet_lite0", 64, aug_tfms=transforms_side_on)
    return ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8)


@pytest.mark.gpu
def test_full_training_on_cuda_uses_mixed_precision_and_channels_last(data, monkeypatch):
    assert data.trn_dl.pin_memory
    learn = ConvLearner.pretrained("efficientnet_lite0", data)
    learn.unfreeze()
    seen = {}
    original = training.to_device

    def spy(x, device):
        out = original(x, device)
        if out.dim() == 4:
            seen["channels_last"] = out.is_contiguous(memory_format=torch.channels_last)
            seen["device"] = out.device.type
        return out
    monkeypatch.setattr(training, "to_device", spy)
    learn.fit(1e-3, 1)
    assert seen == {"channels_last": True, "device": "cuda"}
    assert next(learn.model.parameters()).device.type == "cuda"
    autocast, scaler = training.autocast_for(torch.device("cuda"))
    with autocast():
        y = torch.nn.Linear(4, 4).cuda()(torch.randn(2, 4, device="cuda"))
    assert y.dtype in (torch.bfloat16, torch.float16)
    assert (scaler is None) == torch.cuda.is_bf16_supported()


@pytest.mark.gpu
def test_compiled_learner_with_cached_images_trains_on_cuda(data):
    assert data.image_cache is not None and len(data.image_cache) == 48   # filled before the workers start
    learn = ConvLearner.pretrained("efficientnet_lite0", data).compile()
    learn.unfreeze()
    learn.fit(1e-3, 2)
    assert len(learn.history) == 2 and learn.history.trn_loss.notna().all()


@pytest.mark.gpu
def test_body_in_pieces_matches_the_whole_batch_on_cuda_in_mixed_precision():
    import copy

    from lessonlib import models

    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    net = torch.nn.Sequential(body, models.create_head(8, 2, hidden=16)).cuda().train()
    net[0][1].eval()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 2, (16,))
    autocast, scaler = training.autocast_for(torch.device("cuda"))
    grads = []
    for micro_bs in (None, 4):
        model = copy.deepcopy(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        torch.manual_seed(1)
        training.train_step(model, x, y, torch.nn.functional.cross_entropy, opt, torch.device("cuda"), autocast,
                            None, micro_bs)
        grads.append([p.grad.float() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=2e-2, rtol=2e-2) for a, b in zip(*grads))
