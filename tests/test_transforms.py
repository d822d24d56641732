import pytest
import torch
from PIL import Image

from lessonlib.transforms import RandomDihedral, tfms_from_model, transforms_side_on, transforms_top_down


def photo(w=60, h=40):
    return Image.frombytes("RGB", (w, h), bytes(range(256)) * (w * h * 3 // 256) + bytes(w * h * 3 % 256))


def test_shapes_and_dtype():
    tfms = tfms_from_model("resnet34", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    train, valid = tfms
    for t in (train, valid):
        x = t(photo())
        assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert tfms.augments and tfms.load_size == 35


def test_validation_is_deterministic_and_training_random():
    train, valid = tfms_from_model("resnet34", 32, aug_tfms=transforms_side_on, max_zoom=1.2)
    img = photo()
    torch.manual_seed(0)
    assert torch.equal(valid(img), valid(img))
    assert not all(torch.equal(train(img), train(img)) for _ in range(3))


def test_no_augmentation_means_same_transform():
    tfms = tfms_from_model("efficientnet_lite0", 32)
    assert not tfms.augments and tfms.train is tfms.valid


def test_dihedral_gives_all_eight_symmetries_and_nothing_else():
    x = torch.arange(9, dtype=torch.uint8).view(1, 3, 3)
    allowed = set()
    for k in range(4):
        r = torch.rot90(x, k, dims=(-2, -1))
        allowed |= {tuple(r.flatten().tolist()), tuple(r.flip(-1).flatten().tolist())}
    torch.manual_seed(0)
    seen = {tuple(RandomDihedral()(x).flatten().tolist()) for _ in range(200)}
    assert seen == allowed and len(seen) == 8


def test_top_down_can_turn_images_upside_down():
    assert any(isinstance(t, RandomDihedral) for t in transforms_top_down)
    assert not any(isinstance(t, RandomDihedral) for t in transforms_side_on)


@pytest.mark.parametrize("kwargs, match", [({"sz": 10}, "at least 32"), ({"sz": 64, "max_zoom": 0.5}, "max_zoom")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfms_from_model("resnet34", **kwargs)


@pytest.mark.parametrize("arch", ["resnet34", "efficientnet_lite0"])
def test_every_backbone_can_zoom_and_rotate(arch):
    train, _ = tfms_from_model(arch, 32, aug_tfms=transforms_top_down, max_zoom=1.3)
    assert train(photo()).shape == (3, 32, 32)
