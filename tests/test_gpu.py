"""Checks that only mean something on a CUDA GPU (skipped elsewhere)."""
import pytest
import torch

from lessonlib import training
from lessonlib.data import ImageClassifierData
from lessonlib.learner import ConvLearner
from lessonlib.transforms import tfms_from_model, transforms_side_on
from tests.helpers import make_folders


@pytest.mark.gpu
def test_full_training_on_cuda_uses_mixed_precision_and_channels_last(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_HOME", str(tmp_path / "home"))
    make_folders(tmp_path / "pets", n_train=16, n_valid=8)
    tfms = tfms_from_model("efficientnet_lite0", 64, aug_tfms=transforms_side_on)
    data = ImageClassifierData.from_paths(tmp_path / "pets", tfms=tfms, bs=8)
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
