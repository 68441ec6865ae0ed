"""RowLSTM, DiagonalBiLSTM and their cell: causality, fields, saving."""

import keras
import numpy as np
import pytest

from pixel_models.layers import DiagonalBiLSTM, LineLSTMCell, RowLSTM
from pixel_models.testing import (
    assert_causal,
    assert_config_round_trip,
    assert_reloads_in_fresh_process,
    build_with_random_weights,
    receptive_field,
)

LAYERS = {
    "row_lstm": lambda c: RowLSTM(6, kernel_size=3, color_channels=c),
    "diagonal_bilstm": lambda c: DiagonalBiLSTM(6, color_channels=c),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("color_channels", [1, 3])
@pytest.mark.parametrize("size", [(5, 5), (4, 7), (7, 3)])
def test_recurrent_layer_is_causal(name, color_channels, size):
    shape = (1, *size, 3 * color_channels)
    layer = build_with_random_weights(LAYERS[name](color_channels), shape)
    x = np.random.default_rng(1).normal(size=shape)
    # Mask B: a feature group may see its own group at its own pixel.
    deps = assert_causal(layer, x, color_channels, strict=False)
    if color_channels == 3:
        i, j = size[0] - 1, size[1] - 1
        assert deps[i, j, 2, i, j, 2] and deps[i, j, 2, i, j, 0]
        assert not deps[i, j, 0, i, j, 1]


def _field(layer, height, width, i, j):
    shape = (1, height, width, 1)
    build_with_random_weights(layer, shape)
    x = np.random.default_rng(1).normal(size=shape)
    return receptive_field(assert_causal(layer, x, strict=False), i, j)


def test_diagonal_bilstm_sees_the_whole_past_in_one_layer():
    field = _field(DiagonalBiLSTM(3), 6, 7, 4, 2)
    expected = np.zeros((6, 7), bool)
    expected[:4] = True
    expected[4, :3] = True
    np.testing.assert_array_equal(field, expected)


def test_row_lstm_sees_a_triangle_above():
    k, i, j = 3, 5, 4
    field = _field(RowLSTM(3, kernel_size=k), 6, 9, i, j)
    expected = np.zeros((6, 9), bool)
    expected[i, j - k // 2 : j + 1] = True  # the 1 x k mask B conv
    for r in range(i):
        # Row r reaches pixel (i, j) through i - r state-to-state steps,
        # each widening the field by k // 2 on both sides; its masked
        # input-to-state conv adds k // 2 on the left only.
        steps = (i - r) * (k // 2)
        expected[r, max(0, j - steps - k // 2) : j + steps + 1] = True
    np.testing.assert_array_equal(field, expected)


def test_cell_step_matches_lstm_equations():
    cell = LineLSTMCell(2, 3, "same")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, 4, 8)).astype("float32")
    h = rng.normal(size=(1, 4, 2)).astype("float32")
    c = rng.normal(size=(1, 4, 2)).astype("float32")
    cell.build(z.shape)
    kernel = rng.normal(size=(3, 2, 8)).astype("float32")
    bias = rng.normal(size=(8,)).astype("float32")
    cell.set_weights([kernel, bias])
    new_h, (same_h, new_c) = keras.tree.map_structure(
        keras.ops.convert_to_numpy, cell(z, [h, c])
    )
    np.testing.assert_array_equal(new_h, same_h)
    padded = np.pad(h[0], ((1, 1), (0, 0)))
    conv = np.stack(
        [sum(padded[p + q] @ kernel[q] for q in range(3)) for p in range(4)]
    )
    pre = z[0] + conv + bias
    o, f, i, g = np.split(pre, 4, axis=-1)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    expected_c = sig(f) * c[0] + sig(i) * np.tanh(g)
    np.testing.assert_allclose(new_c[0], expected_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        new_h[0], sig(o) * np.tanh(expected_c), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: RowLSTM(0), "units=0"),
        (lambda: RowLSTM(4, color_channels=3), "units=4"),
        (lambda: RowLSTM(3, kernel_size=4), "kernel_size=4"),
        (lambda: RowLSTM(3, color_channels=2), "color_channels=2"),
        (lambda: DiagonalBiLSTM(5, color_channels=3), "units=5"),
        (lambda: DiagonalBiLSTM(-1), "units=-1"),
        (lambda: LineLSTMCell(3, 2, "valid"), "padding='valid'"),
        (lambda: LineLSTMCell(3, 2, "same"), "kernel_size=2"),
    ],
)
def test_bad_arguments_raise_clear_errors(factory, message):
    with pytest.raises(ValueError, match="Received") as info:
        factory()
    assert message in str(info.value)


def test_cell_zeroes_states_outside_the_image():
    cell = LineLSTMCell(2, 2, "causal", validity_channel=True)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, 3, 9)).astype("float32")
    z[0, :, -1] = [1.0, 0.0, 1.0]
    h0 = rng.normal(size=(1, 3, 2)).astype("float32")
    h, (_, c) = keras.tree.map_structure(
        keras.ops.convert_to_numpy, cell(z, [h0, h0])
    )
    assert np.all(h[0, 1] == 0) and np.all(c[0, 1] == 0)
    assert np.all(h[0, [0, 2]] != 0)
    with pytest.raises(ValueError, match="expects 9 input channels"):
        LineLSTMCell(2, 2, "causal", validity_channel=True).build((1, 3, 8))


def test_indivisible_input_channels_raise():
    with pytest.raises(ValueError, match="input channels"):
        RowLSTM(6, color_channels=3).build((None, 4, 4, 4))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_config_round_trip_and_reload(name, tmp_path):
    layer = LAYERS[name](3)
    clone = assert_config_round_trip(layer)
    assert clone.units == 6 and clone.color_channels == 3
    inputs = keras.Input((4, 5, 3))
    model = keras.Model(inputs, LAYERS[name](3)(inputs))
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype("float32")
    assert_reloads_in_fresh_process(model, x, tmp_path / f"{name}.keras")


def _built(name, unroll, shape):
    """An RGB layer of `LAYERS` with `unroll` set, random weights."""
    config = {**LAYERS[name](3).get_config(), "unroll": unroll}
    layer = type(LAYERS[name](3)).from_config(config)
    return build_with_random_weights(layer, shape)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_recurrent_layer_takes_an_unknown_batch_size(name, unroll):
    import tensorflow as tf

    shape = (2, 3, 4, 6)
    layer = _built(name, unroll, shape)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    traced = tf.function(
        layer, input_signature=[tf.TensorSpec((None, *shape[1:]), "float32")]
    )
    np.testing.assert_allclose(traced(x), layer(x), atol=1e-6)
    np.testing.assert_allclose(traced(x[:1]), layer(x)[:1], atol=1e-6)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_recurrent_layer_gradients_under_xla(name, unroll):
    # XLA (jit_compile=True, Keras's default on GPUs) needs loops of a
    # fixed length to differentiate them.
    import tensorflow as tf

    shape = (2, 3, 4, 6)
    layer = _built(name, unroll, shape)
    x = tf.constant(np.random.default_rng(0).normal(size=shape), "float32")

    def loss_and_grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) ** 2)
        return loss, tape.gradient(loss, [x, *layer.trainable_weights])

    plain = tf.function(loss_and_grads)(x)
    compiled = tf.function(loss_and_grads, jit_compile=True)(x)
    np.testing.assert_allclose(compiled[0], plain[0], rtol=1e-5)
    for got, want in zip(compiled[1], plain[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
