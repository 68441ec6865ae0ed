"""The discretized logistic mixture likelihood: exact, normalised, stable."""

import itertools

import keras
import numpy as np
import pytest

from pixel_models.logistic_mixture import (
    LogisticMixtureBitsPerDim,
    LogisticMixtureNLL,
    logistic_mixture_nll,
    num_parameters,
)
from pixel_models.testing import gradient

# On JAX and PyTorch: the colour cases, the edges and the gradients (the
# grey cases run the same code with fewer channels).
EVERY_BACKEND = pytest.mark.every_backend


def _nll(x, params, levels):
    return keras.ops.convert_to_numpy(logistic_mixture_nll(x, params, levels))


def _reference_nll(x, params, levels):
    """The same likelihood in float64 NumPy, written from its definition:
    a difference of logistic CDFs per bin, the tails at the ends."""
    x = np.asarray(x, "float64")
    params = np.asarray(params, "float64")
    channels = x.shape[-1]
    k = params.shape[-1] // (1 + 2 * channels + channels * (channels - 1) // 2)
    rows = params.reshape(*params.shape[:-1], -1, k)
    logits = rows[..., 0, :]
    means = rows[..., 1 : 1 + channels, :]
    log_scales = np.maximum(rows[..., 1 + channels : 1 + 2 * channels, :], -7)
    coefficients = np.tanh(rows[..., 1 + 2 * channels :, :])
    values = 2 * x / (levels - 1) - 1
    half = 1 / (levels - 1)

    def cdf(t):
        return 1 / (1 + np.exp(-t))

    log_mixture = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    pairs = iter(range(coefficients.shape[-2]))
    for c in range(channels):
        mean = means[..., c, :].copy()
        for j in range(c):
            mean += coefficients[..., next(pairs), :] * values[..., j, None]
        v = values[..., c, None]
        scale = np.exp(log_scales[..., c, :])
        upper = np.where(v > 1 - half / 2, 1.0, cdf((v + half - mean) / scale))
        lower = np.where(v < -1 + half / 2, 0.0, cdf((v - half - mean) / scale))
        log_mixture = log_mixture + np.log(upper - lower)
    peak = log_mixture.max(-1)
    return -(peak + np.log(np.exp(log_mixture - peak[..., None]).sum(-1)))


@pytest.mark.parametrize(
    "channels, levels, k",
    [
        (1, 2, 1),
        (1, 256, 3),
        (3, 5, 2),
        pytest.param(3, 256, 4, marks=EVERY_BACKEND),
    ],
)
def test_the_nll_equals_a_numpy_computation_at_interior_and_edge_levels(
    channels, levels, k
):
    rng = np.random.default_rng(0)
    x = rng.integers(0, levels, (4, 3, 3, channels))
    # Both ends of the range in every channel, and a level next to each.
    x[0, 0, 0] = 0
    x[0, 0, 1] = levels - 1
    x[0, 0, 2] = min(1, levels - 1)
    x[0, 1, 0] = max(levels - 2, 0)
    params = rng.normal(size=(4, 3, 3, num_parameters(channels, k)))
    params *= 0.8
    got = _nll(x.astype("float32"), params.astype("float32"), levels)
    want = _reference_nll(x, params, levels)
    assert got.shape == (4, 3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "channels, levels",
    [(1, 2), (1, 256), (2, 7), pytest.param(3, 4, marks=EVERY_BACKEND)],
)
def test_every_pixel_s_probabilities_sum_to_one(channels, levels):
    # One pixel's parameters; every value of the pixel (levels ** C of
    # them): the colour order lives in the coefficients, so a wrong
    # coefficient or a tail counted twice shows here.
    rng = np.random.default_rng(1)
    params = rng.normal(size=num_parameters(channels, 3)).astype("float32")
    params[3:] *= 2.0  # means, scales and coefficients well spread
    grid = np.array(
        list(itertools.product(range(levels), repeat=channels)), "float32"
    )
    x = grid.reshape(len(grid), 1, 1, channels)
    batch = np.broadcast_to(params, (len(grid), 1, 1, params.size))
    total = np.exp(-_nll(x, np.ascontiguousarray(batch), levels)).sum()
    np.testing.assert_allclose(total, 1.0, atol=1e-4)


