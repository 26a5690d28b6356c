"""Fashion-MNIST as two in-memory tensors, read by torchvision from a folder of IDX files.

Sources, in order: --data-dir; the Debian package's folder; torchvision's download. The whole set is
60k x 784 bytes, so it is held as one uint8 tensor and batches are sliced from it: no per-item PIL work.
"""

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import torch

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEVAE_CACHE", Path.home() / ".cache" / "edgevae"))


def find_idx(folder: Path, name: str) -> Path | None:
    """The raw or gzipped IDX file `name` in folder, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def prepare_torchvision_root(idx_dir: Path) -> Path:
    """Lay idx_dir's four IDX files out as torchvision expects (root/FashionMNIST/raw/, unzipped).

    Unzipped copies go to a cache folder keyed by idx_dir, written under a temporary name and renamed,
    so an interrupted run never leaves a truncated file that looks complete.
    """
    missing = [n for n in IDX_NAMES if find_idx(idx_dir, n) is None]
    if missing:
        raise FileNotFoundError(f"{idx_dir} lacks {', '.join(missing)} (raw or .gz)")
    root = cache_dir() / "torchvision" / str(idx_dir.resolve()).strip("/").replace("/", "_")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in IDX_NAMES:
        src, dst = find_idx(idx_dir, name), raw / name
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, tempfile.NamedTemporaryFile(dir=raw, delete=False) as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(fout.name, dst)
    return root


def load_split(root: Path, train: bool, download: bool = False):
    """(images float32 [N,1,28,28] in [0,1], labels int64 [N]) via torchvision's FashionMNIST."""
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(str(root), train=train, download=download)
    return ds.data.unsqueeze(1).float().div_(255.0), ds.targets.clone()


def load_fashion_mnist(data_dir: str | os.PathLike | None = None):
    """((train_x, train_y), (test_x, test_y)) from data_dir, the Debian folder, or a download.

    Raises FileNotFoundError naming every place tried when none works.
    """
    tried = []
    dirs = [Path(data_dir)] if data_dir is not None else [DEBIAN_DIR]
    for folder in dirs:
        try:
            root = prepare_torchvision_root(folder)
            return load_split(root, train=True), load_split(root, train=False)
        except (FileNotFoundError, RuntimeError) as err:
            tried.append(f"{folder}: {err}")
    if data_dir is None:
        root = cache_dir() / "torchvision" / "download"
        try:
            return load_split(root, True, download=True), load_split(root, False, download=True)
        except Exception as err:  # torchvision raises bare RuntimeErrors / URLErrors when offline
            tried.append(f"torchvision download to {root}: {err}")
    hint = "" if data_dir else " (or install the Debian package dataset-fashion-mnist)"
    raise FileNotFoundError("no Fashion-MNIST found; tried " + "; ".join(tried) + hint)


def binarize_fixed(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed, seeded Bernoulli draw of images: the binarized test set of published NLL tables."""
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))
