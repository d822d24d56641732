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


# ---------------------------------------------------------------- batch augmentation (the GPU path, run on CPU)

from torchvision.transforms import v2  # noqa: E402

from lessonlib.transforms import BatchAugment  # noqa: E402


def test_batch_augment_with_nothing_to_do_is_exact():
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(BatchAugment()(x), x)


def test_batch_augment_keeps_shape_dtype_and_the_dihedral_set():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).expand(200, 3, 4, 4) * 10
    out = BatchAugment(dihedral=True)(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    allowed = set()
    for k in range(4):
        r = torch.rot90(x[0], k, dims=(-2, -1))
        allowed |= {tuple(r.flatten().tolist()), tuple(r.flip(-1).flatten().tolist())}
    seen = {tuple(o.flatten().tolist()) for o in out}
    assert seen == allowed


def test_flips_agree_with_the_per_image_path():
    img = torch.zeros(3, 8, 8, dtype=torch.uint8)
    img[:, :, :2] = 255                                  # bright on the left
    batch = img.expand(400, 3, 8, 8)
    gpu_flipped = (BatchAugment(flip=True)(batch, torch.Generator().manual_seed(1))[:, 0, 0, -1] > 128).float().mean()
    torch.manual_seed(1)
    cpu = v2.RandomHorizontalFlip()
    cpu_flipped = torch.tensor([float(cpu(img)[0, 0, -1] > 128) for _ in range(400)]).mean()
    assert 0.42 < gpu_flipped < 0.58 and 0.42 < cpu_flipped < 0.58


def test_zoom_and_lighting_agree_statistically_with_the_per_image_path():
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8).expand(3, 64, 64).contiguous()
    n = 300

    def spread(images):   # how much of the ramp is visible across the middle row: 1/zoom
        mid = images[..., 32, 8:56].float()
        return ((mid.amax(-1) - mid.amin(-1)) / (ramp[0, 32, 8:56].float().max() - ramp[0, 32, 8:56].float().min()))

    gpu = BatchAugment(max_zoom=1.6)(ramp.expand(n, 3, 64, 64), torch.Generator().manual_seed(2))
    torch.manual_seed(2)
    cpu_t = v2.RandomAffine(degrees=0, scale=(1.0, 1.6), interpolation=v2.InterpolationMode.BILINEAR)
    cpu = torch.stack([cpu_t(ramp) for _ in range(n)])
    assert abs(spread(gpu).mean() - spread(cpu[:, 0]).mean()) < 0.05
    assert spread(gpu).min() > 1 / 1.6 - 0.05 and spread(gpu).max() <= 1.0 + 1e-6

    grey = torch.full((3, 16, 16), 128, dtype=torch.uint8)
    gpu_b = BatchAugment(brightness=0.3)(grey.expand(n, 3, 16, 16), torch.Generator().manual_seed(3)).float().mean((1, 2, 3)) / 128
    torch.manual_seed(3)
    cpu_j = v2.ColorJitter(brightness=0.3)
    cpu_b = torch.stack([cpu_j(grey).float().mean() / 128 for _ in range(n)])
    for factors in (gpu_b, cpu_b):
        assert abs(factors.mean() - 1) < 0.03 and abs(factors.std() - 0.3 / 3 ** 0.5) < 0.03
        assert factors.min() >= 0.69 and factors.max() <= 1.31


def test_batch_version_of_the_lesson_sets():
    side = BatchAugment.from_tfms(transforms_side_on, max_zoom=1.1)
    assert side.flip and not side.dihedral and side.max_rotate == 10 and side.max_zoom == 1.1
    assert side.brightness == pytest.approx(0.05) and side.contrast == pytest.approx(0.05)
    assert BatchAugment.from_tfms(transforms_top_down).dihedral
    with pytest.raises(ValueError, match="no batch version"):
        BatchAugment.from_tfms([v2.GaussianBlur(3)])
    assert tfms_from_model("resnet34", 32, aug_tfms=[v2.GaussianBlur(3)]).batch_augment is None


def test_tta_views_are_crops_and_the_allowed_flips():
    side = tfms_from_model("resnet34", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    kinds = [type(t).__name__ for t in side.tta.transforms]
    assert kinds == ["ToImage", "Resize", "RandomCrop", "RandomHorizontalFlip"]
    assert side.tta.transforms[1].size == [35]
    top = tfms_from_model("resnet34", 32, aug_tfms=transforms_top_down)
    assert isinstance(top.tta.transforms[-1], RandomDihedral)
    assert top.tta(photo()).shape == (3, 32, 32)
