"""Fast and naive sampling: exactness, noise sharing, arguments."""

import keras
import numpy as np
import pytest

from pixel_models.models import build_model, build_pixelcnn
from pixel_models.sampling import draw, sample, sample_with_logits
from pixel_models.testing import assert_samples_follow_their_logits

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
def test_fast_equals_naive(family):
    # One tiny colour model per family against the reference sampler;
    # the other sampling tests check the one-pass conditions instead
    # (`assert_samples_follow_their_logits`).
    shape, levels = (3, 4, 3), 5
    model = _model(family, shape, levels)
    noise = np.random.default_rng(1).random((3, *shape))
    fast_x, fast_logits = sample_with_logits(model, noise, progress=False)
    naive_x, naive_logits = sample_with_logits(
        model, noise, method="naive", progress=False
    )
    np.testing.assert_allclose(fast_logits, naive_logits, atol=1e-4)
    np.testing.assert_array_equal(fast_x, naive_x)
    assert fast_x.min() >= 0 and fast_x.max() <= levels - 1
    assert len(np.unique(fast_x)) > 1


# On TensorFlow only: on the other backends `test_fast_equals_naive`
# checks each family's one-pixel steps against the reference.
@pytest.mark.parametrize("family", FAMILIES)
def test_fast_samples_follow_their_logits(family):
    shape = (5, 6, 1)
    model = _model(family, shape, 2)
    noise = np.random.default_rng(1).random((3, *shape))
    x, logits = sample_with_logits(model, noise, progress=False)
    assert_samples_follow_their_logits(model, noise, x, logits)
    assert len(np.unique(x)) > 1


