"""Writers of small data files in the real layouts, for tests."""

import pickle

import numpy as np


def write_mnist(path, num_train=20, num_test=6, seed=0):
    """Writes an `mnist.npz` like keras'; returns its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (num_train, 28, 28), "uint8"),
        "y_train": rng.integers(0, 10, (num_train,), "uint8"),
        "x_test": rng.integers(0, 256, (num_test, 28, 28), "uint8"),
        "y_test": rng.integers(0, 10, (num_test,), "uint8"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def write_cifar(folder, per_batch=6, seed=0):
    """Writes a `cifar-10-batches-py` folder; returns HWC images, labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    images = rng.integers(0, 256, (6 * per_batch, 32, 32, 3), "uint8")
    labels = rng.integers(0, 10, (6 * per_batch,)).tolist()
    for i, name in enumerate(names):
        batch = slice(i * per_batch, (i + 1) * per_batch)
        # The official rows: all red values, then green, then blue.
        rows = images[batch].transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": labels[batch]}, f)
    split = 5 * per_batch
    return (images[:split], labels[:split]), (images[split:], labels[split:])
