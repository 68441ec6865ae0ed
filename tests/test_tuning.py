"""KerasTuner hypermodels and the search script."""

import json
import os
import signal
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
from datafiles import write_mnist

from pixel_models.losses import DiscreteNLL
from tuning import (
    DiagonalBiLSTMHyperModel,
    PixelCNNHyperModel,
    RowLSTMHyperModel,
    search,
)

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _lstm_units(model):
    return {layer.units for layer in model.layers if hasattr(layer, "units")}


@pytest.mark.parametrize(
    "cls, shape, levels, layers, width",
    [
        (PixelCNNHyperModel, (28, 28, 1), 2, 7, 16),
        (PixelCNNHyperModel, (32, 32, 3), 256, 15, 129),
        (RowLSTMHyperModel, (28, 28, 1), 2, 7, 16),
        (RowLSTMHyperModel, (32, 32, 3), 256, 12, 129),
        (DiagonalBiLSTMHyperModel, (28, 28, 1), 2, 7, 16),
        (DiagonalBiLSTMHyperModel, (32, 32, 3), 256, 12, 129),
    ],
)
def test_default_hyperparameters_are_the_papers(
    cls, shape, levels, layers, width
):
    hp = keras_tuner.HyperParameters()
    model = cls(shape, levels).build(hp)
    assert hp.values["num_layers"] == layers and hp.values["width"] == width
    assert hp.values["dropout"] == 0.0 and hp.values["learning_rate"] == 1e-3
    assert model.output_shape == (None, *shape, levels)
    if cls is PixelCNNHyperModel:
        assert model.get_layer(f"block{layers - 1}_3x3").filters == width
        assert model.get_layer("input_conv").filters == 2 * width
    else:
        assert _lstm_units(model) == {width}
        lstms = [
            layer for layer in model.layers if layer.name.endswith("_lstm")
        ]
        assert len(lstms) == layers
    assert isinstance(model.loss, DiscreteNLL)


def test_non_default_values_and_fixed_values():
    hm = RowLSTMHyperModel(
        (8, 8, 1),
        2,
        num_layers=2,
        width=[4, 8],
        dropout=0.25,
        weight_decay=[1e-4],
        learning_rate=3e-4,
    )
    hp = keras_tuner.HyperParameters()
    hm.declare_hyperparameters(hp)
    hp.values["width"] = 8
    model = hm.build(hp)
    assert _lstm_units(model) == {8}
    assert model.get_layer("layer1_dropout").rate == 0.25
    assert np.isclose(float(model.optimizer.learning_rate), 3e-4)
    assert np.isclose(model.optimizer.weight_decay, 1e-4)
    assert [p.name for p in hp.space] == [
        "num_layers",
        "width",
        "dropout",
        "weight_decay",
        "learning_rate",
    ]


def test_empty_choice_list_is_refused():
    with pytest.raises(ValueError, match="width=\\[\\]"):
        PixelCNNHyperModel((8, 8, 1), 2, width=[]).build(
            keras_tuner.HyperParameters()
        )


def _args(data_dir, directory, trials, extra=()):
    return [
        "--model",
        "pixelcnn",
        "--dataset",
        "binarized_mnist",
        "--data-dir",
        str(data_dir),
        "--tuner",
        "grid",
        "--search",
        "dropout",
        "weight_decay",
        "--dropout",
        "0.0",
        "0.5",
        "--weight-decay",
        "0.0",
        "--num-layers",
        "1",
        "--width",
        "4",
        "--max-trials",
        str(trials),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--validation-size",
        "16",
        "--directory",
        str(directory),
        *extra,
    ]


def test_two_trial_search_end_to_end(tmp_path):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=48, num_test=8)
    rows = search.main(_args(tmp_path / "data", tmp_path / "s", 2))
    assert len(rows) == 2
    assert {r["dropout"] for r in rows} == {0.0, 0.5}
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert all(0 < r["val_bits_per_dim"] < 2 for r in rows)
    csv_text = (tmp_path / "s" / "trials.csv").read_text()
    assert (
        csv_text.splitlines()[0]
        == "trial,status,dropout,weight_decay,val_bits_per_dim"
    )
    assert (tmp_path / "s" / "trials.png").stat().st_size > 5000
    assert len(os.listdir(tmp_path / "s" / "tensorboard")) == 2


def _trial_files(directory):
    project = directory / "pixelcnn_binarized_mnist"
    found = {}
    if project.exists():
        for name in os.listdir(project):
            path = project / name / "trial.json"
            if name.startswith("trial_") and path.exists():
                found[name] = json.loads(path.read_text())
    return found


# The search, killed (SIGKILL, nothing flushed) the moment its second
# trial begins: a fixed point in the run, not a poll of its files.
KILLED_AT_THE_SECOND_TRIAL = """
import os, signal, sys
from keras_tuner.src.engine import base_tuner
from tuning import search

begin_trial = base_tuner.BaseTuner.on_trial_begin

def die_at_the_second(self, trial):
    if len(self.oracle.trials) > 1:
        os.kill(os.getpid(), signal.SIGKILL)
    begin_trial(self, trial)

base_tuner.BaseTuner.on_trial_begin = die_at_the_second
search.main(sys.argv[1:])
"""


def test_killed_search_resumes_without_repeating(tmp_path):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=160, num_test=8)
    args = _args(tmp_path / "data", tmp_path / "s", 2, ["--epochs", "3"])
    command = [sys.executable, "-c", KILLED_AT_THE_SECOND_TRIAL, *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    process = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]
    before = _trial_files(tmp_path / "s")
    finished = {k: v for k, v in before.items() if v["status"] == "COMPLETED"}
    assert len(finished) == 1

    rows = search.main(args)
    after = _trial_files(tmp_path / "s")
    assert sum(t["status"] == "COMPLETED" for t in after.values()) == 2
    assert len(rows) == 2
    for name, trial in finished.items():
        assert after[name] == trial  # not run again
