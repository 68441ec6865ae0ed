"""The fused recurrent scans against the keras.ops path they replace."""

import keras
import numpy as np
import pytest

from pixel_models.layers import DiagonalBiLSTM, RowLSTM
from pixel_models.layers.fused_scan import (
    check_fused,
    fused_unavailable,
    use_fused,
)
from pixel_models.models import build_model

pytestmark = pytest.mark.tensorflow_only

LAYERS = {
    "row_lstm": lambda c, **kw: RowLSTM(
        6, kernel_size=3, color_channels=c, **kw
    ),
    "row_lstm_k5": lambda c, **kw: RowLSTM(3 * c, 5, color_channels=c, **kw),
    "diagonal_bilstm": lambda c, **kw: DiagonalBiLSTM(
        6, color_channels=c, **kw
    ),
}


def _pair(name, color_channels, shape, condition_map=False):
    """The same layer on both paths, with the same random weights."""
    rng = np.random.default_rng(0)
    layers = [
        LAYERS[name](color_channels, condition_map=condition_map, fused=f)
        for f in (False, True)
    ]
    inputs = [shape, (shape[0], *shape[1:3], 2)] if condition_map else shape
    for layer in layers:
        layer.build(inputs)
    weights = [rng.normal(size=w.shape) * 0.5 for w in layers[0].weights]
    for layer in layers:
        layer.set_weights(weights)
    return layers


def _value_and_gradients(layer, x):
    import tensorflow as tf

    x = [tf.constant(v, "float32") for v in x]
    weights = [w.value for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x if len(x) > 1 else x[0])
        # A weighted sum, so that every output counts differently.
        target = tf.sin(
            tf.reshape(tf.range(tf.size(y), dtype=y.dtype), y.shape)
        )
        loss = tf.reduce_sum(y * target)
    grads = tape.gradient(loss, [*x, *weights])
    return y.numpy(), [g.numpy() for g in grads]


def _assert_close_relative(actual, expected, rtol):
    scale = max(np.abs(expected).max(), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("color_channels", [1, 3])
@pytest.mark.parametrize("condition_map", [False, True])
def test_fused_matches_reference(name, color_channels, condition_map):
    shape = (3, 5, 7, 3 * color_channels)
    reference, fused = _pair(name, color_channels, shape, condition_map)
    rng = np.random.default_rng(1)
    x = [rng.normal(size=shape)]
    if condition_map:
        x.append(rng.normal(size=(*shape[:3], 2)))
    y_ref, g_ref = _value_and_gradients(reference, x)
    y, g = _value_and_gradients(fused, x)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5)
    assert np.abs(y_ref).max() > 0.1
    assert len(g) == len(g_ref) == len(x) + len(reference.trainable_weights)
    for actual, expected in zip(g, g_ref, strict=True):
        assert np.abs(expected).max() > 0
        _assert_close_relative(actual, expected, 1e-4)


def _copy_on_path(model, fused):
    """`model` rebuilt with every recurrent layer on the given path."""

    def clone(layer):
        config = layer.get_config()
        if "fused" in config:
            config["fused"] = fused
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


MODEL_CASES = [
    # family, image shape, levels, class labels, condition shape
    ("diagonal_bilstm", (6, 5, 1), 2, None, None),
    ("row_lstm", (6, 5, 1), 2, 4, None),
    ("diagonal_bilstm", (4, 6, 3), 8, 3, None),
    ("row_lstm", (4, 4, 3), 8, None, (2, 2, 3)),
    ("diagonal_bilstm", (6, 6, 1), 2, None, (3, 3, 1)),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=str)
def test_fused_model_matches_reference(case):
    import tensorflow as tf

    family, shape, levels, classes, condition = case
    keras.utils.set_random_seed(0)
    model = build_model(
        family,
        shape,
        levels,
        num_layers=2,
        width=6,
        num_classes=classes,
        condition_shape=condition,
    )
    reference = _copy_on_path(model, False)
    rng = np.random.default_rng(2)
    inputs = [rng.integers(0, levels, size=(3, *shape)).astype("float32")]
    if classes:
        inputs.append(rng.integers(0, classes, size=(3,)))
    if condition:
        inputs.append(
            rng.integers(0, levels, size=(3, *condition)).astype("float32")
        )
    results = []
    for m in (model, reference):
        with tf.GradientTape() as tape:
            logits = m(inputs if len(inputs) > 1 else inputs[0])
            loss = tf.reduce_mean(tf.nn.log_softmax(logits)[..., 0])
        grads = tape.gradient(loss, [w.value for w in m.trainable_weights])
        # An embedding's gradient comes as IndexedSlices: made dense.
        grads = [tf.convert_to_tensor(g).numpy() for g in grads]
        results.append((logits.numpy(), grads))
    (logits, grads), (logits_ref, grads_ref) = results
    np.testing.assert_allclose(logits, logits_ref, rtol=0, atol=1e-5)
    for actual, expected in zip(grads, grads_ref, strict=True):
        _assert_close_relative(actual, expected, 1e-4)


