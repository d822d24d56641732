"""Image transforms, the lesson's way: `tfms_from_model(arch, sz, aug_tfms=..., max_zoom=...)`.

Everything is `torchvision.transforms.v2`. The transforms turn a PIL image into a uint8
tensor of shape (3, sz, sz); scaling to float and normalising with the backbone's own
mean and std happen inside the model (`models.ImageNormalize`), so the same data works
with any backbone and batches stay small (1 byte per value) on their way to the GPU.
"""
from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from lessonlib.engine.language import problem, say
from lessonlib.models import ARCHS, arch_name

__all__ = ["BatchAugment", "RandomDihedral", "Tfms", "describe_augmented", "tfms_from_model", "transforms_basic",
           "transforms_side_on", "transforms_top_down"]


class RandomDihedral(v2.Transform):
    """One of the 8 symmetries of a square (4 rotations x optional flip), equally likely."""

    def make_params(self, flat_inputs):
        return {"k": int(torch.randint(4, ())), "flip": bool(torch.randint(2, ()))}

    def transform(self, inpt, params):
        out = torch.rot90(inpt, params["k"], dims=(-2, -1))
        out = out.flip(-1) if params["flip"] else out
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _lighting():
    return v2.ColorJitter(brightness=0.05, contrast=0.05)


# The lesson's three augmentation sets. Photos taken from the side may be mirrored left to
# right but never turned upside down; satellite and microscope images have no "up".
transforms_basic = [v2.RandomRotation(10, interpolation=v2.InterpolationMode.BILINEAR), _lighting()]
transforms_side_on = transforms_basic + [v2.RandomHorizontalFlip()]
transforms_top_down = transforms_basic + [RandomDihedral()]


@dataclass
class Tfms:
    """Train and validation transforms for one backbone and image size; unpacks as (train, valid)."""
    train: v2.Compose
    valid: v2.Compose
    sz: int
    arch: str
    max_zoom: float = 1.0
    base: v2.Compose = None          # resize and random crop only: the per-image part when augmenting per batch
    batch_augment: "BatchAugment" = None
    tta: v2.Compose = None           # test-time augmentation: shifted crops and the flips of aug_tfms

    def __iter__(self):
        return iter((self.train, self.valid))

    @property
    def augments(self):
        """True when the training transforms change images at random."""
        return self.train is not self.valid

    @property
    def load_size(self):
        """Smallest shorter side an image needs when decoded (lets JPEG decoding skip detail)."""
        return int(round(self.sz * self.max_zoom))


def tfms_from_model(arch, sz, aug_tfms=None, max_zoom=1.0):
    """Transforms for `arch` at image size `sz`.

    Args:
        arch: backbone name (`"resnet34"`, `"resnet50"`, `"efficientnet_lite0"`) or torchvision function.
        sz: side of the square images the model sees, e.g. 224.
        aug_tfms: a list of random transforms for training, e.g. `transforms_side_on`; None: none.
        max_zoom: zoom in at random by up to this factor (1.1 = up to 10%) while training.

    Example:
        >>> tfms = tfms_from_model("resnet34", 224, aug_tfms=transforms_side_on, max_zoom=1.1)
        >>> train_tfms, valid_tfms = tfms
    """
    name = arch_name(arch)
    if not isinstance(sz, int) or sz < 32:
        raise ValueError(problem("sz={sz!r}: the image size must be a whole number of pixels, at least 32", sz=sz))
    if max_zoom < 1.0:
        raise ValueError(problem("max_zoom={max_zoom}: it must be at least 1.0 (1.0 means no zoom)",
                                 max_zoom=max_zoom))
    interpolation = getattr(v2.InterpolationMode, ARCHS[name]["interpolation"].upper())
    resize = v2.Resize(sz, interpolation=interpolation, antialias=True)
    valid = v2.Compose([v2.ToImage(), resize, v2.CenterCrop(sz)])
    augments = list(aug_tfms or [])
    if max_zoom > 1.0:
        augments.insert(0, v2.RandomAffine(degrees=0, scale=(1.0, max_zoom), interpolation=v2.InterpolationMode.BILINEAR))
    if not augments:
        return Tfms(valid, valid, sz, name, max_zoom)
    train = v2.Compose([v2.ToImage(), resize, *augments, v2.RandomCrop(sz)])
    base = v2.Compose([v2.ToImage(), resize, v2.RandomCrop(sz)])
    try:
        batch = BatchAugment.from_tfms(aug_tfms, max_zoom)
    except ValueError:
        batch = None   # a transform without a batch version: always augment per image
    # For TTA, only views the photo could have been taken from: a shifted crop of a slightly larger
    # image, mirrored where the augmentations allow (lesson 05 shows what rotation and lighting did to TTA).
    flips = [t for t in aug_tfms or [] if isinstance(t, (v2.RandomHorizontalFlip, RandomDihedral))]
    tta_resize = v2.Resize(int(round(sz * max(max_zoom, 1.1))), interpolation=interpolation, antialias=True)
    tta = v2.Compose([v2.ToImage(), tta_resize, v2.RandomCrop(sz), *flips])
    return Tfms(train, valid, sz, name, max_zoom, base, batch, tta)


