"""Per-image likelihoods (`log_prob`, `bits_per_dim`) and image completion."""

import math

import keras
import numpy as np
import pytest

from pixel_models.evaluation import bits_per_dim, log_prob
from pixel_models.models import build_model
from pixel_models.sampling import (
    complete,
    sample,
    sample_fast,
    sample_naive,
)
from pixel_models.testing import assert_samples_follow_their_logits
from pixel_models.training import compile_model

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]


def _model(family, shape, levels, seed=0, num_classes=None):
    keras.utils.set_random_seed(seed)
    model = build_model(
        family, shape, levels, num_layers=2, width=6, num_classes=num_classes
    )
    rng = np.random.default_rng(seed)
    model.set_weights(
        [0.5 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    return model


def _log_softmax_of(logits, values):
    """Sum over sub-pixels of log softmax(logits)[value], in float64."""
    z = np.asarray(logits, "float64")
    z = z - z.max(-1, keepdims=True)
    z = z - np.log(np.exp(z).sum(-1, keepdims=True))
    index = np.asarray(values, "int64")[..., None]
    picked = np.take_along_axis(z, index, -1)[..., 0]
    return picked.reshape(len(values), -1).sum(-1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape, levels", [((5, 6, 1), 2), ((4, 5, 3), 5)])
def test_log_prob_is_the_log_softmax_of_the_model_s_logits(
    family, shape, levels
):
    # The model's logits of the images are those a sampler draws each
    # sub-pixel from (`assert_samples_follow_their_logits`).
    model = _model(family, shape, levels)
    x = np.random.default_rng(1).integers(0, levels, (3, *shape))
    x = x.astype("float32")
    logits = keras.ops.convert_to_numpy(model(x))
    scored = log_prob(model, x, batch_size=2)
    assert scored.dtype == np.float64 and scored.shape == (3,)
    np.testing.assert_allclose(scored, _log_softmax_of(logits, x), atol=1e-3)
    assert np.all(scored < 0)


@pytest.mark.parametrize("family", ["pixelcnn", "diagonal_bilstm"])
def test_mean_log_prob_is_the_evaluated_nll(family):
    shape, levels = (4, 5, 3), 5
    model = compile_model(_model(family, shape, levels))
    x = np.random.default_rng(2).integers(0, levels, (10, *shape))
    x = x.astype("float32")
    nats_per_dim = model.evaluate(x, x, batch_size=4, verbose=0)[0]
    dims = math.prod(shape)
    nll = -log_prob(model, x, batch_size=3)
    assert nll.mean() == pytest.approx(nats_per_dim * dims, rel=1e-5)
    np.testing.assert_allclose(
        bits_per_dim(model, x), nll / (dims * math.log(2)), rtol=1e-6
    )


def test_log_prob_of_a_conditional_model_uses_the_labels():
    model = _model("gated_pixelcnn", (4, 4, 1), 2, num_classes=3)
    x = np.random.default_rng(0).integers(0, 2, (4, 4, 4, 1))
    a = log_prob(model, x, labels=[0, 1, 2, 0])
    b = log_prob(model, x, labels=0)
    assert a[0] == b[0] and a[3] == b[3] and a[1] != b[1]
    with pytest.raises(ValueError, match="labels=None"):
        log_prob(model, x)
    with pytest.raises(ValueError, match="not class-conditional"):
        log_prob(_model("pixelcnn", (4, 4, 1), 2), x, labels=0)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 4, 5, 1)), r"shape \(n, 4, 4, 1\).*\(2, 4, 5, 1\)"),
        (np.zeros((4, 4, 1)), r"shape \(n, 4, 4, 1\)"),
        (np.full((1, 4, 4, 1), 2), r"\[0, 1\].*2 levels.*\[2, 2\]"),
        (np.full((1, 4, 4, 1), -1), r"\[0, 1\]"),
        (np.full((1, 4, 4, 1), 0.5), "not all integers"),
    ],
)
def test_bad_images_are_refused(images, message):
    model = _model("pixelcnn", (4, 4, 1), 2)
    with pytest.raises(ValueError, match=message):
        log_prob(model, images)


@pytest.mark.parametrize("family", FAMILIES)
def test_completion_keeps_the_given_pixels_and_is_exact(family):
    shape, levels = (4, 5, 3), 5
    model = _model(family, shape, levels)
    rng = np.random.default_rng(3)
    images = rng.integers(0, levels, (2, *shape)).astype("float32")
    mask = rng.random((2, *shape[:2])) < 0.5
    noise = rng.random(images.shape)
    fast, fast_logits = sample_fast(
        model, noise, None, 1.0, None, False, given=(images, mask)
    )
    np.testing.assert_array_equal(fast[mask], images[mask])
    assert_samples_follow_their_logits(
        model, noise, fast, fast_logits, known=mask
    )
    if family == "pixelcnn":
        naive, _ = sample_naive(
            model, noise, None, 1.0, None, False, given=(images, mask)
        )
        np.testing.assert_array_equal(fast, naive)


def test_complete_top_rows():
    shape, levels = (6, 5, 3), 4
    model = _model("gated_pixelcnn", shape, levels)
    images = np.random.default_rng(0).integers(0, levels, (2, *shape))
    out = complete(model, images, 2, num_completions=3, seed=0, progress=False)
    assert out.shape == (2, 3, *shape) and out.dtype == np.uint8
    np.testing.assert_array_equal(
        out[:, :, :2], np.repeat(images[:, None, :2], 3, axis=1)
    )
    # Different completions of the same image, and a repeatable seed.
    assert np.any(out[0, 0, 2:] != out[0, 1, 2:])
    again = complete(model, images, 2, num_completions=3, seed=0, progress=0)
    np.testing.assert_array_equal(out, again)
    # Nothing given: the samples of `sample` with the same seed.
    none = complete(model, images, 0, seed=5, progress=False)[:, 0]
    np.testing.assert_array_equal(none, sample(model, 2, seed=5, progress=0))
    # Everything given: the images themselves.
    every = complete(model, images, shape[0], progress=False)[:, 0]
    np.testing.assert_array_equal(every, images)


def test_complete_with_a_mask_and_labels():
    shape = (5, 5, 1)
    model = _model("pixelcnn", shape, 2, num_classes=2)
    images = np.ones((2, *shape), "uint8")
    hole = np.ones(shape[:2], bool)
    hole[1:4, 1:4] = False
    out = complete(model, images, hole, labels=[0, 1], seed=1, progress=False)
    np.testing.assert_array_equal(out[:, 0][:, hole], images[:, hole])


@pytest.mark.parametrize(
    "known, kwargs, message",
    [
        (7, {}, r"rows in \[0, 6\].*known=7"),
        (-1, {}, r"rows in \[0, 6\]"),
        (True, {}, "known must be an int"),
        (np.ones((5, 5), bool), {}, r"shape \(6, 5\).*\(5, 5\)"),
        (np.ones((6, 5), int), {}, "boolean mask.*int64"),
        (2, {"num_completions": 0}, "num_completions"),
        (2, {"labels": 1}, "not class-conditional"),
    ],
)
def test_bad_completion_arguments_are_refused(known, kwargs, message):
    model = _model("pixelcnn", (6, 5, 1), 2)
    images = np.zeros((2, 6, 5, 1))
    with pytest.raises(ValueError, match=message):
        complete(model, images, known, progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"shape \(n, 6, 5, 1\)"):
        complete(model, images[:, :3], 2, progress=False)