@EVERY_BACKEND
def test_a_hand_made_colour_example():
    # One component with scale e^-7 (a point mass, in effect): R at 1,
    # G's mean 0 moved by tanh(a) * R: with a = atanh(0.5) and R = 1, G's
    # mass sits at 0.5; B at -1. Levels 5: values -1, -.5, 0, .5, 1.
    params = np.zeros(num_parameters(3, 1), "float32")
    params[1:4] = [1.0, 0.0, -1.0]  # means of R, G, B
    params[4:7] = -7.0  # log scales
    params[7:10] = [np.arctanh(0.5), 0.0, 0.0]  # G <- R; B <- R, G
    params = params.reshape(1, 1, 1, -1)
    certain = np.array([[[[4, 3, 0]]]], "float32")  # R = 1, G = .5, B = -1
    assert _nll(certain, params, 5)[0, 0, 0] == pytest.approx(0.0, abs=1e-5)
    # G one level off its moved mean: a bin thousands of scales away.
    off = np.array([[[[4, 2, 0]]]], "float32")
    assert _nll(off, params, 5)[0, 0, 0] > 100


@EVERY_BACKEND
def test_tiny_bins_get_their_exact_log_and_finite_gradients():
    # Level 0 of 256 under a component at 0.9 with scale e^-7: the bin is
    # ~2000 scales away, probability ~e^-2000, 0 as a difference of CDFs.
    levels = 256
    params = np.array([0.0, 0.9, -7.0], "float32").reshape(1, 1, 1, 3)
    x = np.full((1, 1, 1, 1), 3.0, "float32")  # an interior level
    nll = _nll(x, params, levels)[0, 0, 0]
    # Far in the left tail both CDFs are e^t to double precision:
    # log(e^u - e^l) = l + log(expm1(u - l)).
    inv = np.exp(7.0)
    value = 2 * 3 / (levels - 1) - 1
    upper = (value + 1 / (levels - 1) - 0.9) * inv
    lower = (value - 1 / (levels - 1) - 0.9) * inv
    want = -(lower + np.log(np.expm1(upper - lower)))
    assert np.isfinite(nll) and nll > 1000
    np.testing.assert_allclose(nll, want, rtol=1e-5)

    def loss(p):
        return keras.ops.sum(logistic_mixture_nll(x, p, levels))

    grad = gradient(loss, params)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


@EVERY_BACKEND
def test_finite_gradients_at_logits_of_1e4_and_extreme_parameters():
    rng = np.random.default_rng(2)
    params = rng.normal(size=(2, 2, 2, num_parameters(3, 4))).astype("float32")
    params[..., :4] = [1e4, -1e4, 0.0, 1e4]  # component logits
    params[0, 0, 0, 4:16] = 60.0  # means far outside [-1, 1]
    params[0, 0, 1, 16:28] = -50.0  # log scales below the floor
    params[0, 1, 0, 16:28] = 12.0  # very wide components
    x = rng.integers(0, 256, (2, 2, 2, 3)).astype("float32")
    x[0, 0, 0] = [0, 255, 128]

    def loss(p):
        return keras.ops.sum(logistic_mixture_nll(x, p, 256))

    value = _nll(x, params, 256)
    grad = gradient(loss, params)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))


@EVERY_BACKEND
def test_loss_and_metric_are_per_sub_pixel_and_round_trip():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, (2, 3, 3, 3)).astype("float32")
    params = rng.normal(size=(2, 3, 3, num_parameters(3, 2))).astype("float32")
    per_pixel = _nll(x, params, 4)
    loss = LogisticMixtureNLL(4)
    expected = per_pixel.sum() / x.size  # nats per sub-pixel
    assert float(loss(x, params)) == pytest.approx(expected, rel=1e-5)
    metric = LogisticMixtureBitsPerDim(4)
    metric.update_state(x, params)
    assert metric.name == "bits_per_dim"
    assert float(metric.result()) == pytest.approx(
        expected / np.log(2), rel=1e-5
    )
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, LogisticMixtureNLL) and again.levels == 4
    metric_again = LogisticMixtureBitsPerDim.from_config(metric.get_config())
    assert metric_again.levels == 4


def test_wrong_sizes_name_the_argument():
    x = np.zeros((1, 2, 2, 3), "float32")
    with pytest.raises(ValueError, match=r"multiple of 10.*shape\[-1\]=15"):
        logistic_mixture_nll(x, np.zeros((1, 2, 2, 15), "float32"), 256)
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        LogisticMixtureNLL(1)
    with pytest.raises(ValueError, match="num_mixtures"):
        num_parameters(3, 0)
