"""Fast and naive sampling: exactness, noise sharing, arguments."""

import keras
import numpy as np
import pytest

from pixel_models.models import build_model, build_pixelcnn
from pixel_models.sampling import draw, sample, sample_with_logits

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]


def _model(family, shape, levels, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_model(family, shape, levels, num_layers=2, width=6)
    # Random non-trivial weights: biases and every kernel entry in play.
    rng = np.random.default_rng(seed)
    model.set_weights(
        [0.5 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    return model


@pytest.mark.every_backend
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape, levels", [((5, 6, 1), 2), ((4, 5, 3), 5)])
def test_fast_equals_naive_and_the_full_forward_pass(family, shape, levels):
    model = _model(family, shape, levels)
    noise = np.random.default_rng(1).random((3, *shape))
    fast_x, fast_logits = sample_with_logits(model, noise, progress=False)
    naive_x, naive_logits = sample_with_logits(
        model, noise, method="naive", progress=False
    )
    np.testing.assert_allclose(fast_logits, naive_logits, atol=1e-4)
    assert np.mean(fast_x == naive_x) >= 0.999
    # The fast logits are the model's own logits of the finished images.
    np.testing.assert_allclose(
        fast_logits, keras.ops.convert_to_numpy(model(fast_x)), atol=1e-4
    )
    assert fast_x.min() >= 0 and fast_x.max() <= levels - 1
    assert len(np.unique(fast_x)) > 1


def test_draw_is_the_inverse_cdf():
    logits = np.log(np.array([[0.2, 0.3, 0.5]] * 4))
    noise = np.array([0.1, 0.25, 0.6, 0.999])
    np.testing.assert_array_equal(draw(logits, noise), [0, 1, 2, 2])
    # Nucleus 0.5: only the most likely value is left.
    np.testing.assert_array_equal(draw(logits, noise, top_p=0.5), [2] * 4)
    # Nucleus 0.8: values 2 and 1, renormalised to 0.625 and 0.375.
    np.testing.assert_array_equal(draw(logits, noise, top_p=0.8), [1, 1, 2, 2])
    # A low temperature picks the most likely value.
    np.testing.assert_array_equal(
        draw(logits, noise, temperature=1e-3), [2] * 4
    )


def test_sample_is_seeded_uint8_and_batch_invariant():
    model = _model("pixelcnn", (4, 4, 1), 2)
    a = sample(model, 5, seed=3, progress=False)
    b = sample(model, 5, seed=3, batch_size=2, progress=False)
    c = sample(model, 5, seed=4, progress=False)
    assert a.dtype == np.uint8 and a.shape == (5, 4, 4, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    naive = sample(model, 5, seed=3, method="naive", progress=False)
    assert np.mean(naive == a) >= 0.999


def test_sampling_a_reloaded_model(tmp_path):
    model = _model("diagonal_bilstm", (4, 4, 3), 4)
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        sample(reloaded, 2, seed=0, progress=False),
        sample(model, 2, seed=0, progress=False),
    )


def test_progress_bar_is_shown(capsys):
    model = _model("pixelcnn", (3, 3, 1), 2)
    sample(model, 1, seed=0, progress=True)
    assert "9/9" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0), "temperature=0"),
        (dict(temperature=-1.0), "temperature=-1.0"),
        (dict(top_p=0), "top_p=0"),
        (dict(top_p=1.5), "top_p=1.5"),
        (dict(method="beam"), "method='beam'"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(num_samples=0), "num_samples=0"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    model = build_pixelcnn((3, 3, 1), 2, num_layers=1, filters=2)
    kwargs = {"num_samples": 1, **kwargs}
    with pytest.raises(ValueError, match="Received") as info:
        sample(model, kwargs.pop("num_samples"), progress=False, **kwargs)
    assert message in str(info.value)


def test_model_without_logits_is_refused():
    inputs = keras.Input((3, 3, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with pytest.raises(ValueError, match="output_shape"):
        sample(model, 1, progress=False)


def test_unknown_layer_is_refused_by_fast_but_not_naive():
    inputs = keras.Input((3, 3, 1))
    x = keras.layers.Activation("tanh")(inputs)
    x = keras.layers.Conv2D(2, 1)(x)
    model = keras.Model(inputs, keras.layers.Reshape((3, 3, 1, 2))(x))
    with pytest.raises(ValueError, match="method='naive'"):
        sample(model, 1, progress=False)
    assert sample(model, 1, method="naive", progress=False).shape == (
        1,
        3,
        3,
        1,
    )
