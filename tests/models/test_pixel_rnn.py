"""Row LSTM and Diagonal BiLSTM models: causality, fields, save/load."""

import keras
import numpy as np
import pytest

from pixel_models.losses import DiscreteNLL
from pixel_models.models import (
    build_diagonal_bilstm,
    build_pixelcnn,
    build_row_lstm,
)
from pixel_models.testing import (
    allowed_dependencies,
    assert_causal,
    assert_reloads_in_fresh_process,
    receptive_field,
    same_pixel_dependencies,
)
from pixel_models.training import compile_model

BUILDERS = {
    "row_lstm": build_row_lstm,
    "diagonal_bilstm": build_diagonal_bilstm,
}


def _input(shape, levels, seed=0):
    return np.random.default_rng(seed).uniform(0, levels - 1, size=(1, *shape))


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize(
    "shape, levels", [((5, 5, 1), 2), ((4, 6, 1), 4), ((5, 4, 3), 4)]
)
def test_pixel_rnn_is_causal(name, shape, levels):
    model = BUILDERS[name](
        shape, levels=levels, num_layers=2, units=6, input_kernel_size=3
    )
    deps = assert_causal(
        model, _input(shape, levels), color_channels=shape[2], strict=True
    )
    if shape[2] == 3:
        # At its own pixel, G sees R and B sees R and G (somewhere: a
        # dead ReLU may hide it at one pixel).
        same = same_pixel_dependencies(deps)
        assert same[..., 1, 0].any() and same[..., 2, 0].any()
        assert same[..., 2, 1].any()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_skip_connections_and_dropout_stay_causal(name):
    model = BUILDERS[name](
        (4, 5, 3),
        levels=3,
        num_layers=2,
        units=3,
        skip_connections=True,
        residual=False,
        dropout=0.3,
        input_kernel_size=3,
    )
    # Every layer's output reaches the head through the skip sum.
    assert len(model.get_layer("skip_sum").input) == 2
    assert_causal(
        lambda t: model(t, training=True),
        _input((4, 5, 3), 3),
        color_channels=3,
    )


def _last_pixel_field(model, height, width):
    x = _input((height, width, 1), 2)
    deps = assert_causal(model, x)
    return receptive_field(deps, height - 1, width // 2)


def test_receptive_fields_match_the_theory():
    height, width = 8, 9
    past = allowed_dependencies(height, width)[
        height - 1, width // 2, 0, ..., 0
    ]
    # A wide head, so no pixel has all its ReLUs dead.
    kw = dict(levels=2, units=8, output_filters=32, input_kernel_size=3)

    # Diagonal BiLSTM: one layer already sees the whole causal context ...
    model = build_diagonal_bilstm((height, width, 1), num_layers=1, **kw)
    x = _input((height, width, 1), 2)
    deps = assert_causal(model, x)
    allowed = allowed_dependencies(height, width)
    for i, j in [(height - 1, width // 2), (3, 0), (2, width - 1)]:
        field = receptive_field(deps, i, j)
        expected = allowed[i, j, 0, ..., 0].copy()
        # ... but for the last pixel of the row above. Mask A hides a
        # pixel from its own features, so only features of row i (or of
        # columns past the edge) carry it; the forward stream sees row i
        # only up to j, the backward one only rows < i. Features within
        # k//2 columns of it (k: first kernel) see it through the input
        # conv. The paper's architecture has this hole at any depth.
        if i > 0 and j < width - 1 - 3 // 2:
            assert not field[i - 1, width - 1]
            expected[i - 1, width - 1] = False
        np.testing.assert_array_equal(field, expected)

    # Row LSTM: a triangle above that grows with depth, and misses the
    # far left and right of the rows above.
    fields = [
        _last_pixel_field(
            build_row_lstm((height, width, 1), num_layers=n, **kw),
            height,
            width,
        )
        for n in (1, 2)
    ]
    i, j = height - 1, width // 2
    for field in fields:
        assert not np.any(field & ~past)
        # Each row up reaches k // 2 = 1 column further right, whatever
        # the depth: every step up is one state-to-state (or 3x3) step.
        for d in range(1, 4):
            assert field[i - d, j + d] and not field[i - d, j + d + 1 :].any()
    # One layer misses the far left of the row above; depth widens it.
    assert not fields[0][i - 1, 0] and fields[1][i - 1, 0]
    assert fields[1].sum() > fields[0].sum()
    assert np.all(fields[1] >= fields[0])

    # PixelCNN: the blind spot up and to the right stays unseen.
    field = _last_pixel_field(
        build_pixelcnn(
            (height, width, 1),
            levels=2,
            num_layers=3,
            filters=3,
            kernel_size=3,
        ),
        height,
        width,
    )
    assert field[height - 2, width // 2 + 1]
    assert not field[height - 3, width - 1]
    assert field.sum() < past.sum()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_model_trains_and_reloads(name, tmp_path):
    shape, levels = (6, 5, 3), 4
    model = compile_model(
        BUILDERS[name](shape, levels=levels, num_layers=1, units=6),
        learning_rate=1e-2,
    )
    assert model.name == name
    assert model.output_shape == (None, *shape, 1 * 3, levels)[:4] + (levels,)
    x = np.random.default_rng(0).integers(0, levels, (16, *shape))
    x = x.astype("float32")
    history = model.fit(x, x, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    reloaded = assert_reloads_in_fresh_process(
        model, x[:2], tmp_path / f"{name}.keras"
    )
    assert isinstance(reloaded.loss, DiscreteNLL)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(8, 8, 3), units=128), "units=128"),
        (dict(input_shape=(8, 8, 1), num_layers=0), "num_layers=0"),
        (dict(input_shape=(8, 0, 1)), "input_shape=(8, 0, 1)"),
        (dict(input_shape=(8, 8, 1), levels=0), "levels=0"),
    ],
)
def test_bad_arguments_raise_clear_errors(name, kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        BUILDERS[name](**kwargs)
    assert message in str(info.value)


def test_build_model_knows_every_family():
    from pixel_models.models import MODEL_FAMILIES, build_model

    for family in MODEL_FAMILIES:
        model = build_model(family, (4, 4, 1), 2, num_layers=1, width=3)
        assert model.name == family
    with pytest.raises(ValueError, match="family='gan'"):
        build_model("gan", (4, 4, 1))
    assert isinstance(model, keras.Model)