def test_draw_is_the_inverse_cdf():
    logits = np.log(np.array([[0.2, 0.3, 0.5]] * 4))
    noise = np.array([0.1, 0.25, 0.6, 0.999])

    def draw_numpy(*args, **kwargs):
        return keras.ops.convert_to_numpy(draw(*args, **kwargs))

    np.testing.assert_array_equal(draw_numpy(logits, noise), [0, 1, 2, 2])
    # Nucleus 0.5: only the most likely value is left.
    np.testing.assert_array_equal(draw_numpy(logits, noise, top_p=0.5), [2] * 4)
    # Nucleus 0.8: values 2 and 1, renormalised to 0.625 and 0.375.
    np.testing.assert_array_equal(
        draw_numpy(logits, noise, top_p=0.8), [1, 1, 2, 2]
    )
    # A low temperature picks the most likely value.
    np.testing.assert_array_equal(
        draw_numpy(logits, noise, temperature=1e-3), [2] * 4
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
    np.testing.assert_array_equal(naive, a)


def test_sampling_a_reloaded_model(tmp_path):
    # Grey: colour is sampled on every family elsewhere, and compiling
    # this family's colour sampler twice took a third of a minute.
    model = _model("diagonal_bilstm", (4, 4, 1), 4)
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


def test_draw_over_many_levels_is_the_float64_inverse_cdf():
    rng = np.random.default_rng(0)
    logits = 3 * rng.normal(size=(2000, 256))
    noise = rng.random(2000)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    cdf = np.cumsum(p / p.sum(-1, keepdims=True), -1)
    expected = np.minimum((cdf <= noise[:, None]).sum(-1), 255)
    got = keras.ops.convert_to_numpy(draw(logits, noise))
    # Float32 against float64: only a draw within rounding of a step of
    # the CDF may land on the next value.
    near = np.abs(cdf - noise[:, None]).min(-1) < 1e-5
    assert np.all((got == expected) | near)
    assert np.mean(got == expected) > 0.999


@pytest.mark.parametrize("top_p", [None, 0.9])
def test_draw_at_the_top_of_the_noise_never_picks_an_impossible_value(top_p):
    # Noise just under 1 lies above the float32 CDF's total whenever the
    # sums round it below 1; the draw must still land on a value of
    # positive probability (the last ones here underflow to zero, or
    # are cut by top_p).
    rng = np.random.default_rng(0)
    logits = (3 * rng.normal(size=(500, 256))).astype("float32")
    logits[:, 180:] = -1e4
    logits[:7, :] = [[0.0] * 2 + [-200.0] * 254] * 7
    top = np.nextafter(np.float32(1), np.float32(0))
    for noise in (np.full(500, top), np.zeros(500)):
        got = keras.ops.convert_to_numpy(draw(logits, noise, top_p=top_p))
        p = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
        assert np.all(p[np.arange(500), got] > 0)
        if top_p is not None:
            # Inside the nucleus: the values more likely than the drawn
            # one hold less than top_p.
            more = np.where(p > p[np.arange(500), got][:, None], p, 0)
            assert np.all(more.sum(-1) < top_p)
    assert got[0] == 0 and np.all(got[:7] <= 1)


def _dilated_model(shape=(6, 7, 1), levels=3, dilation=2):
    from pixel_models.layers import MaskedConv2D

    keras.utils.set_random_seed(0)
    pixels = keras.Input(shape)
    x = MaskedConv2D(6, 3, "A", dilation_rate=dilation)(pixels)
    x = keras.layers.ReLU()(x)
    x = MaskedConv2D(6, (3, 5), "B", dilation_rate=(dilation, 1))(x)
    x = MaskedConv2D(shape[-1] * levels, 1, "B")(x)
    model = keras.Model(pixels, keras.layers.Reshape((*shape, levels))(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


def test_dilated_masked_convolutions_are_fast_sampled_exactly():
    from pixel_models.testing import assert_causal

    model = _dilated_model()
    assert_causal(model, np.ones((1, 6, 7, 1), "float32"))
    noise = np.random.default_rng(1).random((4, 6, 7, 1))
    fast_x, fast_logits = sample_with_logits(model, noise, progress=False)
    assert_samples_follow_their_logits(model, noise, fast_x, fast_logits)
    # Dilation 2 reads two rows up and two pixels left: sampling the
    # same model as if undilated would not give these logits.
    undilated = _dilated_model(dilation=1)
    undilated.set_weights(model.get_weights())
    _, other = sample_with_logits(undilated, noise, progress=False)
    assert np.abs(other - fast_logits).max() > 0.1


@keras.saving.register_keras_serializable(package="pixel_models_tests")
class LeftAndRowAbove(keras.layers.Layer):
    """A user's layer: x + half the pixel to the left + the mean of the
    row above; it opts in to fast sampling with the three pixel methods."""

    pixel_reach = 1

    def call(self, x):
        left = keras.ops.pad(x[:, :, :-1], ((0, 0), (0, 0), (1, 0), (0, 0)))
        above = keras.ops.mean(x, axis=2, keepdims=True)[:, :-1]
        above = keras.ops.pad(above, ((0, 0), (1, 0), (0, 0), (0, 0)))
        return x + 0.5 * left + above

    def pixel_row(self, inputs, state, carries, row):
        mean = keras.ops.mean(inputs[:, -1], axis=1, keepdims=True)
        width = inputs.shape[2]
        return state, {"above": keras.ops.repeat(mean, width, axis=1)}, {}

    def pixel_step(self, inputs, state, column, carry):
        return inputs.here + 0.5 * inputs.left[:, -1] + column["above"], carry


def _user_model(layer, shape=(4, 5, 3), levels=3):
    from pixel_models.layers import MaskedConv2D

    keras.utils.set_random_seed(0)
    pixels = keras.Input(shape)
    x = keras.layers.Rescaling(0.5)(pixels)
    x = MaskedConv2D(6, 3, "A", shape[-1])(x)
    x = layer(x)
    x = MaskedConv2D(shape[-1] * levels, 1, "B", shape[-1])(x)
    logits = keras.layers.Reshape((*shape, levels))(x)
    return keras.Model(pixels, logits)


@pytest.mark.every_backend
def test_a_users_layer_with_pixel_methods_is_fast_sampled_exactly():
    from pixel_models.testing import assert_causal

    model = _user_model(LeftAndRowAbove())
    x = np.random.default_rng(0).random((1, 4, 5, 3)).astype("float32")
    assert_causal(model, x, color_channels=3)
    noise = np.random.default_rng(1).random((3, 4, 5, 3))
    fast_x, fast_logits = sample_with_logits(model, noise, progress=False)
    naive_x, naive_logits = sample_with_logits(
        model, noise, method="naive", progress=False
    )
    np.testing.assert_allclose(fast_logits, naive_logits, atol=1e-5)
    np.testing.assert_array_equal(fast_x, naive_x)


def test_a_layer_without_pixel_step_names_the_layer_and_the_docs():
    class Opaque(keras.layers.Layer):
        def call(self, x):
            return x

    model = _user_model(Opaque(name="opaque"))
    with pytest.raises(ValueError, match="'opaque'.*docs/generation.md"):
        sample(model, 1, progress=False)


@pytest.mark.every_backend
def test_the_fast_sampler_follows_new_weights():
    model = _model("row_lstm", (4, 4, 1), 2)
    before = sample(model, 4, seed=0, progress=False)
    rng = np.random.default_rng(5)
    model.set_weights(
        [2 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    after = sample(model, 4, seed=0, progress=False)
    naive = sample(model, 4, seed=0, method="naive", progress=False)
    np.testing.assert_array_equal(after, naive)
    assert not np.array_equal(before, after)


def test_model_graph_reads_every_layer_and_its_inputs():
    # The sampler's one view of a model's graph (public Keras API only):
    # this fails if Keras changes what `layer.input` / `layer.output` give.
    from pixel_models.sampling import model_graph

    keras.utils.set_random_seed(0)
    model = build_model(
        "gated_pixelcnn", (4, 4, 1), 2, num_layers=2, width=4, num_classes=3
    )
    inputs, nodes, output = model_graph(model)
    assert inputs == ["input:0", "input:1"]
    layers = {layer.name: (layer, ins, outs) for layer, ins, outs in nodes}
    assert [layer.name for layer, *_ in nodes] == [
        layer.name
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    blocks = [n for n in nodes if type(n[0]).__name__ == "GatedPixelCNNBlock"]
    assert len(blocks) == 2
    first, second = blocks
    # [v, h, embedding] in, [v, h] out; the second block reads the first.
    assert len(first[1]) == 3 and len(first[2]) == 2
    assert second[1][:2] == first[2]
    embedding = [n for n in nodes if n[0].name == "label_embedding"][0]
    assert embedding[1] == "input:1" and first[1][2] == embedding[2][0]
    assert output == nodes[-1][2][0]
    assert isinstance(layers[output.split(":")[0]][0], keras.layers.Reshape)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_colour_pass_computes_only_its_logits(family):
    # The layer under the logits gives one colour's slice of its output.
    from pixel_models.sampling import fast_sampler

    model = _model(family, (3, 3, 3), 4)
    layer, _ = fast_sampler(model).head
    assert layer.name == "head_logits"
    from pixel_models.layers import MaskedConv2D, PixelInput

    x = np.random.default_rng(0).random((2, 1, 1, 96)).astype("float32")
    conv = MaskedConv2D(12, 1, "B", 3)
    full = keras.ops.convert_to_numpy(conv(x))[:, 0, 0]
    state, _ = conv.pixel_init(None)
    part = conv.pixel_step_slice(PixelInput(x[:, 0, 0]), state, {}, 4, 4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(part), full[:, 4:8], atol=1e-6
    )


# Every family under one of the two policies: the samplers compute on a
# float32 copy of the model, so what a policy changes is the copy's build.
@pytest.mark.parametrize(
    "policy, family",
    [
        ("mixed_bfloat16", "pixelcnn"),
        ("mixed_bfloat16", "diagonal_bilstm"),
        ("mixed_float16", "row_lstm"),
        ("mixed_float16", "gated_pixelcnn"),
    ],
)
def test_fast_equals_naive_under_mixed_precision(policy, family):
    # Under the policy a full pass and a one-pixel step round differently;
    # both samplers compute on a float32 copy with the model's weights,
    # so they draw the same images from the same logits.
    keras.mixed_precision.set_global_policy(policy)  # reset by conftest
    compute_dtype = policy[len("mixed_") :]
    shape = (4, 5, 3)
    model = _model(family, shape, 5)
    assert compute_dtype in {layer.compute_dtype for layer in model.layers}
    noise = np.random.default_rng(1).random((3, *shape))
    fast_x, fast_logits = sample_with_logits(model, noise, progress=False)
    # Exact on the float32 copy: its logits of the finished images, and
    # the draws from them.
    assert_samples_follow_their_logits(
        model, noise, fast_x, fast_logits, atol=1e-5
    )
    # The copy computes the model's own function (to bfloat16's rounding)
    # and follows its weights when they change after the first call.
    own = keras.ops.convert_to_numpy(model(fast_x)).astype("float32")
    np.testing.assert_allclose(fast_logits, own, atol=0.15, rtol=0.05)
    model.set_weights([w * 1.5 for w in model.get_weights()])
    _, again = sample_with_logits(model, noise, progress=False)
    own = keras.ops.convert_to_numpy(model(fast_x)).astype("float32")
    assert np.abs(again - fast_logits).max() > 0.1
    # (the first sub-pixel's logits depend on the weights alone)
    np.testing.assert_allclose(
        again[:, 0, 0, 0], own[:, 0, 0, 0], atol=0.15, rtol=0.05
    )


@pytest.mark.parametrize("family", ["pixelcnn", "pixelcnn_pp"])
def test_each_familys_sampler_implements_the_one_contract(family):
    # The compiled row and the entropy coder's stepper drive every
    # sampler through these steps alone: each sampler implements them.
    from pixel_models.sampling import fast_sampler
    from pixel_models.sampling.contract import OnePixelSampler

    kwargs = {"num_layers": 1, "width": 6}
    if family == "pixelcnn_pp":
        kwargs["num_mixtures"] = 2
    keras.utils.set_random_seed(0)
    model = build_model(family, (4, 4, 3), 4, **kwargs)
    sampler = fast_sampler(model)
    assert isinstance(sampler, OnePixelSampler)
    steps = ("initial", "start_row", "pixel_pass", "log_probs")
    steps += ("end_pixel", "kept", "end_row")
    for name in steps:
        assert getattr(type(sampler), name) is not getattr(
            OnePixelSampler, name
        ), name
    # One pixel through the steps, eagerly, as the docstrings give them.
    constants = sampler.constants([])
    state = sampler.initial(2, constants)
    context, carry, columns = sampler.start_row(constants, state, 0)
    column = keras.tree.map_structure(lambda t: t[0], columns)
    here = keras.ops.zeros((2, 3))
    pixel = sampler.pixel_pass(constants, context, carry, column, here, 0)
    log_probs = sampler.log_probs(pixel, here, 0)
    assert tuple(log_probs.shape) == (2, 4)
    carry = sampler.end_pixel(constants, context, carry, column, here, pixel)
    kept = sampler.kept(carry)
    # As if every pixel of the row (4) had kept the same: the state after.
    kept = keras.tree.map_structure(lambda t: keras.ops.stack([t] * 4), kept)
    after = sampler.end_row(constants, context, carry, kept)
    keras.tree.assert_same_structure(after, state)
