import keras
import numpy as np
import pytest

from pixel_models.layers import FastDropout

SHAPE = (16, 28, 28, 32)  # 401,408 values


def _dropped(rate, seed=0, shape=SHAPE):
    layer = FastDropout(rate, seed=seed)
    y = layer(keras.ops.ones(shape), training=True)
    return keras.ops.convert_to_numpy(y)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_values_are_dropped_at_the_rate_and_the_rest_scaled(rate):
    y = _dropped(rate)
    dropped = y == 0
    # Binomial standard deviation at most 0.0008 here: 0.004 is 5 of them.
    assert abs(dropped.mean() - rate) < 0.004
    threshold = round(rate * 65536)
    np.testing.assert_allclose(y[~dropped], 65536 / (65536 - threshold))
    assert abs(y.mean() - 1.0) < 0.01


def test_the_two_halves_of_each_random_word_decide_independently():
    # Neighbouring values take the two halves of one 32-bit number: at
    # rate 0.5 they agree half the time if the halves are independent.
    y = _dropped(0.5).reshape(-1)
    agree = (y[0::2] == 0) == (y[1::2] == 0)
    assert abs(agree.mean() - 0.5) < 0.005
    # And no value's fate repeats at a fixed distance.
    for lag in (1, 2, 3, 32):
        same = (y[:-lag] == 0) == (y[lag:] == 0)
        assert abs(same.mean() - 0.5) < 0.005


def test_an_odd_number_of_values_and_every_call_a_new_mask():
    layer = FastDropout(0.3, seed=1)
    x = keras.ops.ones((3, 5, 7))
    first = keras.ops.convert_to_numpy(layer(x, training=True))
    second = keras.ops.convert_to_numpy(layer(x, training=True))
    assert first.shape == (3, 5, 7)
    assert (first != second).any()
    # The same seed gives the same masks.
    again = keras.ops.convert_to_numpy(
        FastDropout(0.3, seed=1)(x, training=True)
    )
    np.testing.assert_array_equal(first, again)


def test_inference_is_the_identity():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    for layer in (FastDropout(0.5), FastDropout(0.0)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)


def test_the_gradient_is_the_mask_each_value_its_own():
    import tensorflow as tf

    layer = FastDropout(0.5, seed=2)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 3, 2)))
    x = tf.cast(x, "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    jacobian = tape.jacobian(y, x).numpy().reshape(x.numpy().size, -1)
    mask = (y.numpy() != 0).reshape(-1)
    np.testing.assert_allclose(jacobian, np.diag(mask * 2.0))


def test_a_model_with_it_saves_and_loads_safely(tmp_path):
    inputs = keras.Input((4,))
    outputs = FastDropout(0.25, seed=5, name="drop")(inputs)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    layer = loaded.get_layer("drop")
    assert isinstance(layer, FastDropout)
    assert (layer.rate, layer.seed) == (0.25, 5)


def test_a_bad_rate_is_refused_as_keras_refuses_it():
    with pytest.raises(ValueError, match="rate"):
        FastDropout(1.5)
