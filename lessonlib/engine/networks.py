"""The networks by name, cut into a pretrained body and a new head, in three layer groups.

This is the network's plumbing, and it lives in the engine because the engine needs it (the weights lookup
builds a `Body`, checkpoints upgrade old state dicts, several processes and the step policy take a `ConvNet`
apart) and the engine imports nothing outside `lessonlib.engine`. The lesson reads it as `lessonlib.models`,
which re-exports every name here.

`resnet34` and `resnet50` are torchvision's, `efficientnet_lite0` is timm's `tf_efficientnet_lite0`;
where their ImageNet weights come from, and `create_body`, are in `lessonlib.engine.weights`.
"""
from collections import OrderedDict

import torch
from torch import nn

from lessonlib.engine.language import problem

# mean, std and resize interpolation each backbone's ImageNet weights were trained with
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
ARCHS = {
    "resnet34": {"stats": IMAGENET_STATS, "interpolation": "bilinear", "source": "torchvision"},
    "resnet50": {"stats": IMAGENET_STATS, "interpolation": "bilinear", "source": "torchvision"},
    "efficientnet_lite0": {"stats": ((0.5,) * 3, (0.5,) * 3), "interpolation": "bicubic", "source": "package"},
}
FALLBACK = "efficientnet_lite0"   # the network whose ImageNet weights come with lessonlib


__all__ = ["ARCHS", "AdaptiveConcatPool2d", "Body", "ConvNet", "FALLBACK", "ImageNormalize", "arch_name",
           "batchnorm_layers", "create_head", "head_forward", "split_backbone", "upgrade_state_dict"]


def arch_name(arch):
    """The catalog name of `arch`, given as a string or a torchvision function such as `resnet34`."""
    name = arch if isinstance(arch, str) else getattr(arch, "__name__", None)
    if name not in ARCHS:
        raise ValueError(problem("unknown architecture {arch!r}: choose one of {ARCHS}",
                                 arch=arch, ARCHS=sorted(ARCHS)))
    return name


# ---------------------------------------------------------------- body, head, layer groups

class ImageNormalize(nn.Module):
    """uint8 images (0..255) to the float, normalised input the backbone was trained on."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255, persistent=False)

    def forward(self, x):
        if not x.is_floating_point():
            x = x.float()
        else:
            x = x * 255   # a float image is taken to be in 0..1
        return (x - self.mean) / self.std


class AdaptiveConcatPool2d(nn.Module):
    """Average and max pooling side by side, as fastai's heads do: 2 x channels features."""

    def forward(self, x):
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


def batchnorm_layers(module):
    """The BatchNorm layers inside `module` (any dimension)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def split_backbone(name, model):
    """(early layers, late layers, number of output channels) of an ImageNet classifier."""
    if name.startswith("resnet"):
        early = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2)
        late = nn.Sequential(model.layer3, model.layer4)
        return early, late, model.fc.in_features
    early = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:4])
    late = nn.Sequential(*model.blocks[4:], model.conv_head, model.bn2)
    return early, late, model.num_features


class Body(nn.Sequential):
    """A pretrained body, in four named parts: `normalize` (uint8 images to the backbone's input), `early` and
    `late` layers (two layer groups), `pool` (concat pooling to `n_features` numbers per image)."""

    def __init__(self, arch, normalize, early, late, n_features):
        super().__init__(OrderedDict(normalize=normalize, early=early, late=late, pool=AdaptiveConcatPool2d()))
        self.arch, self.n_features = arch, n_features


def create_head(n_features, n_classes, hidden=512, ps=(0.25, 0.5)):
    """The new classifier trained on top of the body: BN, dropout, linear, ReLU, BN, dropout, linear."""
    return nn.Sequential(
        nn.BatchNorm1d(n_features), nn.Dropout(ps[0]), nn.Linear(n_features, hidden), nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden), nn.Dropout(ps[1]), nn.Linear(hidden, n_classes),
    )


def head_forward(head, features):
    """`head(features)` in float32, also under autocast: the head is small, and its BatchNorm statistics and the
    lesson's numbers then stay those of float32 whatever precision the body runs in."""
    with torch.autocast(features.device.type, enabled=False):
        return head(features.float())


class ConvNet(nn.Sequential):
    """`body` then `head`. In training mode, the body's BatchNorm layers stay in eval mode (their running
    statistics fixed) when they are frozen, or all of them after `bn_frozen = True` (`learn.bn_freeze(True)`)."""

    def __init__(self, body, head):
        super().__init__(OrderedDict(body=body, head=head))
        self.bn_frozen = False
        self.pieces = None   # how the body takes a training mini-batch: whole, or `engine.steps.BodyInPieces`

    @property
    def layer_groups(self):
        """[early body, late body, head]: what differential learning rates address."""
        return [self.body.early, self.body.late, self.head]

    def forward(self, x):
        pieces = getattr(self, "pieces", None)   # installed by the step's policy (a CPU memory trick), or None
        return head_forward(self.head, self.body(x) if pieces is None else pieces(self.body, x))

    def train(self, mode=True):
        super().train(mode)
        if mode:
            for m in batchnorm_layers(self.body):
                if self.bn_frozen or not any(p.requires_grad for p in m.parameters(recurse=False)):
                    m.eval()   # a frozen layer's statistics must not drift either
        return self


def upgrade_state_dict(state):
    """A saved model's weights in today's layout: models saved before the body's parts had names (keys
    `0.1.*`, `0.2.*`, `1.*`) get the names (`body.early.*`, `body.late.*`, `head.*`)."""
    renames = (("0.1.", "body.early."), ("0.2.", "body.late."), ("1.", "head."))
    out = {}
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out
