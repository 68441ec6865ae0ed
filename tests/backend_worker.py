"""Saves small models on this Keras backend, then loads every backend's.

Run by `test_backends.py`, once per backend (`KERAS_BACKEND` is set by the
caller before Keras is imported):

    python backend_worker.py FOLDER N

saves FOLDER/BACKEND-NAME.keras and its logits, waits until N processes
(one per backend) have saved theirs, then loads every file and writes
the logits it gives here.

Every family is saved, grey and colour, one of them class-conditional,
with random weights, so that every kernel entry and bias is in play.
"""

import glob
import os
import sys

import keras
import numpy as np

from pixel_models.models import build_model

# name: (family, input shape, levels, num_classes)
MODELS = {
    "pixelcnn_rgb": ("pixelcnn", (4, 5, 3), 7, None),
    "row_lstm_grey": ("row_lstm", (5, 6, 1), 2, None),
    "diagonal_bilstm_rgb": ("diagonal_bilstm", (4, 5, 3), 7, None),
    "gated_pixelcnn_grey_conditional": ("gated_pixelcnn", (5, 6, 1), 2, 3),
}


def model_inputs(name):
    """The same inputs on every backend: pixels, and labels if any."""
    _, shape, levels, num_classes = MODELS[name]
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, levels, (3, *shape)).astype("float32")
    if num_classes is None:
        return pixels
    return [pixels, np.array([0, 1, 2], "int32")]


def logits_of(model, name):
    return keras.ops.convert_to_numpy(model(model_inputs(name)))


def save(folder):
    backend = keras.backend.backend()
    for name, (family, shape, levels, num_classes) in MODELS.items():
        keras.utils.set_random_seed(0)
        model = build_model(
            family,
            shape,
            levels,
            num_layers=2,
            width=6,
            num_classes=num_classes,
        )
        rng = np.random.default_rng(0)
        model.set_weights(
            [0.5 * rng.normal(size=w.shape) for w in model.get_weights()]
        )
        model.save(os.path.join(folder, f"{backend}-{name}.keras"))
        np.save(
            os.path.join(folder, f"{backend}-{name}.saved.npy"),
            logits_of(model, name),
        )


def load(folder):
    backend = keras.backend.backend()
    for path in sorted(glob.glob(os.path.join(folder, "*.keras"))):
        saved_on, name = os.path.basename(path)[: -len(".keras")].split("-")
        model = keras.models.load_model(path, safe_mode=True)
        np.save(
            os.path.join(folder, f"{saved_on}-{name}.on-{backend}.npy"),
            logits_of(model, name),
        )


def save_then_load(folder, savers):
    """Saves, then loads every file once all `savers` processes have
    saved theirs: one process per backend instead of two."""
    import time

    save(folder)
    open(os.path.join(folder, f"{keras.backend.backend()}.saved"), "w").close()
    deadline = time.monotonic() + 600
    while len(glob.glob(os.path.join(folder, "*.saved"))) < savers:
        if time.monotonic() > deadline:
            raise TimeoutError("the other backends did not save in 600 s")
        time.sleep(0.1)
    load(folder)


if __name__ == "__main__":
    save_then_load(sys.argv[1], int(sys.argv[2]))
