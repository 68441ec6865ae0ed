"""What every benchmark shares: the families and their names, the sizes,
the machine and its matmul roof, timing, the report files, and running a
benchmark in a process of its own.

Nothing here imports `pixel_models`, so that a benchmark can choose which
copy of the package its process imports (`speedup` times a baseline's).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# The repository: the default folder of the reports, and the one a
# benchmark's own processes import the package from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# In the reports' order: the PixelRNN paper's three, then the Gated one.
FAMILIES = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")
CONVOLUTIONAL = ("pixelcnn", "gated_pixelcnn")
RECURRENT = ("row_lstm", "diagonal_bilstm")
TITLES = {
    "pixelcnn": "PixelCNN",
    "row_lstm": "Row LSTM",
    "diagonal_bilstm": "Diagonal BiLSTM",
    "gated_pixelcnn": "Gated PixelCNN",
    "pixelcnn_pp": "PixelCNN++",
}
# (input shape, levels) of the two image sizes the paper reports.
DATASETS = {
    "mnist": ((28, 28, 1), 2),
    "cifar10": ((32, 32, 3), 256),
}
# (layers, width) that the benchmarks time on each by default.
SMALL_SIZES = {"mnist": (7, 16), "cifar10": (3, 48)}


def paper_size(family):
    """`(layers, width)` of the papers' CIFAR-10 model of `family`: 12
    PixelRNN or 15 PixelCNN layers of h = 128, which becomes 129 (RGB
    needs widths divisible by 3)."""
    return (12 if family in RECURRENT else 15), 129


def parse_size(text):
    """`"LAYERSxWIDTH"` -> `(layers, width)`."""
    try:
        layers, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LAYERSxWIDTH such as 7x16. Received: {text!r}"
        ) from None
    return layers, width


def median_seconds(fn, repeats):
    """The median wall-clock seconds of `repeats` calls of `fn()`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _tensorflow_product(n, dtype):
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    return lambda: matmul(a, b).numpy()


def _keras_product(n, dtype):
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (
        keras.ops.convert_to_tensor(rng.normal(size=(n, n)), dtype)
        for _ in range(2)
    )

    def product():
        keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.matmul(a, b)))

    return product


def matmul_roof(gpu=False, repeats=10, keras_ops=False, dtype="float32"):
    """Dense matmul FLOP/s of this machine: the physical limit.

    Args:
        gpu: whether TensorFlow sees a GPU (`describe_device`); the
            product is then 8192 x 8192, else 2048 x 2048.
        repeats: products timed after a first (tracing, warming up); the
            median counts.
        keras_ops: time `keras.ops.matmul` on the backend Keras runs,
            instead of a `tf.function` of `tf.matmul`.
        dtype: of the matrices ("bfloat16": the roof of a mixed
            bfloat16 policy: 1.7x float32's on a Zen 4 core, several
            times on CPUs with AMX).

    Returns:
        `{"n": n, "flops_per_s": flops_per_s}`.
    """
    n = 8192 if gpu else 2048
    product = (_keras_product if keras_ops else _tensorflow_product)(n, dtype)
    product()
    return {"n": n, "flops_per_s": 2 * n**3 / median_seconds(product, repeats)}


def cpu_name():
    """The CPU's model name (from `/proc/cpuinfo` where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line for line in f if line.startswith("model name")]
        return names[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


def describe_device():
    """The accelerator (or CPU) TensorFlow uses, in words.

    Returns:
        `(words, gpu)`, `gpu` True where TensorFlow sees a GPU.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", "GPU")
        return f"{len(gpus)} x {name} (GPU)", True
    return f"CPU: {cpu_name()}, {os.cpu_count()} cores (no GPU)", False


def describe_cpu():
    """This process's CPUs in words: the model, and the cores it may run
    on (`taskset`) of the machine's."""
    cores = len(os.sched_getaffinity(0))
    return f"CPU: {cpu_name()}, {cores} of {os.cpu_count()} cores"


def write_report(path, results, **settings):
    """Writes `{"machine", **settings, "results"}` to `path` and says so.

    Returns:
        The report dict.
    """
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
        },
        **settings,
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"Wrote {path}")
    return report


def replace_between_markers(path, name, text):
    """Puts `text` between the `<!-- NAME: start -->` and `<!-- NAME: end
    -->` markers of the file at `path` (a README table, say).

    Returns:
        False, changing nothing, when the file lacks the markers.
    """
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    with open(path) as f:
        content = f.read()
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(f"{head}{start}\n{text}\n{end}{tail}")
    print(f"Updated the {name} in {path}")
    return True


def run_module(name, argv, what, env=None, capture_stderr=True):
    """Runs `python -m benchmarks.NAME ARGV` in a process of its own (its
    own peak memory, its own Keras backend) and reads what it printed.

    Args:
        name: the benchmark's module, such as `"train_throughput"`.
        argv: its arguments.
        what: what it measures, in words, for the error.
        env: variables to set for it, beside the quiet TensorFlow log.
        capture_stderr: False lets its stderr (progress, errors) through.

    Returns:
        The JSON objects (or lists) it printed, each on a line of its own,
        in order.

    Raises:
        RuntimeError: when it fails, with the end of its stderr.
    """
    paths = (ROOT, os.environ.get("PYTHONPATH"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    process = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else None,
        text=True,
        env=env,
        check=False,
    )
    if process.returncode != 0 and capture_stderr:
        raise RuntimeError(f"{what} failed:\n{process.stderr[-3000:]}")
    if process.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {process.returncode}); its error is "
            "printed above."
        )
    return [
        json.loads(line)
        for line in process.stdout.splitlines()
        if line.startswith(("{", "["))
    ]


def pyplot():
    """`matplotlib.pyplot`, drawing to files (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
