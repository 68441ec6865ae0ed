import keras
import numpy as np
import pytest

from pixel_models.layers import GatedPixelCNNBlock
from pixel_models.testing import (
    assert_causal,
    assert_config_round_trip,
    assert_reloads_in_fresh_process,
    build_with_random_weights,
    receptive_field,
)


@pytest.mark.parametrize("color_channels", [1, 3])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_horizontal_output_is_causal(color_channels, mask_type):
    c = 6 if mask_type == "B" else color_channels
    shape = (1, 6, 7, c)
    block = GatedPixelCNNBlock(
        6, 3, color_channels, mask_type, residual=mask_type == "B"
    )
    build_with_random_weights(block, [shape, shape])
    x = np.random.default_rng(1).normal(size=shape)
    deps = assert_causal(
        lambda t: block([t, t])[1], x, color_channels, strict=mask_type == "A"
    )
    # The vertical link reaches up and to the right: no blind spot.
    field = receptive_field(deps, 3, 3, color_channels - 1)
    assert field[2, 4] and field[2, 2] and field[3, 2]
    assert not field[3, 4:].any() and not field[4:].any()


def test_vertical_output_sees_only_rows_up_to_its_own():
    block = build_with_random_weights(
        GatedPixelCNNBlock(2, 3, residual=False), [(1, 5, 5, 1)] * 2
    )
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 1))
    from pixel_models.testing import dependency_map

    deps = dependency_map(lambda t: block([t, t])[0], x)
    field = receptive_field(deps, 2, 2)
    assert field[2, 3]  # the current row, right of the pixel ...
    assert not field[3:].any()  # ... but never rows below


def test_condition_changes_the_output():
    block = GatedPixelCNNBlock(3, 3, condition=True)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    cond = np.eye(2, dtype="float32")
    build_with_random_weights(block, [x.shape, x.shape, cond.shape])
    h0 = keras.ops.convert_to_numpy(block([x, x, cond])[1])
    h1 = keras.ops.convert_to_numpy(block([x, x, cond[::-1]])[1])
    assert np.abs(h0 - h1).max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filters=4, color_channels=3), "filters=4"),
        (dict(filters=3, kernel_size=4), "kernel_size=4"),
        (dict(filters=3, mask_type="C"), "mask_type='C'"),
        (dict(filters=0), "filters=0"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        GatedPixelCNNBlock(**kwargs)
    assert message in str(info.value)


def test_residual_needs_matching_channels():
    with pytest.raises(ValueError, match="filters=4"):
        GatedPixelCNNBlock(4).build([(None, 5, 5, 3)] * 2)


def test_config_round_trip_and_reload(tmp_path):
    clone = assert_config_round_trip(
        GatedPixelCNNBlock(6, 5, 3, "A", residual=False, condition=True)
    )
    assert clone.condition and clone.mask_type == "A"
    inputs = keras.Input((5, 6, 3))
    v, h = GatedPixelCNNBlock(6, 3, 3, "A", residual=False)([inputs, inputs])
    model = keras.Model(inputs, keras.layers.Add()([v, h]))
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype("float32")
    assert_reloads_in_fresh_process(model, x, tmp_path / "gated.keras")
