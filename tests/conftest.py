"""Test set-up: quiet TensorFlow, deterministic seeds."""

import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

OTHER_BACKENDS = ("jax", "torch")
WAIT_TEST = "test_every_backend_tests_pass"
_BACKEND_RUNS = pytest.StashKey[dict]()
_BACKEND_COUNT = pytest.StashKey[int]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tensorflow_only: tests TensorFlow's own machinery (tf.function, "
        "XLA, tf ops, tf.distribute); skipped on the other backends",
    )
    config.addinivalue_line(
        "markers",
        "every_backend: also run on JAX and PyTorch, by test_backends.py "
        "(normalisation, input checks, sampling, end to end)",
    )


def pytest_collection_modifyitems(config, items):
    # The waits for the other backends' runs go last, so that those runs
    # go on beside every other test of this one.
    items.sort(key=lambda item: getattr(item, "originalname", "") == WAIT_TEST)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow only; backend is {backend}")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session):
    """Starts the JAX and PyTorch runs of the `every_backend` tests when
    `test_backends.py` asks for them, so that they run beside this run
    instead of after it; `other_backend_run` waits for one."""
    if keras.backend.backend() != "tensorflow":
        return
    names = {getattr(item, "originalname", None) for item in session.items}
    if WAIT_TEST not in names:
        return
    # The other backends run exactly the `every_backend` tests collected
    # here, so that their count is known (`other_backend_run`).
    root = str(session.config.rootpath)
    tests = [
        os.path.join(root, item.nodeid)
        for item in session.items
        if "every_backend" in item.keywords
    ]
    count = len(tests)
    if not tests:
        here = os.path.dirname(os.path.abspath(__file__))
        tests = ["-m", "every_backend", here]
    runs = {}
    for backend in OTHER_BACKENDS:
        log = tempfile.TemporaryFile("w+")
        command = [sys.executable, "-m", "pytest", "-q", "-p"]
        process = subprocess.Popen(
            [*command, "no:cacheprovider", *tests],
            stdout=log,
            stderr=subprocess.STDOUT,
            # One thread each, at a lower priority: they take the cycles
            # this run leaves idle, and its wall-clock tests keep theirs.
            env=dict(os.environ, KERAS_BACKEND=backend, OMP_NUM_THREADS="1"),
            preexec_fn=lambda: os.nice(10),
        )
        runs[backend] = (process, log)
    session.config.stash[_BACKEND_RUNS] = runs
    session.config.stash[_BACKEND_COUNT] = count


def pytest_sessionfinish(session):
    for process, log in session.config.stash.get(_BACKEND_RUNS, {}).values():
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def other_backend_run(request):
    """`wait(backend, timeout)` -> (exit code, output, count) of the pytest
    run of the `every_backend` tests on `backend`, started at collection;
    `count` is the number of tests it was given (0: all of them, by the
    marker, when this run collected none)."""

    def wait(backend, timeout):
        process, log = request.config.stash[_BACKEND_RUNS][backend]
        process.wait(timeout)
        log.seek(0)
        count = request.config.stash[_BACKEND_COUNT]
        return process.returncode, log.read(), count

    return wait


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
