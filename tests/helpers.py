"""Small synthetic image folders for fast tests."""
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path, color, size=(40, 30), mode="RGB"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def make_folders(root, classes=("cats", "dogs"), n_train=6, n_valid=3, n_test=0, size=(40, 30)):
    """root/train/<class>/*.jpg and root/valid/<class>/*.jpg with one flat colour per class."""
    root = Path(root)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for c, cls in enumerate(classes):
            for i in range(n):
                shade = int(rng.integers(0, 40))
                color = (200 + shade // 2, 60 + shade, 40) if c == 0 else (40, 60 + shade, 200 + shade // 2)
                write_image(root / split / cls / f"{cls}.{i}.jpg", color, size)
    for i in range(n_test):
        write_image(root / "test" / f"{i:04d}.jpg", (120, 120, 120), size)
    return root
