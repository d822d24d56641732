"""The networks by name, cut into a pretrained body and a new head, in three layer groups.

`ConvLearner.pretrained(arch, data)` builds one: `create_body(arch)` (the pretrained body, with its ImageNet
weights), `create_head(n_features, n_classes)` (the new classifier), joined in a `ConvNet` whose
`layer_groups` are [early body, late body, head]. The code lives in the engine (`lessonlib.engine.networks`,
`lessonlib.engine.weights`), which needs it and imports nothing of the lesson; this module is the lesson's
name for it.
"""
from lessonlib.engine.networks import (ARCHS, FALLBACK, IMAGENET_STATS, AdaptiveConcatPool2d, Body, ConvNet,
                                       ImageNormalize, arch_name, batchnorm_layers, create_head, head_forward,
                                       split_backbone, upgrade_state_dict)
from lessonlib.engine.weights import create_body

__all__ = ["ARCHS", "AdaptiveConcatPool2d", "Body", "ConvNet", "FALLBACK", "IMAGENET_STATS", "ImageNormalize",
           "arch_name", "batchnorm_layers", "create_body", "create_head", "head_forward", "split_backbone",
           "upgrade_state_dict"]
