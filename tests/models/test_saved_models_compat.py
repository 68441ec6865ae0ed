"""Models saved before the recurrent-layer speed-up load and agree.

`tests/data/pre_speedup_*.keras` were written by
`tests/data/make_pre_speedup.py` at the commit before the speed-up (the
Row LSTM and Diagonal BiLSTM then scanned a `keras.layers.RNN` with a
convolutional cell). Each must load with `safe_mode=True`, keep every
weight's path and shape, and give the logits it gave then, within 1e-5.
"""

import os

import keras
import numpy as np
import pytest

import pixel_models  # noqa: F401  (registers the layers)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
NAMES = [
    f"{family}_{colour}"
    for family in ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")
    for colour in ("grey", "rgb")
]


@pytest.fixture(scope="module")
def saved():
    return np.load(os.path.join(DATA, "pre_speedup_logits.npz"))


@pytest.mark.parametrize("name", NAMES)
def test_model_saved_before_the_speed_up_gives_the_same_logits(saved, name):
    path = os.path.join(DATA, f"pre_speedup_{name}.keras")
    model = keras.models.load_model(path, safe_mode=True)
    weights = sorted(f"{w.path}:{tuple(w.shape)}" for w in model.weights)
    assert weights == sorted(str(w) for w in saved[f"{name}_weights"])
    logits = keras.ops.convert_to_numpy(model(saved[f"{name}_x"]))
    np.testing.assert_allclose(logits, saved[f"{name}_logits"], atol=1e-5)


@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("family", ["row_lstm", "diagonal_bilstm"])
def test_unrolled_and_looped_scans_agree_with_the_saved_model(
    saved, family, unroll
):
    name = f"{family}_rgb"
    model = keras.models.load_model(
        os.path.join(DATA, f"pre_speedup_{name}.keras")
    )
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] in ("RowLSTM", "DiagonalBiLSTM"):
            layer["config"]["unroll"] = unroll
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    x = saved[f"{name}_x"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(rebuilt(x)),
        saved[f"{name}_logits"],
        atol=1e-5,
    )
    # The same inside a compiled (traced) function, forward and backward.
    rebuilt.compile(loss="sparse_categorical_crossentropy")
    np.testing.assert_allclose(
        rebuilt.predict(x, verbose=0), saved[f"{name}_logits"], atol=1e-5
    )
