"""PixelCNN++ here against `tfp.distributions.PixelCNN`, at the same sizes,
in one sitting: training images/s and sampling seconds per image.

TensorFlow Probability's PixelCNN is built on Keras 2 (`tf_keras`) and is
no dependency of this project: it runs in a virtual environment of its
own, given by `--tfp-python` (TFP 0.25 with `tf-keras`; see
docs/pixelcnn_pp.md), in a subprocess that imports nothing from here.
Both sides build the same network: `num_resnet` gated blocks per
resolution and stream, three resolutions, `filters` channels,
`num_mixtures` components, no dropout, no weight normalisation (TFP's
default has it; this project's PixelCNN++ has none), 32 x 32 x 3, 256
levels. Training: the median of `--steps` timed steps after
`--warmup` (Adam, the batch's mean NLL, a compiled step on both sides).
Sampling: one call of `--sample-batch` images after a first call (TFP's
`sample` re-runs the whole network per pixel; ours is the fast sampler,
`method="naive"` timed too by a few passes). The dense float32 matmul
roof is measured in the same run. Writes JSON and prints a table.

Example:
    python -m benchmarks.tfp_pixelcnn --tfp-python /path/to/tfp-venv/bin/python
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPE = (32, 32, 3)


def _median_step(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_tfp(args):
    """The TFP side, in the TFP environment: a dict of figures."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tf.random.set_seed(0)
    dist = tfp.distributions.PixelCNN(
        image_shape=SHAPE,
        num_resnet=args.num_resnet,
        num_hierarchies=3,
        num_filters=args.filters,
        num_logistic_mix=args.num_mixtures,
        dropout_p=0.0,
        use_weight_norm=False,
        use_data_init=False,
    )
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (args.batch, *SHAPE)), tf.float32)
    dist.log_prob(x)  # builds the network's variables
    variables = dist.trainable_variables
    optimizer = tf.optimizers.Adam(1e-3)

    @tf.function
    def train_step(images):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(images))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    seconds = _median_step(
        lambda: train_step(x).numpy(), args.warmup, args.steps
    )
    sample = tf.function(lambda: dist.sample(args.sample_batch, seed=1))
    start = time.perf_counter()
    sample().numpy()
    first = time.perf_counter() - start
    start = time.perf_counter()
    sample().numpy()
    sampled = time.perf_counter() - start
    return {
        "parameters": int(sum(np.prod(v.shape) for v in variables)),
        "train_images_per_s": args.batch / seconds,
        "sample_first_call_s": first,
        "sample_s_per_image": sampled / args.sample_batch,
        "versions": {"tensorflow": tf.__version__, "tfp": tfp.__version__},
    }


def measure_ours(args):
    """This project's side: a dict of figures."""
    import keras
    import numpy as np

    from pixel_models.models import PixelCNNPlusPlus
    from pixel_models.sampling import sample

    keras.utils.set_random_seed(0)
    model = PixelCNNPlusPlus(
        SHAPE,
        num_resnet=args.num_resnet,
        filters=args.filters,
        num_mixtures=args.num_mixtures,
        dropout=0.0,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch, *SHAPE)).astype("float32")
    seconds = _median_step(
        lambda: model.train_on_batch(x, x), args.warmup, args.steps
    )
    n = args.sample_batch
    start = time.perf_counter()
    sample(model, n, seed=0, progress=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sample(model, n, seed=1, progress=False)
    sampled = time.perf_counter() - start
    # Naive: a few timed full passes times the number of sub-pixels.
    zeros = np.zeros((n, *SHAPE), "float32")
    model.predict_on_batch(zeros)
    naive = _median_step(lambda: model.predict_on_batch(zeros), 1, 8)
    return {
        "parameters": int(model.count_params()),
        "train_images_per_s": args.batch / seconds,
        "sample_first_call_s": first,
        "sample_s_per_image": sampled / n,
        "naive_sample_s_per_image": naive * int(np.prod(SHAPE)) / n,
        "versions": {"keras": keras.__version__},
    }


def table(result):
    ours, tfp = result["ours"], result["tfp"]
    lines = [
        "| | parameters | train img/s | sample s/img | first sample call |",
        "|---|---|---|---|---|",
    ]
    for name, r in (
        ("pixel-models (Keras 3)", ours),
        ("TFP 0.25 (tf_keras)", tfp),
    ):
        cells = [
            name,
            f"{r['parameters']:,}",
            f"{r['train_images_per_s']:.1f}",
            f"{r['sample_s_per_image']:.3f}",
            f"{r['sample_first_call_s']:.1f} s",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    train = ours["train_images_per_s"] / tfp["train_images_per_s"]
    faster = tfp["sample_s_per_image"] / ours["sample_s_per_image"]
    lines.append(f"| ours / TFP | | {train:.2f}x | {faster:.0f}x faster | |")
    return "\n".join(lines)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tfp-python", help="the TFP environment's python")
    parser.add_argument(
        "--tfp-worker", action="store_true", help=argparse.SUPPRESS
    )
    parser.add_argument("--num-resnet", type=int, default=1)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--num-mixtures", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sample-batch", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/tfp_pixelcnn.json")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.tfp_worker:
        print(json.dumps(measure_tfp(args)))
        return None
    if not args.tfp_python:
        raise SystemExit("--tfp-python: the TFP environment's python is needed")
    from benchmarks.common import matmul_roof, write_report

    roof = matmul_roof(False)["flops_per_s"]
    flags = [a for a in (argv if argv is not None else sys.argv[1:])]
    worker = subprocess.run(
        [args.tfp_python, os.path.abspath(__file__), "--tfp-worker", *flags],
        check=True,
        capture_output=True,
        text=True,
    )
    tfp = json.loads(worker.stdout.strip().splitlines()[-1])
    print("TFP:", tfp, flush=True)
    ours = measure_ours(args)
    print("ours:", ours, flush=True)
    result = {"ours": ours, "tfp": tfp}
    print(table(result))
    print(
        f"Dense float32 matmul roof in the same run: {roof / 1e9:.0f} GFLOP/s"
    )
    sizes = {
        k: getattr(args, k)
        for k in (
            "num_resnet",
            "filters",
            "num_mixtures",
            "batch",
            "sample_batch",
            "steps",
        )
    }
    return write_report(args.out, [result], matmul_flops=roof, **sizes)


if __name__ == "__main__":
    main()
