"""Readers for the image sources a dataset spec can name (see data.py): folders of image files (Pillow) and
scikit-learn's bundled images (IDX and .npy files go through the runtime's bounded reader, data.read_array).
Each returns raw arrays [N,C,H,W] (uint8 or float) and leaves range checks, channel conversion, resizing and
splitting to data.py.

Every problem with the data raises ValueError (or FileNotFoundError) naming the file and what is wrong,
so the CLI prints one line and exits 2.
"""

from pathlib import Path

import numpy as np

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}  # Pillow modes without colour


def image_files(folder: Path) -> list[Path]:
    """Every file under folder (recursively, sorted, hidden ones skipped) whose suffix Pillow can read."""
    from PIL import Image

    suffixes = {s.lower() for s in Image.registered_extensions()}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def folder_channels(files: list[Path]) -> int:
    """The auto channel rule: 1 when every file is grayscale (Pillow modes L, LA, 1, I, F...), else 3."""
    for path in files:
        with _open(path) as img:
            if img.mode not in GRAY_MODES:
                return 3
    return 1


def read_folder(files: list[Path], *, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """files as uint8 [N,C,H,W]: converted to gray ("L") or RGB, and, when size (H, W) is given, center-cropped
    to its aspect ratio and resized (Pillow's ImageOps.fit, Lanczos). Without size, all files must share one size."""
    from PIL import ImageOps

    mode = {1: "L", 3: "RGB"}[channels]
    arrays, first = [], None
    for path in files:
        with _open(path) as img:
            try:
                img = img.convert(mode)
                if size is not None and img.size != (size[1], size[0]):
                    img = ImageOps.fit(img, (size[1], size[0]), method=ImageOps.Image.Resampling.LANCZOS)
                array = np.asarray(img, np.uint8)
            except (OSError, ValueError) as err:  # truncated or corrupt pixel data surfaces here, not at open
                raise ValueError(f"image file {path} is unreadable ({err})") from None
        if first is None:
            first = (path, array.shape)
        elif array.shape != first[1]:
            raise ValueError(f"image files differ in size: {first[0]} is {first[1][1]}x{first[1][0]}, {path} is "
                             f"{array.shape[1]}x{array.shape[0]}; pass --image-size HxW to resize them all")
        arrays.append(array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1))
    return np.stack(arrays)


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"image file {path} is unreadable ({err})") from None


def sklearn_digits() -> np.ndarray:
    """scikit-learn's 1,797 handwritten digits (UCI optdigits test set) as float [1797,1,8,8] in [0,1]."""
    datasets = _sklearn_datasets()
    return (datasets.load_digits().images / 16.0)[:, None]  # pixel counts 0..16


def sklearn_patches(size: tuple[int, int]) -> np.ndarray:
    """Non-overlapping size (H, W) RGB patches tiled over scikit-learn's two sample photographs (china.jpg and
    flower.jpg, 427x640 each), as uint8 [N,3,H,W]: 520 patches at 32x32. Tiles do not overlap, so a random
    train/test split leaks no pixels."""
    datasets = _sklearn_datasets()
    h, w = size
    patches = []
    for photo in datasets.load_sample_images().images:  # uint8 [427,640,3]
        rows, cols = photo.shape[0] // h, photo.shape[1] // w
        tiles = photo[:rows * h, :cols * w].reshape(rows, h, cols, w, 3).transpose(0, 2, 4, 1, 3)
        patches.append(tiles.reshape(-1, 3, h, w))
    return np.concatenate(patches)


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError("scikit-learn is needed for the sklearn-* data sets: pip install scikit-learn",
                                  name="sklearn") from None
    return datasets

