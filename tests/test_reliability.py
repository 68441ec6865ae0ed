"""Crash safety: atomic checkpoints, NaN stops, determinism, resume."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from datafiles import write_mnist

from pixel_models.callbacks import AtomicModelCheckpoint, save_atomically
from pixel_models.models import build_pixelcnn
from pixel_models.training import compile_model

ROOT = os.path.join(os.path.dirname(__file__), "..")
pytestmark = pytest.mark.usefixtures("no_downloads")
sys.path.insert(0, os.path.join(ROOT, "examples"))
import train_mnist  # noqa: E402


def _tiny_model():
    return compile_model(build_pixelcnn((4, 4, 1), 2, num_layers=1, filters=2))


def test_checkpoint_killed_while_saving_keeps_the_previous_one(
    tmp_path, monkeypatch
):
    model = _tiny_model()
    x = np.random.default_rng(0).integers(0, 2, (16, 4, 4, 1)).astype("float32")
    path = tmp_path / "best.keras"
    checkpoint = AtomicModelCheckpoint(path, monitor="loss")
    model.fit(x, x, epochs=1, verbose=0, callbacks=[checkpoint])
    good = keras.models.load_model(path).get_weights()

    def killed_mid_write(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(keras.Model, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[checkpoint])
    monkeypatch.undo()
    for a, b in zip(
        keras.models.load_model(path).get_weights(), good, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(keras.Model, "save", killed_mid_write)
        save_atomically(model, path)
    monkeypatch.undo()
    assert len(keras.models.load_model(path).get_weights()) == len(good)


def _train_args(tmp_path, log_dir, extra=()):
    return [
        "--data-dir",
        str(tmp_path / "data"),
        "--validation-size",
        "16",
        "--num-layers",
        "1",
        "--width",
        "2",
        "--batch-size",
        "16",
        "--sample-every",
        "0",
        "--log-dir",
        str(log_dir),
        *extra,
    ]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(
    tmp_path,
):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=64, num_test=8)
    # A huge step with no clipping: the weights, then the loss, blow up.
    args = _train_args(
        tmp_path,
        tmp_path / "run",
        ["--epochs", "50", "--learning-rate", "1e12", "--clipnorm", "0"],
    )
    with pytest.raises(FloatingPointError) as info:
        train_mnist.main(args)
    message = str(info.value)
    assert "loss became nan" in message.lower()
    assert "best.keras" in message and "--learning-rate" in message
    assert not (tmp_path / "run" / "model.keras").exists()


def test_same_seed_same_losses(tmp_path):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=64, num_test=8)
    results = [
        train_mnist.main(
            _train_args(
                tmp_path,
                tmp_path / f"run{k}",
                ["--epochs", "2", "--seed", "3", "--deterministic"],
            )
        )
        for k in range(2)
    ]
    assert results[0]["bits_per_dim"] == results[1]["bits_per_dim"]
    other = train_mnist.main(
        _train_args(
            tmp_path, tmp_path / "run2", ["--epochs", "2", "--seed", "4"]
        )
    )
    assert other["bits_per_dim"] != results[0]["bits_per_dim"]


# The training script, killed (SIGKILL, nothing flushed) as soon as its
# backup of the second epoch is written: a fixed point, not a race.
KILLED_AFTER_TWO_EPOCHS = """
import os, runpy, signal, sys
import keras

back_up = keras.callbacks.BackupAndRestore.on_epoch_end

def back_up_then_die(self, epoch, logs=None):
    back_up(self, epoch, logs)
    if epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)

keras.callbacks.BackupAndRestore.on_epoch_end = back_up_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_training_resumes_after_kill_9(tmp_path):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=96, num_test=8)
    log_dir = tmp_path / "run"
    args = _train_args(
        tmp_path, log_dir, ["--epochs", "4", "--patience", "100"]
    )
    script = os.path.join(ROOT, "examples", "train_mnist.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_TWO_EPOCHS, script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (log_dir / "results.json").exists()

    out = subprocess.run(
        [sys.executable, script, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Epochs 1 and 2 were backed up; the run goes on at the third.
    assert out.split("Epoch ")[1].split("/")[0] == "3"
    assert "Epoch 4/4" in out
    assert (
        json.loads((log_dir / "results.json").read_text())["bits_per_dim"] > 0
    )


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((1, 6, 6, 3), "value 1"),  # wrong channel count
        ((1, 5, 6, 1), "(None, 6, 6, 1)"),  # wrong size
        ((6, 6), "Expected shape (None, 6, 6, 1)"),  # wrong rank
        ((1, 6, 6, 1, 1, 1), "Expected shape (None, 6, 6, 1)"),
    ],
)
def test_model_input_of_the_wrong_shape_is_refused_clearly(shape, expected):
    model = build_pixelcnn((6, 6, 1), 2, num_layers=1, filters=2)
    with pytest.raises(ValueError) as info:
        model(np.zeros(shape, "float32"))
    message = str(info.value)
    assert expected in message
    assert str(shape) in message or str(shape[:-1]) in message


def test_repeat_for_fit_is_one_pass_per_epoch_by_default():
    from pixel_models.training import repeat_for_fit

    ds = tf.data.Dataset.range(10).batch(4)  # 3 batches, the last of 2
    repeated, steps = repeat_for_fit(ds, 10, 4)
    assert steps == 3
    seen = [int(v) for batch in repeated.take(2 * steps) for v in batch]
    assert seen == list(range(10)) * 2  # two epochs, each one pass
    assert repeat_for_fit(ds, 10, 4, steps_per_epoch=7)[1] == 7
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        repeat_for_fit(ds, 10, 4, steps_per_epoch=0)
