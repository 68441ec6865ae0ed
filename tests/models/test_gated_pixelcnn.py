import numpy as np
import pytest

from pixel_models.models import build_gated_pixelcnn, build_pixelcnn
from pixel_models.testing import (
    allowed_dependencies,
    assert_causal,
    assert_reloads_in_fresh_process,
    receptive_field,
    same_pixel_dependencies,
)
from pixel_models.training import compile_model


@pytest.mark.parametrize(
    "shape, levels", [((6, 6, 1), 2), ((5, 7, 1), 3), ((5, 6, 3), 4)]
)
def test_gated_pixelcnn_is_causal(shape, levels):
    model = build_gated_pixelcnn(
        shape,
        levels,
        num_layers=2,
        filters=6,
        kernel_size=3,
        input_kernel_size=3,
    )
    x = np.random.default_rng(0).uniform(0, levels - 1, size=(1, *shape))
    deps = assert_causal(model, x, color_channels=shape[2], strict=True)
    if shape[2] == 3:
        same = same_pixel_dependencies(deps)
        assert same[..., 1, 0].any() and same[..., 2, 1].any()


def test_no_blind_spot_unlike_pixelcnn():
    height, width = 6, 7
    i, j = height - 1, 2
    past = allowed_dependencies(height, width)[i, j, 0, ..., 0]
    x = np.random.default_rng(0).uniform(0, 1, size=(1, height, width, 1))
    kw = dict(levels=2, num_layers=4, filters=8, output_filters=32)
    gated = build_gated_pixelcnn(
        (height, width, 1), kernel_size=3, input_kernel_size=3, **kw
    )
    # Four 3x3 gated layers see four rows up, across the whole width.
    np.testing.assert_array_equal(
        receptive_field(assert_causal(gated, x), i, j), past
    )
    plain = build_pixelcnn((height, width, 1), kernel_size=3, **kw)
    field = receptive_field(assert_causal(plain, x), i, j)
    assert not field[i - 1, width - 1] and field.sum() < past.sum()


def test_trains_and_reloads(tmp_path):
    shape = (5, 5, 3)
    model = compile_model(
        build_gated_pixelcnn(shape, 4, num_layers=2, filters=6, dropout=0.1),
        learning_rate=1e-2,
    )
    assert model.name == "gated_pixelcnn"
    x = np.random.default_rng(0).integers(0, 4, (16, *shape)).astype("float32")
    history = model.fit(x, x, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert_reloads_in_fresh_process(model, x[:2], tmp_path / "g.keras")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(8, 8, 3), filters=128), "filters=128"),
        (dict(input_shape=(8, 8, 1), num_layers=0), "num_layers=0"),
        (dict(input_shape=(8, 8, 1), kernel_size=2), "kernel_size=2"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        build_gated_pixelcnn(**kwargs)
    assert message in str(info.value)
