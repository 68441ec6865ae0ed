"""The probabilities a model gives every image of a tiny shape sum to 1.

An autoregressive model is normalised exactly when each sub-pixel's
distribution depends on the sub-pixels before it only: a causal leak (a
sub-pixel that sees itself or a later one) breaks the sum. This is the
causality test that runs on every backend; the Jacobian and receptive
field tests, which say where a leak is, run on TensorFlow.
"""

import itertools

import keras
import numpy as np
import pytest

from pixel_models.evaluation import log_prob
from pixel_models.layers import MaskedConv2D
from pixel_models.models import build_model

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]


def every_image(shape, levels):
    """All `levels ** prod(shape)` images of `shape`, `(N, *shape)`."""
    values = itertools.product(range(levels), repeat=int(np.prod(shape)))
    return np.array(list(values), "float32").reshape(-1, *shape)


def total_probability(model, shape, levels, labels=None):
    images = every_image(shape, levels)
    if labels is not None:
        labels = np.full(len(images), labels)
    return float(np.exp(log_prob(model, images, labels=labels)).sum())


def _randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


@pytest.mark.every_backend
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "shape, levels",
    [((2, 3, 1), 2), ((2, 2, 1), 3), ((1, 2, 3), 2)],
    ids=["grey-2", "grey-3", "colour-2"],
)
def test_every_image_s_probabilities_sum_to_one(family, shape, levels):
    keras.utils.set_random_seed(0)
    model = build_model(family, shape, levels, num_layers=2, width=6)
    model = _randomized(model)
    assert total_probability(model, shape, levels) == pytest.approx(1, 1e-4)
    # Far from uniform, so the sum is not 1 by symmetry.
    p = np.exp(log_prob(model, every_image(shape, levels)))
    assert p.max() > 3 * p.mean()


@pytest.mark.every_backend
def test_a_class_conditional_model_is_normalised_for_every_class():
    keras.utils.set_random_seed(0)
    shape = (1, 2, 3)
    model = build_model(
        "gated_pixelcnn", shape, 2, num_layers=2, width=6, num_classes=3
    )
    model = _randomized(model)
    for label in range(3):
        total = total_probability(model, shape, 2, labels=label)
        assert total == pytest.approx(1, 1e-4)


@pytest.mark.parametrize("shape", [(2, 3, 1), (1, 2, 3)])
def test_a_leak_breaks_the_sum(shape):
    # The check can fail: a first layer with mask B lets each sub-pixel
    # see itself.
    keras.utils.set_random_seed(0)
    colours, levels = shape[-1], 2
    pixels = keras.Input(shape)
    x = MaskedConv2D(6, 3, "B", colours)(pixels)
    x = MaskedConv2D(colours * levels, 1, "B", colours)(x)
    logits = keras.layers.Reshape((*shape, levels))(x)
    model = _randomized(keras.Model(pixels, logits))
    assert abs(total_probability(model, shape, levels) - 1) > 0.05
