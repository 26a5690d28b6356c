"""Training and test images as in-memory float32 tensors [N,C,H,W] in [0,1], named by a dataset spec.

Specs (`--data SPEC`; see load_images):
  fashion-mnist          the default: the four IDX files from --data-dir, the Debian package's folder, or
                         torchvision's download, in that order
  idx:TRAIN[,TEST]       IDX image files (uint8, raw or .gz), e.g. idx:train-images-idx3-ubyte.gz,t10k-images-idx3-ubyte.gz
  npy:TRAIN[,TEST]       .npy arrays [N,H,W] or [N,C,H,W], uint8 (0..255) or float in [0,1]
  folder:DIR             image files read with Pillow (PNG, JPEG, ...), from DIR/train and DIR/test when both
                         exist, else from all of DIR (recursively)
  sklearn-digits         scikit-learn's 1,797 8x8 gray digits (no download)
  sklearn-patches        non-overlapping RGB patches of --image-size (default 32x32) from scikit-learn's two
                         sample photographs (no download)
A bare path works too: a folder is folder:, a .npy file npy:, anything else idx:. Without a TEST part the
images are split by a fixed seed (SPLIT_SEED), TEST_FRACTION of them held out.

--channels 1|3 converts to gray (ITU-R 601 luma, as Pillow's "L") or RGB; without it folders are gray when
every file is, else RGB, and arrays keep their channels. --image-size HxW center-crops each image to that
aspect ratio and resizes it (Pillow's ImageOps.fit for files; antialiased bilinear for arrays). The whole
set is held as one tensor and batches are sliced from it: no per-item decoding while training.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgevae.runtime.image_io.image_input import MAX_TRAIN_READ_BYTES, read_images

from . import sources

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 0  # fixed, not the training seed: every run (and export, quantize) holds out the same images
TEST_FRACTION = 0.1
TEST_BINARIZE_SEED = 1234  # the fixed binarized test set; part of the protocol, not of a run
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights of Pillow's RGB -> "L"
BUILTIN = ("fashion-mnist", "sklearn-digits", "sklearn-patches")
PREFIXES = ("idx", "npy", "folder")
IDX_NAMES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")  # Fashion-MNIST's training and test images


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEVAE_CACHE", Path.home() / ".cache" / "edgevae"))


def find_idx(folder: Path, name: str) -> Path | None:
    """The raw or gzipped IDX file `name` in folder, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_array(path) -> np.ndarray:
    """An IDX (raw or .gz) or .npy file of images as float32 [N,C,H,W], through the runtime's bounded reader
    (every declared size checked before reading, a .gz inflated only as far as its header declares; uint8
    pixels scaled to [0,1], floats as they are). FileNotFoundError when it is not a file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"data file {path} does not exist or is not a file")
    return read_images(path, size=None, channels=None, max_bytes=MAX_TRAIN_READ_BYTES)


def _read_idx_pair(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    missing = [n for n in IDX_NAMES if find_idx(folder, n) is None]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)} (raw or .gz)")
    return tuple(torch.from_numpy(read_array(find_idx(folder, name))) for name in IDX_NAMES)


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_x, test_x): Fashion-MNIST's images as float32 [N,1,28,28] in [0,1] from data_dir, the Debian
    folder, or torchvision's download (torchvision fetches the files; the runtime's reader reads them).

    Raises FileNotFoundError naming every place tried when none works.
    """
    tried = []
    dirs = [Path(data_dir)] if data_dir is not None else [DEBIAN_DIR]
    for folder in dirs:
        try:
            return _read_idx_pair(folder)
        except FileNotFoundError as err:
            tried.append(f"{folder}: {err}")
    if data_dir is None:
        root = cache_dir() / "torchvision" / "download"
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(root), train=True, download=True)  # downloads and unzips all four files
            return _read_idx_pair(root / "FashionMNIST" / "raw")
        except Exception as err:  # torchvision raises bare RuntimeErrors / URLErrors when offline
            tried.append(f"torchvision download to {root}: {err}")
    hint = "" if data_dir else " (or install the Debian package dataset-fashion-mnist)"
    raise FileNotFoundError("no Fashion-MNIST found; tried " + "; ".join(tried) + hint)


