import keras
import numpy as np
import pytest

from pixel_models.losses import BitsPerDim, DiscreteNLL
from pixel_models.models import build_pixelcnn
from pixel_models.testing import (
    assert_causal,
    assert_reloads_in_fresh_process,
    receptive_field,
    same_pixel_dependencies,
)


def _pixels(shape, levels, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, levels, size=shape).astype("float32")


@pytest.mark.parametrize(
    "shape, levels",
    [((6, 6, 1), 2), ((5, 7, 1), 4), ((6, 6, 3), 4), ((4, 5, 3), 3)],
)
def test_pixelcnn_is_causal(shape, levels):
    channels = shape[2]
    model = build_pixelcnn(
        shape, levels=levels, num_layers=2, filters=6, kernel_size=3
    )
    # Random, not integer, inputs: the Jacobian is taken at a generic point.
    x = np.random.default_rng(0).uniform(0, levels - 1, size=(1, *shape))
    deps = assert_causal(model, x, color_channels=channels, strict=True)
    if shape[2] == 3:
        # At its own pixel, G sees R and B sees R and G (somewhere: a
        # dead ReLU may hide it at one pixel).
        same = same_pixel_dependencies(deps)
        assert same[..., 1, 0].any() and same[..., 2, 0].any()
        assert same[..., 2, 1].any()


def test_pixelcnn_has_the_blind_spot():
    # 3x3 first kernel and one block: the last pixel sees a limited cone;
    # up and to the right of it stays out of reach (the blind spot).
    model = build_pixelcnn(
        (9, 9, 1), levels=2, num_layers=3, filters=4, kernel_size=3
    )
    x = np.random.default_rng(0).uniform(0, 1, size=(1, 9, 9, 1))
    deps = assert_causal(model, x)
    field = receptive_field(deps, 8, 4)
    # Four stacked 3x3 masks reach k rows up and k columns right ...
    assert field[7, 5] and field[6, 6] and field[5, 7] and field[4, 8]
    # ... but never further right than up: (up 2, right 3) and (up 3,
    # right 4) are in the causal past and stay unseen at any depth.
    assert not field[6, 7] and not field[5, 8] and not field[6, 8]
    assert not field[8, 5:].any()


def test_output_shape_and_name():
    model = build_pixelcnn((8, 6, 3), levels=256, num_layers=1, filters=6)
    assert model.name == "pixelcnn"
    assert model.output_shape == (None, 8, 6, 3, 256)
    assert model.input_shape == (None, 8, 6, 3)


def test_dropout_and_no_residual_stay_causal():
    model = build_pixelcnn(
        (5, 5, 3),
        levels=2,
        num_layers=2,
        filters=6,
        residual=False,
        dropout=0.3,
        kernel_size=3,
    )
    assert not any(
        isinstance(layer, keras.layers.Add) for layer in model.layers
    )
    x = np.random.default_rng(0).uniform(0, 1, size=(1, 5, 5, 3))
    assert_causal(
        lambda t: model(t, training=True), x, color_channels=3, strict=True
    )


def test_training_lowers_the_loss():
    x = _pixels((32, 6, 6, 1), 2)
    model = build_pixelcnn((6, 6, 1), levels=2, num_layers=1, filters=4)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=DiscreteNLL(),
        metrics=[BitsPerDim()],
    )
    history = model.fit(x, x, epochs=15, batch_size=16, verbose=0)
    bpd = history.history["bits_per_dim"]
    loss = history.history["loss"]
    # Loss is nats/dim, the metric the same in bits.
    np.testing.assert_allclose(bpd[-1], loss[-1] / np.log(2), rtol=1e-4)
    assert bpd[-1] < bpd[0]


def test_save_and_load_model_in_fresh_process(tmp_path):
    model = build_pixelcnn((6, 6, 3), levels=4, num_layers=2, filters=6)
    model.compile(optimizer="adam", loss=DiscreteNLL(), metrics=[BitsPerDim()])
    x = _pixels((2, 6, 6, 3), 4)
    model.fit(x, x, epochs=1, verbose=0)
    reloaded = assert_reloads_in_fresh_process(
        model, x, tmp_path / "pixelcnn.keras"
    )
    assert isinstance(reloaded.loss, DiscreteNLL)
    np.testing.assert_allclose(
        reloaded.evaluate(x, x, verbose=0),
        model.evaluate(x, x, verbose=0),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(8, 8)), "input_shape"),
        (dict(input_shape=(8, 8, 2)), "input_shape"),
        (dict(input_shape=(8, 8, 3), filters=128), "filters=128"),
        (dict(input_shape=(8, 8, 1), num_layers=0), "num_layers=0"),
        (dict(input_shape=(8, 8, 1), levels=1), "levels=1"),
        (dict(input_shape=(8, 8, 1), kernel_size=4), "kernel_size=4"),
        (dict(input_shape=(8, 8, 1), dropout=1.5), "dropout=1.5"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        build_pixelcnn(**kwargs)
    assert message in str(info.value)