# ---------------------------------------------------------------- the same augmentations, per batch on the GPU

@dataclass
class BatchAugment:
    """Random flips, rotation, zoom and lighting for a whole batch at once, on its device.

    One affine matrix per image (flip x rotation x zoom, with a random shift that stays inside
    the image) and a single `grid_sample` resample for the batch, then per-image brightness and
    contrast: what fastai v2 does on the GPU instead of per-image Python work on the CPU.
    Input and output: uint8 (or float 0..1) tensors of shape (N, 3, H, W).
    """
    max_rotate: float = 0.0       # degrees, uniform in [-max_rotate, max_rotate]
    max_zoom: float = 1.0
    flip: bool = False            # left-right, with probability 1/2
    dihedral: bool = False        # any of the 8 symmetries of the square
    brightness: float = 0.0       # multiply by a factor in [1 - b, 1 + b]
    contrast: float = 0.0         # scale around the image mean by a factor in [1 - c, 1 + c]

    def matrices(self, n, generator=None, device="cpu"):
        """(n, 2, 3) affine matrices in grid_sample's normalised coordinates (output -> input)."""
        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)
        angle = torch.deg2rad(uniform(-self.max_rotate, self.max_rotate))
        scale = 1 / uniform(1.0, self.max_zoom)                      # zooming in samples a smaller area
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        m = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)   # (n, 2, 2)
        if self.dihedral:
            k = torch.randint(4, (n,), generator=generator, device=device)
            quarter = torch.tensor([[[1., 0.], [0., 1.]], [[0., -1.], [1., 0.]], [[-1., 0.], [0., -1.]],
                                    [[0., 1.], [-1., 0.]]], device=device)[k]
            m = m @ quarter
        if self.flip or self.dihedral:
            sign = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
            m = m * torch.stack([sign, torch.ones_like(sign)], 1)[:, None, :]   # mirror the x axis
        room = (1 - scale).clamp(min=0)                                  # shift only as far as the zoom allows
        shift = torch.stack([uniform(-1, 1) * room, uniform(-1, 1) * room], 1)
        return torch.cat([m, shift[:, :, None]], 2)

    def __call__(self, x, generator=None):
        import torch.nn.functional as F

        is_int = not x.is_floating_point()
        img = x.float() / 255 if is_int else x.float()
        n = img.shape[0]
        theta = self.matrices(n, generator, img.device)
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        img = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if self.brightness or self.contrast:
            b = 1 + (torch.rand(n, 1, 1, 1, generator=generator, device=img.device) * 2 - 1) * self.brightness
            c = 1 + (torch.rand(n, 1, 1, 1, generator=generator, device=img.device) * 2 - 1) * self.contrast
            mean = img.mean(dim=(1, 2, 3), keepdim=True)
            img = ((img - mean) * c + mean) * b
        img = img.clamp(0, 1)
        return (img * 255).round().to(torch.uint8) if is_int else img

    @classmethod
    def from_tfms(cls, aug_tfms, max_zoom=1.0):
        """The batch version of a list of per-image augmentations such as `transforms_side_on`."""
        kwargs = {"max_zoom": max_zoom}
        for t in aug_tfms or []:
            if isinstance(t, v2.RandomRotation):
                kwargs["max_rotate"] = float(max(abs(d) for d in t.degrees))
            elif isinstance(t, v2.RandomHorizontalFlip):
                kwargs["flip"] = True
            elif isinstance(t, RandomDihedral):
                kwargs["dihedral"] = True
            elif isinstance(t, v2.ColorJitter):
                kwargs["brightness"] = float(t.brightness[1] - 1) if t.brightness else 0.0
                kwargs["contrast"] = float(t.contrast[1] - 1) if t.contrast else 0.0
            else:
                raise ValueError(problem("{kind} has no batch version; use the per-image transforms",
                                         kind=type(t).__name__))
        return cls(**kwargs)


def describe_augmented(batch):
    """One line for people: how many images `batch_augment` augmented at once, and on which device."""
    return say("augmented {n} images on {device} in one call", n=len(batch), device=batch.device)
