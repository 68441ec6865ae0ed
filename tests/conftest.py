"""Test set-up: quiet TensorFlow, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tensorflow_only: tests TensorFlow's own machinery (tf.function, "
        "XLA, tf ops, tf.distribute); skipped on the other backends",
    )
    config.addinivalue_line(
        "markers",
        "every_backend: also run on JAX and PyTorch, by test_backends.py "
        "(causality, receptive fields, save/load, sampling, end to end)",
    )


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow only; backend is {backend}")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()


@pytest.fixture
def no_downloads(monkeypatch):
    """Makes every Keras downloader fail and unsets the data directory, so
    a test that would download fails instead."""

    def fail(*args, **kwargs):
        raise OSError("downloads are disabled in tests")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fail)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fail)
    monkeypatch.delenv("PIXEL_MODELS_DATA_DIR", raising=False)
