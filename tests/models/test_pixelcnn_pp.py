"""PixelCNN++: shifted convolutions, the network, its likelihood."""

import itertools

import keras
import numpy as np
import pytest

from pixel_models.evaluation import log_prob
from pixel_models.layers import Shift, ShiftedConv2D, ShiftedConv2DTranspose
from pixel_models.logistic_mixture import LogisticMixtureNLL, num_parameters
from pixel_models.models import PixelCNNPlusPlus, build_model
from pixel_models.sampling import sample, sample_with_logits
from pixel_models.testing import (
    assert_causal,
    assert_reloads_in_fresh_process,
    assert_samples_follow_their_logits,
    dependency_map,
)


def _tiny(shape, levels=256, num_resnet=1, filters=4, num_mixtures=2, **kw):
    keras.utils.set_random_seed(0)
    return PixelCNNPlusPlus(
        shape,
        levels=levels,
        num_resnet=num_resnet,
        filters=filters,
        num_mixtures=num_mixtures,
        dropout=0.0,
        **kw,
    )


def _reads(layer, shape):
    """`reads[i, j]`: the input pixels output pixel (i, j) depends on."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype("float32")
    return dependency_map(layer, x)[:, :, 0, :, :, 0]


@pytest.mark.tensorflow_only
def test_shifted_convolutions_read_exactly_their_window():
    height, width = 6, 6
    down = _reads(ShiftedConv2D(2, (2, 3), "down"), (height, width, 1))
    right = _reads(ShiftedConv2D(2, (2, 2), "down_right"), (height, width, 1))
    for i, j in itertools.product(range(height), range(width)):
        rows = slice(max(i - 1, 0), i + 1)
        want = np.zeros((height, width), bool)
        want[rows, max(j - 1, 0) : j + 2] = True
        np.testing.assert_array_equal(down[i, j], want, err_msg=(i, j))
        want = np.zeros((height, width), bool)
        want[rows, max(j - 1, 0) : j + 1] = True
        np.testing.assert_array_equal(right[i, j], want, err_msg=(i, j))
    # Shifted a row down, a pixel sees only the rows above it.
    shifted = _reads(Shift("down"), (height, width, 1))
    assert not shifted[0].any() and shifted[3, 2, 2, 2]
    # Halved and doubled back: an output reads input rows <= i // 2 * 2
    # (and columns <= j // 2 * 2 + 1 for down_right) only.
    strided = ShiftedConv2D(2, (2, 2), "down_right", strides=2)
    up = ShiftedConv2DTranspose(2, (2, 2), "down_right")

    def both(x):
        return up(strided(x))

    reads = _reads(both, (height, width, 1))
    for i, j in itertools.product(range(height), range(width)):
        seen = np.argwhere(reads[i, j])
        assert len(seen) and seen[:, 0].max() <= i // 2 * 2, (i, j)
        assert seen[:, 1].max() <= j // 2 * 2 + 1, (i, j)


@pytest.mark.parametrize("channels, size, blocks", [(1, 8, 2), (3, 4, 1)])
def test_the_network_is_causal_with_no_blind_spot(channels, size, blocks):
    # Every mixture parameter of a pixel sees the earlier pixels only,
    # and (with enough blocks for the image's size) every one of them.
    model = _tiny((size, size, channels), num_resnet=blocks)
    params = num_parameters(channels, 2)
    assert model.output_shape == (None, size, size, params)
    x = np.random.default_rng(1).integers(0, 256, (1, size, size, channels))
    deps = assert_causal(model, x.astype("float32"), color_channels=1)
    last = size * size - 1
    before = np.arange(size * size).reshape(size, size) < last
    np.testing.assert_array_equal(deps[-1, -1, 0, :, :, 0], before)


@pytest.mark.every_backend
def test_every_image_s_probabilities_sum_to_one():
    # Two filters and one logistic a pixel: the 65,536 images cost a
    # third of what four filters and two logistics do (JAX runs it
    # unoptimised), and a leak breaks the sum all the same.
    model = _tiny((4, 4, 1), levels=2, filters=2, num_mixtures=1)
    images = np.array(list(itertools.product(range(2), repeat=16)), "f4")
    p = np.exp(log_prob(model, images.reshape(-1, 4, 4, 1), batch_size=8192))
    assert p.sum() == pytest.approx(1.0, abs=1e-3)
    assert np.ptp(p) > p.mean()  # far from uniform


def test_trains_samples_naively_and_reloads_as_itself(tmp_path):
    model = _tiny((4, 4, 3), levels=8, num_classes=2)
    # The defaults, less XLA: compiling this train step with it took 1.7x
    # as long as without, for three epochs of two steps.
    model.compile(jit_compile=False)
    assert isinstance(model.loss, LogisticMixtureNLL)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (16, 4, 4, 3)).astype("float32")
    labels = rng.integers(0, 2, 16)
    history = model.fit([x, labels], x, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    reloaded = assert_reloads_in_fresh_process(
        model, [x[:2], labels[:2]], tmp_path / "pp.keras"
    )
    assert type(reloaded) is PixelCNNPlusPlus
    assert reloaded.get_config()["num_resnet"] == 1
    # The trained model samples what it scores (the fast sampler is held
    # to the naive one in `test_fast_equals_naive`).
    noise = rng.random((2, 4, 4, 3))
    images, logits = sample_with_logits(
        model, noise, labels=[0, 1], method="naive", progress=False
    )
    assert_samples_follow_their_logits(
        model, noise, images, logits, labels=np.array([0, 1]), atol=1e-3
    )


def test_a_small_image_conditions_every_resolution_and_stays_causal():
    model = _tiny((8, 8, 3), levels=4, condition_shape=(2, 2, 3))
    assert [t.name for t in model.inputs] == ["pixels", "small"]
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 3, (1, 8, 8, 3)).astype("float32")
    small = rng.integers(0, 4, (1, 2, 2, 3)).astype("float32")
    small_t = keras.ops.convert_to_tensor(small)
    assert_causal(lambda t: model([t, small_t]), x, color_channels=1)
    # The first pixel sees nothing of the image, but all the small one.
    other = small.copy()
    other[0, 1, 1] = 3 - other[0, 1, 1]
    first = [
        keras.ops.convert_to_numpy(model([x, s]))[0, 0, 0]
        for s in (small, other)
    ]
    assert np.abs(first[0] - first[1]).max() > 1e-4


@pytest.mark.every_backend
def test_fast_equals_naive():
    # Three resolutions (4 x 8 at the top, 1 x 2 at the bottom), colour,
    # labels and a small image: every map computed at its own pixels, in
    # one pass a pixel.
    model = _tiny(
        (4, 8, 3), levels=16, num_classes=3, condition_shape=(2, 4, 3)
    )
    rng = np.random.default_rng(0)
    model.set_weights(
        [0.1 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    noise = rng.random((3, 4, 8, 3))
    labels = [0, 2, 1]
    small = rng.integers(0, 16, (3, 2, 4, 3)).astype("float32")
    kwargs = {"labels": labels, "condition": small, "progress": False}
    fast_x, fast_logits = sample_with_logits(model, noise, **kwargs)
    naive_x, naive_logits = sample_with_logits(
        model, noise, method="naive", **kwargs
    )
    # Log-probabilities down to -90 here: equal to float32 rounding.
    np.testing.assert_allclose(fast_logits, naive_logits, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(fast_x, naive_x)
    assert len(np.unique(fast_x)) > 3


@pytest.mark.tensorflow_only
def test_each_shifted_layer_computes_one_row_and_one_pixel_as_its_call():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    for shift, kernel, strides in [
        ("down", (2, 3), 1),
        ("down_right", (2, 2), 1),
        ("down", (2, 3), 2),
        ("down_right", (2, 2), 2),
    ]:
        layer = ShiftedConv2D(5, kernel, shift, strides=strides)
        full = np.asarray(layer(x))
        top = np.zeros((2, 1, 6, 3), "float32")  # the row above the image
        rows = np.concatenate([top, x], axis=1)
        a = 1  # output row 1 reads input rows (a * strides - 1, a * strides)
        window = rows[:, a * strides : a * strides + 2]
        np.testing.assert_allclose(
            layer.row_output(window), full[:, a], atol=1e-5
        )
        if shift == "down_right":
            b = 2  # and columns (b * strides - 1, b * strides)
            cols = window[:, :, b * strides - 1 : b * strides + 1]
            np.testing.assert_allclose(
                layer.window_output(cols), full[:, a, b], atol=1e-5
            )
    for shift, kernel in [("down", (2, 3)), ("down_right", (2, 2))]:
        up = ShiftedConv2DTranspose(5, kernel, shift)
        full = np.asarray(up(x))
        np.testing.assert_allclose(
            up.row_output(x[:, 1]), full[:, 2:4], atol=1e-5
        )
    for dy, dx in itertools.product(range(2), range(2)):
        np.testing.assert_allclose(
            up.value_at(x[:, 1, 2], dy, dx), full[:, 2 + dy, 4 + dx], atol=1e-5
        )


def test_the_fast_sampler_refuses_a_shifted_network_it_cannot_run():
    # A down-shifted convolution of the down-right stream reads the
    # pixels to the right of the current one in its row.
    pixels = keras.Input((4, 4, 1))
    x = keras.layers.Rescaling(1 / 255)(pixels)
    x = ShiftedConv2D(2, (2, 1), "down_right")(x)
    x = Shift("right")(x)
    x = ShiftedConv2D(2, (2, 3), "down", name="reads_right")(x)
    x = keras.layers.Conv2D(num_parameters(1, 1), 1)(x)
    model = keras.Model(pixels, x)
    model.likelihood, model.levels = "logistic_mixture", 4
    with pytest.raises(ValueError, match="'reads_right'.*method='naive'"):
        sample(model, 1, progress=False)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match=r"divide by 4.*\(6, 8, 1\)"):
        _tiny((6, 8, 1))
    with pytest.raises(ValueError, match="condition_shape must be None or"):
        _tiny((8, 8, 1), condition_shape=(3, 4, 1))
    with pytest.raises(ValueError, match="shift must be one of"):
        ShiftedConv2D(2, (2, 3), "up")
    with pytest.raises(ValueError, match="width must be odd"):
        ShiftedConv2D(2, (2, 2), "down")
    model = build_model("pixelcnn_pp", (4, 4, 1), 2, num_layers=1, width=4)
    assert model.get_config()["num_resnet"] == 1 and model.num_mixtures == 10
