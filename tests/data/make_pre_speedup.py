"""Writes tests/data/pre_speedup_*: saved models and the logits they gave.

Run once, from the repository root, at commit f7451fe (the code before
the recurrent-layer speed-up); kept as the record of how the fixtures of
`tests/models/test_saved_models_compat.py` were made.
"""

import os

import keras
import numpy as np

from pixel_models.models import build_model

OUT = "tests/data"
FAMILIES = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")


def main():
    arrays = {}
    for family in FAMILIES:
        for shape, levels in (((6, 7, 1), 2), ((5, 6, 3), 4)):
            keras.utils.set_random_seed(1)
            name = f"{family}_{'rgb' if shape[2] == 3 else 'grey'}"
            model = build_model(family, shape, levels, num_layers=2, width=6)
            # Perturb every weight, biases included, so none is trivial.
            rng = np.random.default_rng(2)
            for w in model.weights:
                noise = rng.standard_normal(w.shape).astype("float32")
                w.assign(w.numpy() + 0.1 * noise)
            x = rng.integers(0, levels, size=(3, *shape)).astype("float32")
            model.save(os.path.join(OUT, f"pre_speedup_{name}.keras"))
            arrays[f"{name}_x"] = x
            arrays[f"{name}_logits"] = np.asarray(model(x))
            arrays[f"{name}_weights"] = np.array(
                sorted(f"{w.path}:{tuple(w.shape)}" for w in model.weights)
            )
    np.savez_compressed(os.path.join(OUT, "pre_speedup_logits.npz"), **arrays)


if __name__ == "__main__":
    main()
