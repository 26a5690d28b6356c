"""Calibration data for static int8 quantization, from real Fashion-MNIST.

Encoder: training images. Decoder: z drawn from the encoder's posterior on those images (the latents the
decoder sees when reconstructing), z = mu + exp(logvar/2) * eps with a seeded eps.
"""

import numpy as np
from onnxruntime.quantization import CalibrationDataReader


class ArrayReader(CalibrationDataReader):
    """Feeds `array` to input `name` in batches of batch_size (the last one may be shorter),
    advancing a tqdm progress bar by the rows fed."""

    def __init__(self, name: str, array: np.ndarray, batch_size: int = 64, description: str = "calibrating"):
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


def training_images(data_dir, count: int, seed: int = 0) -> np.ndarray:
    """`count` training images (float32 [count,1,28,28] in [0,1]) picked by a seeded permutation."""
    from edgevae.train.data import load_fashion_mnist

    (train_x, _), _ = load_fashion_mnist(data_dir)
    pick = np.random.default_rng(seed).permutation(len(train_x))[:count]
    return train_x.numpy()[np.sort(pick)]


def test_images(data_dir, count: int) -> np.ndarray:
    """The first `count` test images (all of them when count exceeds the test set)."""
    from edgevae.train.data import load_fashion_mnist

    _, (test_x, _) = load_fashion_mnist(data_dir)
    return test_x.numpy()[:count]


def posterior_latents(encoder_session, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """One posterior draw z [N,D] per image through an fp32 encoder session (inputs x -> mu, logvar)."""
    mu, logvar = encoder_session.run(["mu", "logvar"], {"x": np.ascontiguousarray(images, np.float32)})
    eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)
    return (mu + np.exp(0.5 * logvar) * eps).astype(np.float32)