def binarize_fixed(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed, seeded Bernoulli draw of images: the binarized test set of published NLL tables."""
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class DataConfig:
    """Which images to train and test on, and how to shape them (the train config's data fields)."""

    data: str = "fashion-mnist"  # the dataset spec (module docstring)
    data_dir: str | None = None  # Fashion-MNIST's IDX folder
    image_size: str | None = None  # "HxW" (or "S" for SxS): crop + resize every image to it
    channels: int | None = None  # 1 or 3: convert; None: keep (folders: gray if every file is)

    def __post_init__(self):
        parse_spec(self.data)
        if self.image_size is not None:
            parse_image_size(self.image_size)
        if self.channels not in (None, 1, 3):
            raise ValueError(f"--channels must be 1 or 3, got {self.channels}")

    @classmethod
    def from_train_config(cls, train_config: dict, **overrides) -> "DataConfig":
        """The data fields of a train config dict (as checkpoints and manifests hold it), with non-None overrides."""
        keys = ("data", "data_dir", "image_size", "channels")
        values = {k: train_config[k] for k in keys if train_config.get(k) is not None}
        return cls(**values | {k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class DataOverrides:
    """The data flags of eval and quantize (--data, --data-dir, --image-size, --channels): which fields of a
    run's own DataConfig (its train config's) to replace; None keeps the run's."""

    data: str | None = None
    data_dir: str | os.PathLike | None = None
    image_size: str | None = None
    channels: int | None = None

    def apply(self, train_config: dict, **more) -> DataConfig:
        """The run's DataConfig with these fields (and non-None `more`, e.g. the model's image size) replaced."""
        fields = {"data": self.data, "data_dir": None if self.data_dir is None else str(self.data_dir),
                  "image_size": self.image_size, "channels": self.channels}
        return DataConfig.from_train_config(train_config, **fields | {k: v for k, v in more.items() if v is not None})


@dataclass(frozen=True)
class ImageData:
    """float32 tensors [N,C,H,W] in [0,1]; source says where they came from (for manifests and logs)."""

    train: torch.Tensor
    test: torch.Tensor
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])


def parse_image_size(text: str) -> tuple[int, int]:
    """"HxW" (or "S" for SxS) -> (H, W); ValueError naming the text otherwise."""
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError(f"--image-size {text!r} is not HxW with positive integers (e.g. 32x32 or 48x64)")
    return parts[0], parts[1]


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """(kind, paths) of a dataset spec: kind is a BUILTIN name or one of PREFIXES; paths are 0, 1 or 2 files."""
    spec = str(spec).strip()
    if spec in BUILTIN:
        return spec, []
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in PREFIXES:
        first = Path(spec.split(",")[0])
        kind = "folder" if first.is_dir() else "npy" if first.suffix.lower() == ".npy" else "idx"
        if spec and ("/" in spec or first.suffix) and not (first.exists() or Path(spec).exists()):
            raise FileNotFoundError(f"--data {spec!r}: no such file or folder")
        if not spec or not (first.exists() or Path(spec).exists()):
            raise ValueError(f"--data {spec!r} is neither {', '.join(BUILTIN)}, nor PREFIX:PATH ({', '.join(PREFIXES)}), "
                             "nor an existing path")
        rest = spec
    paths = [p for p in rest.split(",")] if kind != "folder" else [rest]
    if not 1 <= len(paths) <= 2 or not all(paths):
        raise ValueError(f"--data {spec!r}: {kind} takes TRAIN or TRAIN,TEST")
    return kind, paths


def load_images(config: DataConfig = DataConfig()) -> ImageData:
    """The train and test images config names, converted, resized and checked (ValueError with one line)."""
    kind, paths = parse_spec(config.data)
    size = parse_image_size(config.image_size) if config.image_size else None
    if kind == "fashion-mnist":
        train, test = (x.numpy() for x in load_fashion_mnist(config.data_dir))
        source = f"Fashion-MNIST from {config.data_dir or DEBIAN_DIR}"
    elif kind == "sklearn-digits":
        train, test, source = sources.sklearn_digits(), None, "scikit-learn load_digits"
    elif kind == "sklearn-patches":
        patch = size or (32, 32)
        train, test = sources.sklearn_patches(patch), None
        source = f"scikit-learn sample images, {patch[0]}x{patch[1]} patches"
    elif kind == "folder":
        train, test, source = _read_folder(Path(paths[0]), config.channels, size)
    else:
        train, test = read_array(paths[0]), read_array(paths[1]) if len(paths) > 1 else None
        source = f"{kind} {','.join(paths)}"
    if test is None:
        train, test = split(train)
        source += f" (seeded split {SPLIT_SEED}, {len(test)} test images)"
    return ImageData(*(_prepare(a, name, config.channels, size) for a, name in ((train, "training"), (test, "test"))), source)


def held_out_images(data: "DataConfig | ImageData", *, binarize: bool = False, limit: int | None = None,
                    image_shape: tuple | None = None) -> torch.Tensor:
    """A training run's held-out test images, the one definition that train, eval, export, quantize and the
    benchmarks share: the test split of data (the run's DataConfig, DataConfig.from_train_config(train_config),
    or its ImageData already loaded) as float32 [N,C,H,W] in [0,1], the first `limit` of them (None: all).

    binarize: the run trained on binarized images (train_config["binarize"]): the fixed binarized test set
    (binarize_fixed with TEST_BINARIZE_SEED) that training and eval score. image_shape: the model's (C, H, W);
    ValueError naming both when the data's differ."""
    images = data if isinstance(data, ImageData) else load_images(data)
    if image_shape is not None and images.image_shape != tuple(image_shape):
        spec = data.data if isinstance(data, DataConfig) else images.source
        raise ValueError(f"{spec} gives {list(images.image_shape)} images; the model takes {list(image_shape)}")
    test_x = images.test[:limit]
    return binarize_fixed(test_x, TEST_BINARIZE_SEED) if binarize else test_x


def split(images: np.ndarray, *, seed: int = SPLIT_SEED, fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(train, test): a seeded random `fraction` of images (at least 1) held out, both in their original order."""
    if len(images) < 2:
        raise ValueError(f"{len(images)} image(s) cannot be split into training and test images; the test split would be empty")
    n_test = max(1, round(len(images) * fraction))
    test_rows = np.zeros(len(images), bool)
    test_rows[np.random.default_rng(seed).permutation(len(images))[:n_test]] = True
    return images[~test_rows], images[test_rows]


def _read_folder(folder: Path, channels: int | None, size) -> tuple[np.ndarray, np.ndarray | None, str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    parts = [folder / "train", folder / "test"]
    if not all(p.is_dir() for p in parts):
        parts = [folder]
    files = [sources.image_files(p) for p in parts]
    for part, found in zip(parts, files):
        if not found:
            what = "test split" if part.name == "test" and len(parts) == 2 else "image folder"
            raise ValueError(f"{what} {part} has no image files (PNG, JPEG, ... readable by Pillow)")
    channels = channels or sources.folder_channels([f for group in files for f in group])
    arrays = [sources.read_folder(group, channels=channels, size=size) for group in files]
    if len(arrays) == 2 and arrays[0].shape[1:] != arrays[1].shape[1:]:
        raise ValueError(f"{parts[0]} holds {list(arrays[0].shape[2:])} images, {parts[1]} {list(arrays[1].shape[2:])}; "
                         "pass --image-size HxW")
    return arrays[0], arrays[1] if len(arrays) == 2 else None, f"image files in {folder}"


def _prepare(images: np.ndarray, name: str, channels: int | None, size) -> torch.Tensor:
    """Raw [N,C,H,W] uint8/bool/float -> float32 tensor in [0,1] with `channels` and `size` (H, W) applied."""
    if len(images) == 0:
        raise ValueError(f"the {name} split has no images")
    if images.dtype == np.uint8:
        x = torch.from_numpy(images.astype(np.float32)).div_(255.0)  # astype copies: IDX arrays are read-only views
    elif images.dtype == np.bool_ or np.issubdtype(images.dtype, np.floating):
        x = torch.from_numpy(np.array(images, np.float32))
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name} images hold values outside [0, 1] (min {x.min().item():.4g}, max {x.max().item():.4g}); "
                             "scale floats to [0, 1] or save uint8 pixels")
    else:
        raise ValueError(f"{name} images are {images.dtype}; want uint8 pixels (0..255) or floats in [0, 1]")
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1).contiguous()
        elif x.shape[1] == 3 and channels == 1:
            x = torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA)).unsqueeze(1)
        else:
            raise ValueError(f"{name} images have {x.shape[1]} channels; --channels {channels} converts only 1 <-> 3")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        x = fit(x, size)
    return x


def fit(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Center-crop x [N,C,H,W] to the aspect ratio of size (H, W), then resize to it (antialiased bilinear),
    as Pillow's ImageOps.fit does for image files."""
    import torch.nn.functional as F

    (h, w), (th, tw) = x.shape[2:], size
    if h * tw > w * th:  # too tall for the target's aspect ratio: crop rows
        keep = max(1, round(w * th / tw))
        x = x[:, :, (h - keep) // 2:(h - keep) // 2 + keep]
    elif h * tw < w * th:
        keep = max(1, round(h * tw / th))
        x = x[:, :, :, (w - keep) // 2:(w - keep) // 2 + keep]
    return F.interpolate(x, size=(th, tw), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
