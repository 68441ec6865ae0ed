import keras
import numpy as np
import pytest

from pixel_models.layers import Skew, Unskew
from pixel_models.testing import assert_config_round_trip


def test_skew_shifts_row_i_right_by_i():
    x = np.arange(1, 13, dtype="float32").reshape(1, 3, 4, 1)
    y = keras.ops.convert_to_numpy(Skew()(x))[0, :, :, 0]
    expected = np.zeros((3, 6), "float32")
    for i in range(3):
        expected[i, i : i + 4] = x[0, i, :, 0]
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("shape", [(2, 1, 1, 3), (2, 3, 5, 2), (1, 6, 2, 1)])
def test_unskew_inverts_skew(shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    skewed = Skew()(x)
    assert skewed.shape == (
        shape[0],
        shape[1],
        shape[2] + shape[1] - 1,
        shape[3],
    )
    np.testing.assert_array_equal(Unskew()(skewed), x)
    np.testing.assert_array_equal(Unskew(width=shape[2])(skewed), x)


def test_bad_shapes_and_width_raise():
    with pytest.raises(ValueError, match="width=0"):
        Unskew(width=0)
    with pytest.raises(ValueError, match="Received: input_shape"):
        Unskew(width=3).build((None, 2, 5, 1))
    with pytest.raises(ValueError, match="Received: input_shape"):
        Skew().build((None, 4, 1))


def test_skew_layers_save_and_reload(tmp_path):
    from pixel_models.testing import assert_reloads_in_fresh_process

    assert_config_round_trip(Unskew(width=4))
    inputs = keras.Input((3, 4, 2))
    outputs = Unskew(width=4)(Skew()(inputs) * 2.0)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 2)).astype("float32")
    np.testing.assert_allclose(model(x), 2 * x, rtol=1e-6)
    assert_reloads_in_fresh_process(model, x, tmp_path / "skew.keras")
