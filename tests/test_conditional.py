"""Class-conditional models: label dependence, causality, saving, sampling."""

import keras
import numpy as np
import pytest

from pixel_models.models import build_model
from pixel_models.sampling import sample, sample_with_logits
from pixel_models.testing import (
    assert_causal,
    assert_reloads_in_fresh_process,
    assert_samples_follow_their_logits,
)

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]


def _model(family, shape, levels=3, num_classes=3, seed=0):
    model = build_model(
        family, shape, levels, num_layers=2, width=6, num_classes=num_classes
    )
    rng = np.random.default_rng(seed)
    model.set_weights(
        [0.5 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_output_depends_on_the_label_and_stays_causal(family):
    shape = (4, 5, 3) if family == "gated_pixelcnn" else (4, 5, 1)
    model = _model(family, shape)
    assert [t.name for t in model.inputs] == ["pixels", "labels"]
    x = np.random.default_rng(1).uniform(0, 2, size=(1, *shape))
    logits = [
        keras.ops.convert_to_numpy(model([x, np.array([k])])) for k in range(3)
    ]
    assert np.abs(logits[0] - logits[1]).max() > 1e-3
    assert np.abs(logits[1] - logits[2]).max() > 1e-3
    label = keras.ops.convert_to_tensor(np.array([2], "int32"))
    assert_causal(lambda t: model([t, label]), x, color_channels=shape[2])


GATED = "gated_pixelcnn"


# On JAX and PyTorch one family (colour, convolutional) stands for the
# rest: each family's one-pixel steps are checked there by test_sampling.py.
@pytest.mark.parametrize(
    "family",
    [
        pytest.param(f, marks=[pytest.mark.every_backend] * (f == GATED))
        for f in FAMILIES
    ],
)
def test_conditional_fast_sampling_is_exact(family):
    shape = (4, 4, 3) if family == "gated_pixelcnn" else (4, 5, 1)
    model = _model(family, shape)
    noise = np.random.default_rng(2).random((3, *shape))
    labels = np.array([0, 1, 2])
    x, logits = sample_with_logits(model, noise, labels=labels, progress=False)
    assert_samples_follow_their_logits(model, noise, x, logits, labels=labels)
    # The same noise under another label gives other images.
    other, _ = sample_with_logits(
        model, noise, labels=labels[::-1], progress=False
    )
    assert not np.array_equal(other, x)


def test_conditional_model_reloads_in_fresh_process(tmp_path):
    model = _model("gated_pixelcnn", (4, 4, 3))
    x = np.random.default_rng(0).integers(0, 3, (2, 4, 4, 3)).astype("float32")
    labels = np.array([0, 2], "int32")
    assert_reloads_in_fresh_process(model, [x, labels], tmp_path / "c.keras")


def test_label_arguments_are_checked():
    conditional = _model("pixelcnn", (3, 3, 1))
    with pytest.raises(ValueError, match="labels=None"):
        sample(conditional, 2, progress=False)
    with pytest.raises(ValueError, match="Received: labels=5"):
        sample(conditional, 2, labels=5, progress=False)
    with pytest.raises(ValueError, match="Received: labels=\\[0, 1, 2\\]"):
        sample(conditional, 2, labels=[0, 1, 2], progress=False)
    one_for_all = sample(conditional, 2, labels=1, seed=0, progress=False)
    both = sample(conditional, 2, labels=[1, 1], seed=0, progress=False)
    np.testing.assert_array_equal(one_for_all, both)
    plain = build_model("pixelcnn", (3, 3, 1), 2, num_layers=1, width=2)
    with pytest.raises(ValueError, match="not class-conditional"):
        sample(plain, 1, labels=0, progress=False)
    with pytest.raises(ValueError, match="num_classes=1"):
        build_model("row_lstm", (3, 3, 1), 2, num_classes=1)
