import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from skimage.data import chelsea
from torchvision.transforms import v2

from lessonlib import models
from lessonlib.engine import runtime, weights

CAT_CLASSES = {281, 282, 285}   # ImageNet: tabby, tiger cat, Egyptian cat


@pytest.fixture(autouse=True)
def forget_resolutions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))   # no weight files but the ones a test makes
    monkeypatch.delenv("LESSONLIB_DATA_MIRROR", raising=False)
    weights.LOOKUPS.forget()
    yield
    weights.LOOKUPS.forget()


def weight_file(folder, name="resnet34", seed=0, wrong_hash=False):
    """A torchvision-style weight file made here: `<name>-<first 8 hex digits of its SHA-256>.pth`."""
    import hashlib

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    if wrong_hash:
        digest = format((int(digest, 16) + 1) % 16**8, "08x")
    path = folder / f"{name}-{digest}.pth"
    tmp.rename(path)
    return path


def test_weights_are_found_in_the_mirror_without_network(tmp_path, monkeypatch, capsys):
    path = weight_file(tmp_path / "mirror" / "weights")
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("LESSONLIB_OFFLINE", "1")
    monkeypatch.setattr(weights, "weights_url", lambda name: f"https://example.invalid/models/{path.name}")
    name, model = weights.load_pretrained("resnet34")
    assert name == "resnet34" and capsys.readouterr().out == ""
    saved = torch.load(path, weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_torchs_own_cache_comes_first(tmp_path, monkeypatch):
    cached = weight_file(tmp_path / "torch" / "hub" / "checkpoints", seed=1)
    monkeypatch.setattr(weights, "weights_url", lambda name: f"https://example.invalid/{cached.name}")
    monkeypatch.setattr(weights, "_torchvision_pretrained", lambda name: pytest.fail("must not download"))
    assert weights.find_weights("resnet34") == cached
    assert weights.load_pretrained("resnet34")[0] == "resnet34"


def test_a_weight_file_that_does_not_match_its_name_is_refused(tmp_path, monkeypatch, capsys):
    bad = weight_file(tmp_path / "mirror" / "weights", wrong_hash=True)
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("LESSONLIB_OFFLINE", "1")
    monkeypatch.setattr(weights, "weights_url", lambda name: f"https://example.invalid/{bad.name}")
    name, _ = weights.load_pretrained("resnet34")
    out = capsys.readouterr().out
    assert name == "efficientnet_lite0"
    assert f"refusing {bad}" in out and "SHA-256 starts" in out and "fetch-weights" in out


def test_fetch_weights_downloads_checked_files_from_a_server(tmp_path, monkeypatch, capsys):
    from lessonlib.__main__ import main
    from tests.helpers import FileServer

    good = weight_file(tmp_path / "made", "resnet34")
    bad = weight_file(tmp_path / "made", "resnet50", wrong_hash=True)
    srv = FileServer({f"/models/{p.name}": p.read_bytes() for p in (good, bad)}, cut_first=1)
    monkeypatch.setattr("lessonlib.engine.storage.RETRY_WAIT", 0.01)
    urls = {"resnet34": f"{srv.url}/models/{good.name}", "resnet50": f"{srv.url}/models/{bad.name}"}
    monkeypatch.setattr(weights, "weights_url", urls.get)
    try:
        assert main(["fetch-weights", "resnet34", "--to", str(tmp_path / "weights")]) == 0
        assert (tmp_path / "weights" / good.name).read_bytes() == good.read_bytes()
        assert main(["fetch-weights", "resnet50", "--to", str(tmp_path / "weights")]) == 1
        assert "not the one its name promises" in capsys.readouterr().err
        assert not (tmp_path / "weights" / bad.name).exists()
    finally:
        srv.close()


def test_packaged_weights_load_strictly_and_see_a_cat():
    model = weights.packaged_efficientnet_lite0().eval()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.69e6, rel=0.01)
    img = torch.from_numpy(chelsea()).permute(2, 0, 1)
    x = v2.Compose([v2.Resize(224, interpolation=v2.InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(224)])(img)
    with torch.no_grad():
        probs = model(models.ImageNormalize((0.5,) * 3, (0.5,) * 3)(x[None])).softmax(1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.7


def test_key_conversion_covers_every_block():
    state = {"_conv_stem.weight": 0, "_blocks.0._depthwise_conv.weight": 1, "_blocks.15._project_conv.weight": 2,
             "_blocks.1._expand_conv.weight": 3, "_bn1.bias": 4, "_fc.weight": 5}
    out = weights.convert_efficientnet_lite0_keys(state)
    assert out == {"conv_stem.weight": 0, "blocks.0.0.conv_dw.weight": 1, "blocks.6.0.conv_pwl.weight": 2,
                   "blocks.1.0.conv_pw.weight": 3, "bn2.bias": 4, "classifier.weight": 5}


def test_offline_resnet_falls_back_with_one_clear_line(monkeypatch, capsys):
    def no_network(name):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(weights, "_torchvision_pretrained", no_network)
    name, model = weights.load_pretrained("resnet34")
    lines = [l for l in capsys.readouterr().out.splitlines() if l]
    assert name == "efficientnet_lite0"
    assert len(lines) == 1 and "resnet34" in lines[0] and "packaged ImageNet efficientnet_lite0" in lines[0]
    weights.load_pretrained("resnet34")   # remembered: no second attempt, no second line
    assert "packaged" not in capsys.readouterr().out


def test_lessonlib_offline_skips_the_download(monkeypatch, capsys):
    monkeypatch.setenv("LESSONLIB_OFFLINE", "1")
    monkeypatch.setattr(weights, "_torchvision_pretrained", lambda name: pytest.fail("must not try to download"))
    assert weights.load_pretrained(torchvision.models.resnet50)[0] == "efficientnet_lite0"
    assert "LESSONLIB_OFFLINE" in capsys.readouterr().out


def test_online_resnet_uses_torchvision_weights(monkeypatch, capsys):
    fake = torchvision.models.resnet34(weights=None)
    monkeypatch.setattr(weights, "_torchvision_pretrained", lambda name: fake)
    body = weights.create_body("resnet34")
    assert body.arch == "resnet34" and body.n_features == 1024
    assert capsys.readouterr().out == ""
    assert body.early[0] is fake.conv1 and body.late[1] is fake.layer4


def test_unknown_arch_lists_the_choices():
    with pytest.raises(ValueError, match="resnet34"):
        models.arch_name("resnet35")


def test_normalize_matches_torchvision():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean, std = models.IMAGENET_STATS
    expected = v2.Normalize(mean, std)(x.float() / 255)
    assert torch.allclose(models.ImageNormalize(mean, std)(x), expected, atol=1e-5)
    assert torch.allclose(models.ImageNormalize(mean, std)(x.float() / 255), expected, atol=1e-5)


def test_concat_pool_matches_torch():
    x = torch.randn(2, 5, 7, 7)
    expected = torch.cat([F.adaptive_max_pool2d(x, 1), F.adaptive_avg_pool2d(x, 1)], 1).flatten(1)
    assert torch.allclose(models.AdaptiveConcatPool2d()(x), expected, atol=1e-6)


def test_three_layer_groups_partition_the_model_and_the_parts_have_names():
    body = weights.create_body("efficientnet_lite0")
    whole = models.ConvNet(body, models.create_head(body.n_features, 2))
    groups = whole.layer_groups
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(groups) == 3 and len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in whole.parameters()}
    assert whole(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, 2)
    assert np.isclose(body.n_features, 2 * 1280)
    assert [name for name, _ in whole.named_children()] == ["body", "head"]
    assert [name for name, _ in body.named_children()] == ["normalize", "early", "late", "pool"]
    assert "(early): Sequential" in repr(whole) and "(late): Sequential" in repr(whole)


def test_a_model_saved_before_the_parts_had_names_still_loads():
    body = weights.create_body("efficientnet_lite0")
    whole = models.ConvNet(body, models.create_head(body.n_features, 2))
    torch.manual_seed(3)
    for p in whole.parameters():
        p.data.normal_()
    old_layout = torch.nn.Sequential(torch.nn.Sequential(body.normalize, body.early, body.late, body.pool), whole.head)
    old_state = {k: v.clone() for k, v in old_layout.state_dict().items()}   # keys 0.1.*, 0.2.*, 1.*
    assert any(k.startswith("0.1.") for k in old_state) and any(k.startswith("1.") for k in old_state)
    fresh_body = weights.create_body("efficientnet_lite0")
    fresh = models.ConvNet(fresh_body, models.create_head(fresh_body.n_features, 2))
    fresh.load_state_dict(models.upgrade_state_dict(old_state))   # strict: every key found
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), whole.state_dict().values()))


