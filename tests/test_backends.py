"""The package on every Keras backend: TensorFlow, JAX and PyTorch.

The tests marked `every_backend` (normalisation of every family, the
input checks, fast against naive sampling, a training script end to
end) run again in one pytest process per other backend, started at
collection so that they run beside the TensorFlow run (`conftest.py`).
Every family, saved on any backend, must reload in a fresh process on
each of the three with the same logits.
"""

import itertools
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from backend_worker import MODELS
from datafiles import write_mnist

BACKENDS = ("tensorflow", "jax", "torch")
TESTS = os.path.dirname(os.path.abspath(__file__))

# Started once, from the run on the default backend, not from the runs it
# starts itself.
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="started from the TensorFlow run",
)


def _env(backend):
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_backend_tests_pass(backend, other_backend_run):
    # The run was started at collection (conftest.py), beside this one.
    returncode, output, count = other_backend_run(backend, timeout=1200)
    lines = output.strip().splitlines()
    summary = lines[-1] if lines else ""
    assert returncode == 0, output[-8000:]
    found = re.search(r"(\d+) passed", summary)
    passed = int(found.group(1)) if found else 0
    # Every test it was given passed there (when this run collected none,
    # the marker chose them there and their count is not known here).
    assert passed == count if count else passed > 0, summary
    # A test the other backends skip is one nobody runs there.
    assert "skipped" not in summary and "failed" not in summary, summary


def _run_all(folder):
    """Runs the worker on every backend at once; fails with its stderr."""
    worker = os.path.join(TESTS, "backend_worker.py")
    count = str(len(BACKENDS))
    processes = {
        backend: subprocess.Popen(
            [sys.executable, worker, str(folder), count],
            env=_env(backend),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for backend in BACKENDS
    }
    for backend, process in processes.items():
        _, stderr = process.communicate(timeout=600)
        message = f"on {backend}:\n{stderr[-4000:]}"
        assert process.returncode == 0, message


def test_a_keras_file_moves_between_backends_with_the_same_logits(tmp_path):
    # Each backend's process saves its files, waits for the others' and
    # loads them all.
    _run_all(tmp_path)
    # Loaded in a fresh process on the backend that saved it, too.
    for saved_on, loaded_on in itertools.product(BACKENDS, repeat=2):
        for name in MODELS:
            expected = np.load(tmp_path / f"{saved_on}-{name}.saved.npy")
            actual = np.load(tmp_path / f"{saved_on}-{name}.on-{loaded_on}.npy")
            assert expected.ndim == 5 and np.ptp(expected) > 0.1, name
            np.testing.assert_allclose(
                actual,
                expected,
                atol=1e-5,
                rtol=0,
                err_msg=f"{name} saved on {saved_on}, loaded on {loaded_on}",
            )
    # The three backends build the same model from the same seed and
    # weights, so they agree before any file moves too.
    for name in MODELS:
        tf_logits = np.load(tmp_path / f"tensorflow-{name}.saved.npy")
        for backend in ("jax", "torch"):
            other = np.load(tmp_path / f"{backend}-{name}.saved.npy")
            np.testing.assert_allclose(other, tf_logits, atol=1e-5, rtol=0)


# Run in a fresh process on JAX, with TensorFlow hidden from every import
# (as on a GPU server whose Python has JAX or PyTorch alone).
WITHOUT_TENSORFLOW = """
import json, os, sys

class Hidden:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "tensorflow_datasets"):
            return None
        return self.finder.find_spec(name, path, target)

sys.meta_path[:] = [Hidden(finder) for finder in sys.meta_path]
sys.path.insert(0, sys.argv[1])
import train_mnist

results = train_mnist.main(sys.argv[2:])
loaded = [name for name in ("tensorflow", "tensorflow_datasets")
          if name in sys.modules]
print(json.dumps({"results": results, "loaded": loaded}))
"""


def test_a_run_trains_where_tensorflow_is_not_installed(tmp_path):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=40, num_test=8)
    run = tmp_path / "run"
    examples = os.path.join(TESTS, "..", "examples")
    flags = "--dataset binarized_mnist --validation-size 8 --epochs 2"
    flags += " --num-layers 1 --width 4 --batch-size 16 --sample-every 1"
    process = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW, examples]
        + flags.split()
        + ["--data-dir", str(tmp_path / "data"), "--log-dir", str(run)],
        env=_env("jax"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []  # not imported, not even by Keras
    assert np.isfinite(report["results"]["bits_per_dim"])
    assert report["results"]["num_images"] == 8
    # The run's records, all but TensorBoard's (which TensorFlow writes).
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]
    assert (run / "model.keras").is_file()
    assert (run / "checkpoints" / "best.keras").is_file()
    assert not (run / "tensorboard").exists()