@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
def test_fused_takes_an_unknown_batch_size(name):
    shape = (5, 6, 1)
    inputs = keras.Input(shape)
    reference, fused = _pair(name, 1, (None, *shape))
    models = [
        keras.Model(inputs, layer(inputs)) for layer in (reference, fused)
    ]
    x = np.random.default_rng(3).normal(size=(4, *shape))
    expected = models[0].predict(x, batch_size=3, verbose=0)
    actual = models[1].predict(x, batch_size=3, verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def test_trained_on_fused_path_reloads_on_reference_path(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model("diagonal_bilstm", (5, 5, 1), 2, num_layers=2, width=4)
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x = np.random.default_rng(4).integers(0, 2, size=(8, 5, 5, 1))
    before = model.get_weights()
    model.fit(x.astype("float32"), x, epochs=1, batch_size=4, verbose=0)
    assert any(
        np.abs(a - b).max() > 0
        for a, b in zip(before, model.get_weights(), strict=True)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    reference = _copy_on_path(loaded, False)
    np.testing.assert_allclose(
        reference.predict(x, verbose=0),
        model.predict(x, verbose=0),
        rtol=0,
        atol=1e-5,
    )


def test_fused_is_chosen_on_tensorflow_cpu_in_float32_only():
    import tensorflow as tf

    assert fused_unavailable() == ""
    assert use_fused("auto", "float32")
    assert use_fused("auto", tf.float32)
    assert not use_fused("auto", tf.float64)
    assert not use_fused("auto", "bfloat16")
    assert use_fused(True, "bfloat16")
    assert not use_fused(False, "float32")
    seen = []

    @tf.function(jit_compile=True)
    def under_xla():
        seen.append(use_fused("auto", "float32"))
        return tf.constant(0.0)

    under_xla()
    assert seen == [False]


def test_under_xla_the_layer_runs_the_reference_path():
    import tensorflow as tf

    reference, fused = _pair("diagonal_bilstm", 1, (2, 4, 5, 3))
    x = tf.constant(
        np.random.default_rng(5).normal(size=(2, 4, 5, 3)), "float32"
    )
    compiled = tf.function(fused, jit_compile=True)
    np.testing.assert_allclose(compiled(x), reference(x), rtol=0, atol=1e-5)


def test_auto_layers_in_a_model_run_the_fused_scan(monkeypatch):
    from pixel_models.layers import fused_scan

    calls = []
    forward = fused_scan.Scan.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(fused_scan.Scan, "forward", counted)
    for family in ("row_lstm", "diagonal_bilstm"):
        model = build_model(family, (4, 4, 1), 2, num_layers=2, width=4)
        model.predict(np.zeros((2, 4, 4, 1)), verbose=0)
    assert len(calls) == 4


def test_reused_buffers_never_overwrite_a_live_output():
    import tensorflow as tf

    reference, fused = _pair("diagonal_bilstm", 1, (2, 4, 5, 3))
    rng = np.random.default_rng(6)
    x1, x2 = (
        tf.constant(rng.normal(size=(2, 4, 5, 3)), "float32") for _ in "12"
    )
    first = fused(x1)
    kept = first.numpy().copy()
    for _ in range(3):
        second = fused(x2)
    np.testing.assert_array_equal(first.numpy(), kept)
    np.testing.assert_allclose(second, reference(x2), rtol=0, atol=1e-5)
    del first, second
    # Released, the buffers are handed out again.
    pool = fused_scan_module().POOL
    before = pool.bytes
    fused(x1)
    assert pool.bytes == before


def fused_scan_module():
    from pixel_models.layers import fused_scan

    return fused_scan


@pytest.mark.parametrize("value", ["yes", 1.5, None])
def test_bad_fused_argument_raises(value):
    with pytest.raises(ValueError, match="fused must be 'auto', True or False"):
        check_fused(value)
    with pytest.raises(ValueError, match="fused="):
        DiagonalBiLSTM(3, fused=value)
