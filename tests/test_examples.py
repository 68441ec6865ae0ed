"""End-to-end runs of the training scripts on tiny local data."""

import glob
import json
import os
import sys

import keras
import numpy as np
import pytest
from datafiles import write_cifar, write_mnist

from pixel_models.losses import DiscreteNLL

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import receptive_fields  # noqa: E402
import train_cifar  # noqa: E402
import train_mnist  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_downloads")


def _check_run(log_dir, results, levels, shape):
    assert np.isfinite(results["bits_per_dim"])
    assert 0 < results["bits_per_dim"] < 1.5 * np.log2(levels)
    np.testing.assert_allclose(
        results["nats_per_image"],
        results["bits_per_dim"] * np.log(2) * np.prod(shape),
        rtol=1e-6,
    )
    with open(log_dir / "results.json") as f:
        assert json.load(f)["bits_per_dim"] == results["bits_per_dim"]
    assert (log_dir / "checkpoints" / "best.keras").exists()
    events = glob.glob(
        str(log_dir / "tensorboard" / "**" / "events.*"), recursive=True
    )
    assert events, "no TensorBoard event files written"
    model = keras.models.load_model(log_dir / "model.keras", safe_mode=True)
    assert model.output_shape == (None, *shape, levels)
    assert isinstance(model.loss, DiscreteNLL)
    x = np.zeros((2, *shape), "float32")
    logged = model.evaluate(x, x, verbose=0, return_dict=True)
    assert set(logged) == {"loss", "bits_per_dim"}
    # Two float32 means, each in its own order (1e-5 apart on JAX).
    np.testing.assert_allclose(
        logged["bits_per_dim"], logged["loss"] / np.log(2), rtol=1e-4
    )


@pytest.mark.every_backend
def test_train_mnist_binarized_end_to_end(tmp_path, capsys):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=80, num_test=16)
    log_dir = tmp_path / "run"
    results = train_mnist.main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--dataset",
            "binarized_mnist",
            "--validation-size",
            "16",
            "--epochs",
            "2",
            "--num-layers",
            "1",
            "--width",
            "4",
            "--batch-size",
            "16",
            "--log-dir",
            str(log_dir),
        ]
    )
    out = capsys.readouterr().out
    assert "bits/dim" in out and "nats/image" in out
    assert results["num_images"] == 16
    _check_run(log_dir, results, 2, (28, 28, 1))


def test_train_cifar_end_to_end(tmp_path, capsys):
    write_cifar(tmp_path / "data" / "cifar-10-batches-py", per_batch=8)
    log_dir = tmp_path / "run"
    results = train_cifar.main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--validation-size",
            "8",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--num-layers",
            "1",
            "--width",
            "3",
            "--batch-size",
            "4",
            "--log-dir",
            str(log_dir),
        ]
    )
    assert "bits/dim" in capsys.readouterr().out
    assert results["num_images"] == 8
    _check_run(log_dir, results, 256, (32, 32, 3))


def test_unknown_model_family_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        train_mnist.main(["--model", "transformer", "--log-dir", str(tmp_path)])


def test_receptive_field_picture(tmp_path):
    out = tmp_path / "fields.png"
    unseen = receptive_fields.main(["--size", "12", "--out", str(out)])
    assert out.stat().st_size > 10_000
    # Pixel (8, 6) of 12x12: PixelCNN's blind spot is the largest hole, the
    # Diagonal BiLSTM misses only the last pixel of the row above.
    assert unseen["pixelcnn"] > unseen["row_lstm"] > unseen["diagonal_bilstm"]
    assert unseen["diagonal_bilstm"] == 1
    # Gated PixelCNN: no blind spot, only the limit of its depth.
    assert unseen["gated_pixelcnn"] < unseen["pixelcnn"]
