"""Every family with `output="logistic_mixture"`: causal, normalised,
trained with its own loss, saved and loaded as itself."""

import itertools

import keras
import numpy as np
import pytest

from pixel_models.evaluation import log_prob, log_prob_map
from pixel_models.logistic_mixture import (
    LogisticMixtureNLL,
    logistic_mixture_nll,
    num_parameters,
)
from pixel_models.models import build_model
from pixel_models.sampling import sample_with_logits
from pixel_models.testing import (
    assert_causal,
    assert_reloads_in_fresh_process,
    assert_samples_follow_their_logits,
)

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]
# On JAX and PyTorch, the colour Gated PixelCNN (sampling and scoring run
# the same mixture code for every family).
EVERY_BACKEND = pytest.mark.every_backend


def _mixture_model(family, shape, levels, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = build_model(
        family,
        shape,
        levels,
        num_layers=2,
        width=4,
        output="logistic_mixture",
        num_mixtures=3,
        **kwargs,
    )
    rng = np.random.default_rng(seed)
    model.set_weights(
        [0.5 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    return model


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_mixture_parameters_see_only_earlier_pixels(family, channels):
    # Every parameter of a pixel, all channels together: nothing of the
    # pixel itself (the colour order is in the coefficients).
    shape = (4, 5, channels)
    model = _mixture_model(family, shape, 256)
    assert model.output_shape == (None, 4, 5, num_parameters(channels, 3))
    assert model.likelihood == "logistic_mixture" and model.num_mixtures == 3
    x = np.random.default_rng(1).random((1, *shape)).astype("float32")
    assert_causal(model, 255 * x, color_channels=1, strict=True)


def _every_image(shape, levels):
    values = itertools.product(range(levels), repeat=int(np.prod(shape)))
    return np.array(list(values), "float32").reshape(-1, *shape)


@pytest.mark.parametrize(
    "family, shape, levels",
    [
        pytest.param(
            "gated_pixelcnn", (1, 2, 3), 3, marks=pytest.mark.every_backend
        ),
        ("diagonal_bilstm", (2, 2, 1), 4),
        ("pixelcnn", (2, 2, 1), 2),
        ("row_lstm", (1, 2, 3), 2),
    ],
)
def test_every_image_s_probabilities_sum_to_one(family, shape, levels):
    model = _mixture_model(family, shape, levels)
    images = _every_image(shape, levels)
    # One batch of every image: one shape for the backends that compile
    # per shape.
    terms = log_prob_map(model, images, batch_size=len(images))
    p = np.exp(terms.reshape(len(images), -1).sum(-1))
    assert p.sum() == pytest.approx(1.0, abs=1e-3)
    assert np.ptp(p) > 0.5 * p.mean()  # not uniform: not 1 by symmetry
    # The sub-pixel terms are the chain rule of the pixel's mixture.
    params = model.predict_on_batch(images)
    whole = -keras.ops.convert_to_numpy(
        logistic_mixture_nll(images, params, levels)
    )
    np.testing.assert_allclose(terms.sum(-1), whole, rtol=1e-5, atol=1e-5)


def test_compile_defaults_train_the_mixture_and_it_reloads(tmp_path):
    model = _mixture_model("pixelcnn", (6, 6, 3), 16, num_classes=2)
    model.compile()
    assert isinstance(model.loss, LogisticMixtureNLL)
    assert model.loss.levels == 16
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, (16, 6, 6, 3)).astype("float32")
    labels = rng.integers(0, 2, 16)
    history = model.fit([x, labels], x, epochs=4, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert set(history.history) == {"loss", "bits_per_dim"}
    np.testing.assert_allclose(
        history.history["bits_per_dim"][-1] * np.log(2),
        losses[-1],
        rtol=1e-4,
    )
    # Scored per image, and the same after a reload in a fresh process.
    score = model.evaluate([x, labels], x, verbose=0, return_dict=True)
    nll = -log_prob(model, x, labels=labels).mean() / x[0].size
    assert score["loss"] == pytest.approx(nll, rel=1e-4)
    reloaded = assert_reloads_in_fresh_process(
        model, [x[:2], labels[:2]], tmp_path / "mixture.keras"
    )
    assert type(reloaded) is type(model)
    assert reloaded.likelihood == "logistic_mixture"
    assert isinstance(reloaded.loss, LogisticMixtureNLL)


def test_mixture_arguments_are_checked():
    with pytest.raises(ValueError, match="output must be one of.*'softmax'"):
        build_model("pixelcnn", (4, 4, 1), 2, output="softmax")
    with pytest.raises(ValueError, match="Received: num_mixtures=5"):
        build_model("pixelcnn", (4, 4, 1), 2, num_mixtures=5)
    with pytest.raises(ValueError, match="num_mixtures must be an integer"):
        build_model(
            "row_lstm", (4, 4, 1), 2, output="logistic_mixture", num_mixtures=0
        )
    # One mask group: widths need not divide by 3 for colour.
    model = build_model(
        "gated_pixelcnn",
        (4, 4, 3),
        256,
        num_layers=1,
        width=4,
        output="logistic_mixture",
    )
    assert model.num_mixtures == 10
    assert model.output_shape[-1] == num_parameters(3, 10) == 100


@pytest.mark.parametrize(
    "family, shape",
    [
        pytest.param("gated_pixelcnn", (2, 3, 3), marks=EVERY_BACKEND),
        ("diagonal_bilstm", (3, 4, 1)),
    ],
)
def test_fast_sampling_equals_naive_and_follows_the_mixture(family, shape):
    # The mixture's draw is the samplers' own, whatever the family: one
    # convolutional and one recurrent family, colour and grey, stand for
    # all (each family's steps are checked by test_sampling.py).
    # Each channel drawn from its distribution given the pixel's earlier
    # channels: exactly the discretized mixture, from the shared noise.
    levels = 7
    model = _mixture_model(family, shape, levels, num_classes=2)
    noise = np.random.default_rng(1).random((3, *shape))
    labels = np.array([0, 1, 1])
    fast_x, fast_logits = sample_with_logits(
        model, noise, labels=labels, progress=False
    )
    naive_x, naive_logits = sample_with_logits(
        model, noise, labels=labels, method="naive", progress=False
    )
    # A bin's log p moves with its mean times the inverse scale (up to
    # e^7): float32 rounding of the two paths shows at 1e-4.
    np.testing.assert_allclose(fast_logits, naive_logits, atol=1e-3)
    np.testing.assert_array_equal(fast_x, naive_x)
    assert fast_logits.shape == (3, *shape, levels)
    assert_samples_follow_their_logits(
        model, noise, fast_x, fast_logits, labels=labels, atol=1e-3
    )
    assert len(np.unique(fast_x)) > 2
    # The logits are each sub-pixel's exact log p: they add up to log_prob.
    picked = np.take_along_axis(fast_logits, fast_x[..., None].astype(int), -1)[
        ..., 0
    ]
    np.testing.assert_allclose(
        picked.reshape(3, -1).sum(-1),
        log_prob(model, fast_x, labels=labels),
        rtol=1e-4,
        atol=1e-4,
    )
