"""Wrong inputs stop with an error that names the argument and the range
expected, before a training step or a figure; and a global setting that
the models must not follow (channels-first) is not followed."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models import evaluation, multiscale, sampling
from pixel_models.losses import RestNLL, rest_mask
from pixel_models.models import build_model
from pixel_models.training import evaluate_nll

SHAPE = (4, 4, 1)
LEVELS = 4


def _model(num_classes=None, levels=LEVELS, condition_shape=None):
    keras.utils.set_random_seed(0)
    model = build_model(
        "pixelcnn",
        SHAPE,
        levels,
        num_layers=1,
        width=4,
        num_classes=num_classes,
        condition_shape=condition_shape,
    )
    model.compile()
    return model


def _images(n=8, levels=LEVELS):
    rng = np.random.default_rng(0)
    return rng.integers(0, levels, (n, *SHAPE)).astype("float32")


def _unchanged(model, run):
    """Runs `run()`, which must raise; the weights must not have moved."""
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError) as error:
        run()
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    return str(error.value)


RANGE = r"y must hold integer pixel values in \[0, 3\]"


@pytest.mark.every_backend
@pytest.mark.parametrize(
    "targets, received",
    [
        (lambda x: x / 255.0, "not all integers"),  # rescaled, as elsewhere
        (lambda x: x + 300, r"values in \[300"),
        (lambda x: x - 1, r"values in \[-1"),
    ],
)
def test_fit_and_evaluate_refuse_targets_out_of_range(targets, received):
    model = _model()
    x = _images()
    for run in (
        lambda: model.fit(x, targets(x), epochs=1, verbose=0),
        lambda: model.evaluate(x, targets(x), verbose=0),
    ):
        message = _unchanged(model, run)
        assert re.search(RANGE, message), message
        assert re.search(received, message), message


@pytest.mark.every_backend
def test_a_bad_batch_of_a_dataset_stops_fit_before_its_step():
    model = _model()
    x = _images()
    good = tf.data.Dataset.from_tensor_slices((x, x)).batch(4)
    bad = tf.data.Dataset.from_tensor_slices((x, x / 3.0)).batch(4)
    model.fit(good, epochs=1, verbose=0)  # the check passes good data
    message = _unchanged(model, lambda: model.fit(bad, epochs=1, verbose=0))
    assert "y must hold integer pixel values in [0, 3]" in message
    assert "a batch with values in [0, 1], not all integers" in message
    model.fit(good, epochs=1, verbose=0)  # and the model trains on
    with pytest.raises(ValueError, match=RANGE):
        model.fit(good, validation_data=bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=RANGE):
        model.evaluate(bad, verbose=0)
    with pytest.raises(ValueError, match=r"x must hold .* \[0, 3\]"):
        model.fit(x * 2, x, epochs=1, verbose=0)


@pytest.mark.every_backend
def test_labels_out_of_range_are_refused_at_every_entry_point():
    model = _model(num_classes=3)
    x = _images()
    labels = np.arange(8) % 4  # 3 is out of range
    expected = r"labels must be integers in \[0, 2\] \(the model has 3"
    data = tf.data.Dataset.from_tensor_slices(((x, labels), x)).batch(8)
    for run in (
        lambda: model.fit([x, labels], x, epochs=1, verbose=0),
        lambda: model.fit(data, epochs=1, verbose=0),
        lambda: model.evaluate([x, labels], x, verbose=0),
        lambda: model.evaluate(data, verbose=0),
    ):
        assert re.search(expected, _unchanged(model, run))
    expected = r"labels must be one integer in \[0, 2\]"
    with pytest.raises(ValueError, match=expected):
        evaluation.log_prob(model, x, labels=labels)
    with pytest.raises(ValueError, match=expected):
        sampling.sample(model, 2, labels=[0, 3], progress=False)
    with pytest.raises(ValueError, match=expected):
        sampling.complete(model, x[:2], 2, labels=-1, progress=False)


def test_condition_out_of_range_is_refused_by_fit():
    model = _model(condition_shape=(2, 2, 1))
    x = _images()
    with pytest.raises(ValueError, match=r"condition must hold .* \[0, 3\]"):
        model.fit([x, x[:, ::2, ::2] + 9], x, epochs=1, verbose=0)


def test_the_second_stage_metric_and_nll_count_only_the_rest():
    small = (2, 2, 1)
    model = _model(condition_shape=small)
    model.compile(**multiscale.conditional_loss(model))
    x = _images()
    condition = x[:, ::2, ::2]
    data = tf.data.Dataset.from_tensor_slices(((x, condition), x)).batch(4)
    logs = model.evaluate(data, verbose=0, return_dict=True)
    assert "bits_per_dim" not in logs and "rest_bits_per_dim" in logs
    scored = evaluate_nll(model, data, SHAPE, len(x), verbose=0)
    assert "nats_per_image" not in scored
    # The rest's NLL: the 12 sub-pixels not in the small image, summed.
    rest = -evaluation.log_prob_map(model, x, condition=condition)
    rest = rest * rest_mask(SHAPE, small)[None, :, :, None]
    np.testing.assert_allclose(
        scored["rest_nats_per_image"], rest.sum((1, 2, 3)).mean(), rtol=1e-4
    )
    assert isinstance(model.loss, RestNLL)


@pytest.mark.parametrize(
    "family", ["pixelcnn", "gated_pixelcnn", "row_lstm", "diagonal_bilstm"]
)
def test_models_build_channels_last_whatever_the_global_format(family):
    shape, small = (4, 4, 3), (2, 2, 3)
    x = np.random.default_rng(0).integers(0, 3, (2, *shape)).astype("float32")
    inputs = [x, x[:, ::2, ::2]]
    built = {}
    for data_format in ("channels_last", "channels_first"):
        keras.config.set_image_data_format(data_format)
        try:
            keras.utils.set_random_seed(0)
            built[data_format] = build_model(
                family, shape, 3, num_layers=2, width=6, condition_shape=small
            )
        finally:
            keras.config.set_image_data_format("channels_last")
    last, first = built["channels_last"], built["channels_first"]
    first.set_weights(last.get_weights())
    keras.config.set_image_data_format("channels_first")
    try:
        logits = keras.ops.convert_to_numpy(first(inputs))
        # The one-pixel steps too (their convolutions), for the family
        # that has both kinds of them.
        if family == "gated_pixelcnn":
            drawn = first.generate(2, condition=inputs[1][0], seed=0)
    finally:
        keras.config.set_image_data_format("channels_last")
    np.testing.assert_array_equal(
        logits, keras.ops.convert_to_numpy(last(inputs))
    )
    if family == "gated_pixelcnn":
        expected = last.generate(2, condition=inputs[1][0], seed=0)
        np.testing.assert_array_equal(drawn, expected)
