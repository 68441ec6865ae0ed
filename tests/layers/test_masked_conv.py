import keras
import numpy as np
import pytest

from pixel_models.layers import MaskedConv2D
from pixel_models.layers.masked_conv import causal_mask
from pixel_models.testing import (
    allowed_dependencies,
    assert_causal,
    assert_config_round_trip,
    build_with_random_weights,
    dependency_map,
    gradient,
)


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("color_channels", [1, 3])
@pytest.mark.parametrize("kernel_size", [3, (5, 3)])
def test_masked_conv_is_causal(mask_type, color_channels, kernel_size):
    shape = (1, 6, 5, 3 * color_channels)
    layer = build_with_random_weights(
        MaskedConv2D(
            2 * color_channels, kernel_size, mask_type, color_channels
        ),
        shape,
    )
    x = np.random.default_rng(1).normal(size=shape)
    deps = assert_causal(layer, x, color_channels, strict=mask_type == "A")
    # Within the kernel the layer sees exactly what the order allows.
    kh, kw = (
        (kernel_size, kernel_size)
        if isinstance(kernel_size, int)
        else kernel_size
    )
    i, j = 3, 2
    allowed = allowed_dependencies(6, 5, color_channels, mask_type == "A")
    window = np.zeros((6, 5), bool)
    window[i - kh // 2 : i + kh // 2 + 1, j - kw // 2 : j + kw // 2 + 1] = True
    expected = allowed[i, j] & window[None, :, :, None]
    np.testing.assert_array_equal(deps[i, j], expected)


def test_mask_a_colour_centre_pattern():
    mask = causal_mask((3, 3), 3, 3, "A", 3)
    np.testing.assert_array_equal(mask[1, 1], [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    mask = causal_mask((3, 3), 6, 3, "B", 3)
    np.testing.assert_array_equal(
        mask[1, 1],
        [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 1]],
    )
    np.testing.assert_array_equal(mask[0], 1)
    np.testing.assert_array_equal(mask[1, 0], 1)
    np.testing.assert_array_equal(mask[1, 2], 0)
    np.testing.assert_array_equal(mask[2], 0)


def test_gray_mask_a_does_not_see_centre_mask_b_does():
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 1))
    for mask_type, sees_centre in (("A", False), ("B", True)):
        layer = build_with_random_weights(
            MaskedConv2D(2, 3, mask_type), x.shape
        )
        deps = dependency_map(layer, x)
        assert deps[2, 2, 0, 2, 2, 0] == sees_centre


def test_masked_weights_get_zero_gradient():
    layer = build_with_random_weights(MaskedConv2D(3, 3, "A", 3), (1, 4, 4, 3))
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")

    def loss(kernel):
        return keras.ops.sum((layer.convolution_op(x, kernel) + 1.0) ** 2)

    grad = gradient(loss, layer.kernel)
    mask = causal_mask((3, 3), 3, 3, "A", 3)
    assert np.all(grad[mask == 0] == 0)
    assert np.all(grad[mask == 1] != 0)


@pytest.mark.parametrize(
    "kwargs, argument, received",
    [
        (dict(filters=4, kernel_size=4), "kernel_size", "kernel_size=4"),
        (dict(filters=4, kernel_size=(3, 2)), "kernel_size", "(3, 2)"),
        (dict(filters=4, kernel_size=3, mask_type="C"), "mask_type", "'C'"),
        (
            dict(filters=4, kernel_size=3, color_channels=3),
            "filters",
            "filters=4",
        ),
        (
            dict(filters=3, kernel_size=3, color_channels=2),
            "color_channels",
            "color_channels=2",
        ),
        (dict(filters=0, kernel_size=3), "filters", "filters=0"),
        (
            dict(filters=3, kernel_size=3, padding="valid"),
            "padding",
            "'valid'",
        ),
        (dict(filters=3, kernel_size=3, strides=2), "strides", "strides=2"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, argument, received):
    with pytest.raises(ValueError) as info:
        MaskedConv2D(**kwargs)
    assert argument in str(info.value)
    assert received in str(info.value)


def test_indivisible_input_channels_raise_in_build():
    layer = MaskedConv2D(3, 3, "B", color_channels=3)
    with pytest.raises(ValueError, match="input channels.*Received.*4"):
        layer.build((1, 4, 4, 4))


def test_config_round_trip_keeps_mask():
    layer = MaskedConv2D(6, (3, 5), "A", 3, activation="relu")
    clone = assert_config_round_trip(layer)
    assert clone.mask_type == "A"
    assert clone.color_channels == 3
    assert clone.kernel_size == (3, 5)
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype("float32")
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x)),
        keras.ops.convert_to_numpy(layer(x)),
        atol=1e-6,
    )


def test_save_and_reload_in_fresh_process(tmp_path):
    import keras

    from pixel_models.testing import assert_reloads_in_fresh_process

    inputs = keras.Input((6, 6, 3))
    outputs = MaskedConv2D(6, 3, "A", 3)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    assert_reloads_in_fresh_process(model, x, tmp_path / "conv.keras")
