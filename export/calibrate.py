"""Calibration data for static int8 quantization, from the images the model was trained on (its dataset spec).

Encoder: training images. Decoder: z drawn from the encoder's posterior on those images (the latents the
decoder sees when reconstructing), z = mu + exp(logvar/2) * eps with a seeded eps.
"""

import functools

import numpy as np
from onnxruntime.quantization import CalibrationDataReader


class ArrayReader(CalibrationDataReader):
    """Feeds `array` to input `name` in batches of batch_size (the last one may be shorter),
    advancing a tqdm progress bar by the rows fed."""

    def __init__(self, name: str, array: np.ndarray, *, batch_size: int = 64, description: str = "calibrating"):
        if batch_size < 1:
            raise ValueError(f"calibration batch_size {batch_size} must be >= 1")
        if len(array) == 0:
            raise ValueError(f"calibration data for {name!r} is empty")
        self.name, self.array, self.batch_size, self.description = name, np.ascontiguousarray(array, np.float32), batch_size, description
        self.start, self.bar = 0, None

    def get_next(self) -> dict | None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=len(self.array), desc=self.description, unit="img", leave=False)
        if self.start >= len(self.array):
            self.bar.close()
            return None
        batch = self.array[self.start:self.start + self.batch_size]
        self.start += len(batch)
        self.bar.update(len(batch))
        return {self.name: batch}

    def rewind(self) -> None:
        self.start, self.bar = 0, None


def data_for(manifest, data=None):
    """The DataConfig of a model dir's calibration and test images: the dataset spec it was trained on (its
    manifest's training.train_config; Fashion-MNIST when it has none) with data's fields (a DataOverrides)
    replaced, every image cropped/resized and converted to the model's image_shape (a no-op for the training
    data). A DataConfig is taken as it is (an API caller's)."""
    from edgevae.train.data import DataConfig, DataOverrides

    if isinstance(data, DataConfig):
        return data
    training = getattr(manifest, "training", None)
    train_config = dict(getattr(training, "train_config", None) or {})
    c, h, w = manifest.image_shape
    return (data or DataOverrides()).apply(train_config, image_size=f"{h}x{w}", channels=c)


def images_of(data):
    """ImageData of data: a DataConfig, or (as before dataset specs) a Fashion-MNIST IDX folder or None."""
    from edgevae.train.data import DataConfig

    return _load(data if isinstance(data, DataConfig) else DataConfig(data_dir=data))


@functools.lru_cache(maxsize=1)  # quantize asks for training and test images of the same data
def _load(config):
    from edgevae.train.data import load_images

    return load_images(config)


def binarized(manifest) -> bool:
    """Whether the model was trained on binarized images (`edgevae train --binarize`): then it is calibrated
    and measured on binarized images too, as it is trained and evaluated."""
    training = getattr(manifest, "training", None)
    return bool((getattr(training, "train_config", None) or {}).get("binarize"))


def training_images(data, count: int, *, seed: int = 0, binarize: bool = False) -> np.ndarray:
    """`count` training images (float32 [count,C,H,W] in [0,1]) picked by a seeded permutation; with
    binarize, one seeded Bernoulli draw of each (training binarizes dynamically)."""
    train_x = images_of(data).train
    rng = np.random.default_rng(seed)
    images = train_x.numpy()[np.sort(rng.permutation(len(train_x))[:count])]
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32) if binarize else images


def posterior_latents(graphs, images: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """One posterior draw z [N, *latent] per image through the encoder of graphs (an fp32 GraphPair: x -> mu,
    logvar; or x -> z for a deterministic encoder, whose latent is returned as it is), all images in one call."""
    from edgevae.runtime.inference.latent import reparameterize, rng_of, standard_normal

    mu, logvar = graphs.encode(np.ascontiguousarray(images, np.float32), rows=max(1, len(images)))
    if logvar is None:
        return mu
    return reparameterize(mu, logvar, eps=standard_normal(rng_of(seed), mu.shape))
