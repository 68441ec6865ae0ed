import math

import keras
import numpy as np
import pytest

from pixel_models.losses import (
    BitsPerDim,
    DiscreteNLL,
    bits_per_dim_to_nats_per_image,
    discrete_nll,
    nats_per_image,
    nats_to_bits_per_dim,
)


def test_uniform_logits_give_log_levels():
    x = np.zeros((2, 3, 3, 3), "float32")
    for levels in (2, 256):
        logits = np.zeros((2, 3, 3, 3, levels), "float32")
        nll = keras.ops.convert_to_numpy(discrete_nll(x, logits))
        np.testing.assert_allclose(nll, math.log(levels), rtol=1e-6)
    assert abs(nats_to_bits_per_dim(math.log(256)) - 8.0) < 1e-12


def test_nll_picks_the_true_pixel_value():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 2, 3, 1, 5)).astype("float32")
    x = rng.integers(0, 5, size=(2, 2, 3, 1)).astype("float32")
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_p, x[..., None].astype(int), -1)[..., 0]
    np.testing.assert_allclose(discrete_nll(x, logits), expected, rtol=1e-5)
    np.testing.assert_allclose(
        float(DiscreteNLL()(x, logits)), expected.mean(), rtol=1e-5
    )


def test_bits_per_dim_metric_weighs_images_equally():
    m = BitsPerDim()
    x = np.zeros((1, 2, 2, 1), "float32")
    m.update_state(x, np.zeros((1, 2, 2, 1, 256), "float32"))  # 8 bits
    m.update_state(x, np.zeros((1, 2, 2, 1, 2), "float32"))  # 1 bit
    np.testing.assert_allclose(float(m.result()), 4.5, rtol=1e-6)
    assert m.name == "bits_per_dim"


def test_unit_conversions():
    assert nats_per_image(0.1, (28, 28, 1)) == 0.1 * 784
    np.testing.assert_allclose(
        bits_per_dim_to_nats_per_image(1.0, (2, 2, 1)), 4 * math.log(2)
    )


@pytest.mark.tensorflow_only
def test_discrete_nll_matches_cross_entropy_and_its_gradient():
    import tensorflow as tf

    from pixel_models.losses import discrete_nll

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(2, 3, 4, 3, 256)).astype("float32")
    # Far apart and very large logits must not overflow.
    logits[0, 0, 0, 0, :2] = [1e4, -1e4]
    x = rng.integers(0, 256, size=(2, 3, 4, 3)).astype("float32")
    x[0, 0, 0, 0] = 1.0
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        nll = discrete_nll(x, logits)
    grad = tape.gradient(nll, logits).numpy()
    expected = tf.nn.sparse_softmax_cross_entropy_with_logits(
        x.astype("int32"), logits
    ).numpy()
    np.testing.assert_allclose(nll.numpy(), expected, rtol=1e-5, atol=1e-4)
    assert nll.numpy()[0, 0, 0, 0] == pytest.approx(2e4)
    softmax = tf.nn.softmax(logits).numpy()
    one_hot = np.eye(256, dtype="float32")[x.astype("int32")]
    np.testing.assert_allclose(grad, softmax - one_hot, atol=1e-6)
