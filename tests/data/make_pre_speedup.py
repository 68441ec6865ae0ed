"""Writes tests/data/pre_speedup_*.keras and their logits (run once, before the speed-up)."""
import os, numpy as np, keras
from pixel_models.models import build_model
from pixel_models.testing import build_with_random_weights

out = "tests/data"
arrays = {}
for family in ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"):
    for shape, levels in (((6, 7, 1), 2), ((5, 6, 3), 4)):
        keras.utils.set_random_seed(1)
        name = f"{family}_{'rgb' if shape[2] == 3 else 'grey'}"
        model = build_model(family, shape, levels, num_layers=2, width=6)
        # perturb weights so biases etc. are non-trivial
        rng = np.random.default_rng(2)
        for w in model.weights:
            w.assign(w.numpy() + 0.1 * rng.standard_normal(w.shape).astype("float32"))
        x = rng.integers(0, levels, size=(3, *shape)).astype("float32")
        model.save(os.path.join(out, f"pre_speedup_{name}.keras"))
        arrays[f"{name}_x"] = x
        arrays[f"{name}_logits"] = np.asarray(model(x))
        arrays[f"{name}_weights"] = np.array(sorted(w.path + ":" + str(tuple(w.shape)) for w in model.weights))
np.savez_compressed(os.path.join(out, "pre_speedup_logits.npz"), **arrays)
