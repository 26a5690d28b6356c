"""The one random input of a graph (runtime/inference/random_input.py): the contract's shapes for any batch and
image size, the model's pixel range, N(0, I) latents, seeded."""

import dataclasses

import numpy as np
import pytest

from edgevae.runtime.contract.manifest import Conventions, ModelDir
from edgevae.runtime.inference.random_input import random_input


def test_inputs_of_the_shipped_model_follow_its_manifest(shipped):
    images, z = random_input(shipped, "encoder", 3), random_input(shipped, "decoder", 5)
    assert images.shape == (3, *shipped.image_shape) and z.shape == (5, *shipped.latent_shape)
    assert images.dtype == z.dtype == np.float32
    assert 0.0 <= images.min() and images.max() < 1.0  # pixel_range [0, 1]
    np.testing.assert_array_equal(random_input(shipped, "decoder", 5, seed=0), z)  # seeded
    assert not np.array_equal(random_input(shipped, "decoder", 5, seed=1), z)
    rng = np.random.default_rng(0)
    first, second = random_input(shipped, "decoder", 5, rng), random_input(shipped, "decoder", 5, rng)
    np.testing.assert_array_equal(first, z)  # a Generator is drawn from: one stream for several inputs
    assert not np.array_equal(first, second)


def test_a_fully_convolutional_model_gets_latents_for_the_image_size_and_pixels_in_its_range(shipped):
    conventions = Conventions(pixel_range=(-1.0, 1.0), decoder_head="gaussian_mean", decoder_scale=0.1, downsampling=4)
    manifest = dataclasses.replace(shipped.manifest, latent_shape=(4, 7, 7), latent_dim=196, conventions=conventions)
    model = ModelDir(shipped.path, manifest)
    assert random_input(model, "decoder", 2).shape == (2, 4, 7, 7)
    assert random_input(model, "decoder", 2, image_hw=(32, 48)).shape == (2, 4, 8, 12)
    images = random_input(model, "encoder", 64, image_hw=(32, 48))
    assert images.shape == (64, 1, 32, 48) and images.dtype == np.float32
    assert -1.0 <= images.min() < -0.9 and 0.9 < images.max() < 1.0  # uniform over [-1, 1), not [0, 1)
    api_images = random_input(model, "encoder", 64, for_api=True)  # what VAERuntime.encode takes: [0, 1)
    assert 0.0 <= api_images.min() < 0.1 and 0.9 < api_images.max() < 1.0


def test_an_unknown_graph_is_refused(shipped):
    with pytest.raises(ValueError, match="graph must be one of encoder, decoder, got 'decodr'"):
        random_input(shipped, "decodr", 1)
