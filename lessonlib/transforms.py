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

from lessonlib.models import ARCHS, arch_name


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
        raise ValueError(f"sz={sz!r}: the image size must be a whole number of pixels, at least 32")
    if max_zoom < 1.0:
        raise ValueError(f"max_zoom={max_zoom}: it must be at least 1.0 (1.0 means no zoom)")
    interpolation = getattr(v2.InterpolationMode, ARCHS[name]["interpolation"].upper())
    resize = v2.Resize(sz, interpolation=interpolation, antialias=True)
    valid = v2.Compose([v2.ToImage(), resize, v2.CenterCrop(sz)])
    augments = list(aug_tfms or [])
    if max_zoom > 1.0:
        augments.insert(0, v2.RandomAffine(degrees=0, scale=(1.0, max_zoom), interpolation=v2.InterpolationMode.BILINEAR))
    if not augments:
        return Tfms(valid, valid, sz, name, max_zoom)
    train = v2.Compose([v2.ToImage(), resize, *augments, v2.RandomCrop(sz)])
    return Tfms(train, valid, sz, name, max_zoom)
