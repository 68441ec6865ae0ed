"""Test set-up: quiet TensorFlow, deterministic seeds."""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers and the other backends' runs share the cores: one
    # thread each for TensorFlow's ops and the fused scans, not one per
    # core each (threads that wait for a core spin and take it). Set
    # before TensorFlow starts; the processes the tests start inherit it.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

# XLA's code unoptimised, here and in the processes the tests start (as
# in the JAX run below): compiling, not running, is what the suite's tiny
# models cost under XLA (the fast sampler's rows, the XLA training
# tests); the sampling and completion tests took 0.78x the time.
_FLAGS = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _FLAGS:
    os.environ["XLA_FLAGS"] = (
        f"{_FLAGS} --xla_backend_optimization_level=0".strip()
    )

import keras  # noqa: E402
import pytest  # noqa: E402

OTHER_BACKENDS = ("jax", "torch")
WAIT_TEST = "test_every_backend_tests_pass"
# The folder of the other backends' runs: their logs, exit codes and
# process ids, shared by the pytest-xdist workers (set by the controller
# before it starts them).
RUNS_FOLDER = "PIXEL_MODELS_TEST_BACKEND_RUNS"
_EVERY_BACKEND_COUNT = pytest.StashKey[int]()

# Runs a command with its output to a file, then writes its exit code:
# the run outlives the worker that started it, and any worker can wait.
_RUN_AND_RECORD = """
import os, subprocess, sys
log, code, command = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(log, "w") as out:
    returncode = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
with open(code + ".tmp", "w") as f:
    f.write(str(returncode))
os.replace(code + ".tmp", code)
"""
_CREATED = []  # the runs' folder, in the process that made it


def _worker_id(config):
    """This pytest-xdist worker's id ("gw0", ...), None in the controller
    or in a run without workers."""
    return getattr(config, "workerinput", {}).get("workerid")


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
    if _worker_id(config) is None and keras.backend.backend() == "tensorflow":
        _CREATED.append(tempfile.mkdtemp(prefix="backend-runs-"))
        os.environ[RUNS_FOLDER] = _CREATED[0]


def pytest_unconfigure(config):
    if not _CREATED:
        return
    folder = _CREATED.pop()
    for name in os.listdir(folder):
        if name.endswith(".pid"):
            with open(os.path.join(folder, name)) as f:
                pid = int(f.read())
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(folder, ignore_errors=True)
    del os.environ[RUNS_FOLDER]


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
    instead of after it; `other_backend_run` waits for one. Under
    pytest-xdist every worker collects the same tests, and the first
    starts the runs."""
    folder = os.environ.get(RUNS_FOLDER)
    if keras.backend.backend() != "tensorflow" or not folder:
        return
    names = {getattr(item, "originalname", None) for item in session.items}
    if WAIT_TEST not in names:
        return
    # The other backends run exactly the `every_backend` tests collected
    # here, so that their count is known.
    root = str(session.config.rootpath)
    tests = [
        os.path.join(root, item.nodeid)
        for item in session.items
        if "every_backend" in item.keywords
    ]
    session.config.stash[_EVERY_BACKEND_COUNT] = len(tests)
    if not tests:
        here = os.path.dirname(os.path.abspath(__file__))
        tests = ["-m", "every_backend", here]
    if _worker_id(session.config) not in (None, "gw0"):
        return
    for backend in OTHER_BACKENDS:
        path = os.path.join(folder, backend)
        command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p"]
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_AND_RECORD, path + ".log"]
            + [path + ".code", *command, "no:cacheprovider", *tests],
            # One thread each: they share the cores with this run. XLA's
            # code unoptimised (set above): on JAX the run took 0.64x the
            # time.
            env=dict(
                os.environ,
                KERAS_BACKEND=backend,
                OMP_NUM_THREADS="1",
            ),
            start_new_session=True,
        )
        with open(path + ".pid", "w") as f:
            f.write(str(process.pid))


@pytest.fixture
def other_backend_run(request):
    """`wait(backend, timeout)` -> (exit code, output, count) of the pytest
    run of the `every_backend` tests on `backend`, started at collection;
    `count` is the number of tests it was given (0: all of them, by the
    marker, when this run collected none)."""

    def wait(backend, timeout):
        path = os.path.join(os.environ[RUNS_FOLDER], backend)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path + ".code"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {backend} run took over {timeout} s")
            time.sleep(1)
        with open(path + ".code") as f:
            returncode = int(f.read())
        with open(path + ".log") as f:
            output = f.read()
        return returncode, output, request.config.stash[_EVERY_BACKEND_COUNT]

    return wait


@pytest.fixture(scope="session")
def claim_for_this_worker(request):
    """`claim(name)`, called by a costly fixture that its tests share
    through `xdist_group`: fails if another worker computed it already,
    that is if pytest-xdist's `--dist loadgroup` split the group (it
    does so silently under pytest 9.2, which setup.cfg rules out)."""
    worker = _worker_id(request.config)
    folder = os.environ.get(RUNS_FOLDER)

    def claim(name):
        if worker is None or not folder:
            return
        path = os.path.join(folder, f"group-{name}")
        mine = f"{path}.{worker}"
        with open(mine, "w") as f:
            f.write(worker)
        try:
            os.link(mine, path)  # atomic: fails if the name exists
        except FileExistsError:
            with open(path) as f:
                owner = f.read()
            if owner != worker:
                pytest.fail(
                    f"xdist_group {name!r} was split between workers "
                    f"{owner} and {worker}: run with --dist loadgroup on a "
                    "pytest that pytest-xdist groups under (setup.cfg)"
                )

    return claim


@pytest.fixture(scope="session", autouse=True)
def _fused_kernels_compiled_once(request):
    """Under pytest-xdist, the first worker here compiles the fused
    scan's numba kernels into their cache on disk while the other waits
    (the other backends' runs take its core meanwhile), and then loads
    them: one compile for the run, not one per worker."""
    from pixel_models.layers import RowLSTM, fused_scan

    folder = os.environ.get(RUNS_FOLDER)
    if _worker_id(request.config) is None or not folder:
        return
    if fused_scan.fused_unavailable():
        return
    import tensorflow as tf

    with open(os.path.join(folder, "fused-scan.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        layer = RowLSTM(2, fused=True)
        x = tf.ones((1, 2, 3, 1))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        tape.gradient(y, [x, *layer.trainable_weights])


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
    # Without the full garbage collection that clear_session runs by
    # default: it took about half a second after every test, and
    # Python's own collector still runs.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def no_downloads(monkeypatch):
    """Makes every Keras downloader fail and unsets the data directory, so
    a test that would download fails instead."""

    def fail(*args, **kwargs):
        raise OSError("downloads are disabled in tests")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fail)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fail)
    monkeypatch.delenv("PIXEL_MODELS_DATA_DIR", raising=False)
