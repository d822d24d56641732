"""Reading image files: which formats this Pillow decodes, one file to an upright RGB image, and the scan that
finds the files that cannot be used.

Every image reaches the model as RGB, whatever mode it was saved in, turned upright as its EXIF orientation says.
`find_unreadable` decodes every file once up front, so that a broken file is reported by name, never discovered
as a crash inside a DataLoader worker; its results are cached under a key of the files (`files_digest`) and of how
they decode (`READER`), the key precomputed activations use too.
"""
import contextlib
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageFile, ImageOps

from lessonlib.engine.language import problem
from lessonlib.engine.runtime import home
from lessonlib.engine.storage import atomic_write, file_signature, load_or_none

__all__ = ["display_name", "files_digest", "find_unreadable", "load_image", "readable_extensions", "to_rgb"]


def readable_extensions():
    """The file extensions the installed Pillow can decode: .jpg, .jpeg, .jfif (what browsers often save), .png,
    .webp, .tif, ... and .avif or .heic where this Pillow or a plugin reads them (stub formats left out).
    Asked each time, so a plugin registered after lessonlib was imported (pillow-heif) counts."""
    def decodes(fmt):
        factory = Image.OPEN.get(fmt, (None,))[0]
        return factory is not None and not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))
    return {ext for ext, fmt in Image.registered_extensions().items() if decodes(fmt)}

# Photo formats a student may have that Pillow reads only with a plugin: what to install when they are skipped.
PLUGIN_HELP = {
    ".heic": "pip install pillow-heif, then run `import pillow_heif; pillow_heif.register_heif_opener()` first",
    ".heif": "pip install pillow-heif, then run `import pillow_heif; pillow_heif.register_heif_opener()` first",
    ".avif": "pip install -U pillow (11.3 and later read AVIF), or convert the files to JPEG",
    ".svg": "a drawing, not a photo: export it as PNG",
}
# Bumped whenever the same file starts to decode to other pixels (caches of activations key on it).
READER = "upright-float-1"


def to_rgb(img):
    """`img` as an RGB image: transparency onto white, 16-bit and CMYK converted properly."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in {"I", "I;16", "I;16B", "I;16L", "F"}:
        a = np.asarray(img, dtype=np.float64)
        top = a.max() if a.size else 0
        if img.mode.startswith("I;16"):
            top = 65535.0                       # 16-bit: the full range, whatever this image uses of it
        elif img.mode == "F" and top <= 1.0:
            top = 1.0                           # floating point scaled 0..1 (scientific TIFFs)
        else:
            top = 65535.0 if top > 255 else 255.0
        return Image.fromarray((a / top * 255).clip(0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")   # L, 1, CMYK, YCbCr, P without transparency


# Longer side / shorter side beyond which an image is refused: resizing its shorter side to `sz` would make
# the longer one enormous (a 1 x 5000 px strip at sz=224 becomes 224 x 1,120,000 px, 750 MB).
MAX_ASPECT = 20


def display_name(path):
    """`path` as text that can always be printed: bytes that are not UTF-8 are shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def load_image(path, min_side=None):
    """Decode `path` into an RGB PIL image; with `min_side`, JPEG decoding may skip detail beyond it.

    With `min_side`, an image more elongated than `MAX_ASPECT`:1 is refused before it is decoded (ValueError).
    """
    with Image.open(path) as img:
        w, h = img.size
        if min_side and (min(w, h) == 0 or max(w, h) / min(w, h) > MAX_ASPECT):
            mb = min_side * (min_side * max(w, h) / max(min(w, h), 1)) * 3 / 2**20
            raise ValueError(problem("{w}x{h} px is more elongated than {MAX_ASPECT}:1: resizing its shorter side "
                                     "to {min_side} px would need {mb:,.0f} MB",
                                     w=w, h=h, MAX_ASPECT=MAX_ASPECT, min_side=min_side, mb=mb))
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))   # DCT scaling: decode at 1/2, 1/4, 1/8 size when enough
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))   # a phone's photo, upright as its EXIF orientation says



def _decode_error(path, min_side):
    try:
        load_image(path, min_side)
        return None
    except Exception as e:   # any decoder error means "unusable image"; we report it, never crash
        return f"{type(e).__name__}: {e}"


def files_digest(files):
    """A hash of file names (any bytes) and `storage.file_signature`s: changes whenever any file does."""
    h = hashlib.sha256()
    for f in files:
        try:
            signature = file_signature(f)
        except FileNotFoundError:
            raise FileNotFoundError(problem("{fsdecode} was removed after the data was read: build the data again "
                                            "(ImageClassifierData.from_paths(...)) so that it lists the images "
                                            "there now", fsdecode=os.fsdecode(f))) \
                from None
        h.update(os.fsencode(f) + f"|{signature}\n".encode())
    return h.hexdigest()



def find_unreadable(files, min_side=None):
    """{file: reason} for the images that cannot be used; results cached by name, size, mtime and `min_side`."""
    key = hashlib.sha256(f"{files_digest(files)}|{min_side}|{MAX_ASPECT}|{READER}".encode()).hexdigest()[:24]
    cache = home() / "scans" / f"{key}.json"
    found = load_or_none(cache, lambda p: json.loads(p.read_text()), "the image scan cache")
    if isinstance(found, dict):
        return found
    with _truncated_is_an_error(), ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(lambda f: _decode_error(f, min_side), files))   # PIL releases the GIL
    bad = {str(f): r for f, r in zip(files, reasons) if r is not None}
    atomic_write(cache, lambda f: f.write(json.dumps(bad)), mode="w")   # ASCII: odd names are escaped
    return bad


@contextlib.contextmanager
def _truncated_is_an_error():
    """While the scan runs, a truncated file is an error, not grey pixels: PIL's process-wide switch
    (`ImageFile.LOAD_TRUNCATED_IMAGES`) is set so, then put back as the student had it."""
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before