def test_bn_frozen_keeps_the_bodys_batchnorm_in_eval_mode_while_the_head_trains():
    body = weights.create_body("efficientnet_lite0")
    net = models.ConvNet(body, models.create_head(body.n_features, 2))
    for p in net.parameters():
        p.requires_grad_(True)
    net.train()
    assert all(m.training for m in models.batchnorm_layers(net))
    net.bn_frozen = True
    net.train()
    assert not any(m.training for m in models.batchnorm_layers(body))
    assert all(m.training for m in models.batchnorm_layers(net.head))
    net.bn_frozen = False
    for p in body.early.parameters():
        p.requires_grad_(False)    # frozen layers keep their statistics too
    net.train()
    assert not any(m.training for m in models.batchnorm_layers(body.early))
    assert all(m.training for m in models.batchnorm_layers(body.late))


def test_an_unreadable_weight_file_in_the_mirror_falls_back_with_a_message(tmp_path, monkeypatch, capsys):
    import errno
    path = weight_file(tmp_path / "mirror" / "weights")
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("LESSONLIB_OFFLINE", "1")
    monkeypatch.setattr(weights, "weights_url", lambda name: f"https://example.invalid/models/{path.name}")

    def unreadable(p):   # what open() raises for a file of the mirror this user may not read (root reads anything)
        raise PermissionError(errno.EACCES, "Permission denied", str(p))
    monkeypatch.setattr(weights, "weight_file_ok", unreadable)
    monkeypatch.setattr(weights, "LOOKUPS", weights.Lookups())
    name, _ = weights.load_pretrained("resnet34")
    out = capsys.readouterr().out
    assert name == weights.FALLBACK and "cannot be read" in out and str(path) in out


def test_a_mirror_that_is_not_there_is_said_once_and_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", str(tmp_path / "no-such-mirror"))
    with pytest.warns(UserWarning, match="LESSONLIB_DATA_MIRROR=.*no-such-mirror is not a folder"):
        assert runtime.mirror() is None
    monkeypatch.setenv("LESSONLIB_DATA_MIRROR", " ")
    assert runtime.mirror() is None
