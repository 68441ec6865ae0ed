"""Training and sampling throughput of each family on each Keras backend.

One process per backend (`KERAS_BACKEND` is read when Keras is imported),
all in one run, so that the figures compare. In each: the backend's own
dense float32 matmul roof (`keras.ops.matmul`, 2048^2), then for each
family at the MNIST size (binarized, 28x28x1, `--num-layers` x
`--width`):
- train: median seconds of `--steps` `train_on_batch` steps at
  `--batch-size`, after the first step (timed alone: tracing and
  compiling) and one more;
- forward: median of `--steps` `predict_on_batch` passes at batch
  `--num-samples`; naive sampling costs one such pass per pixel;
- fast sampling: `--num-samples` images drawn with
  `pixel_models.sampling.sample`, timed whole: the median of 3 draws
  after a first one.
Writes the figures to JSON and, with `--readme`, the table of the
README's "Backends" section.

Example:
    python -m benchmarks.backends --steps 8
"""

import argparse
import json
import time

from benchmarks.common import (
    DATASETS,
    FAMILIES,
    TITLES,
    matmul_roof,
    median_seconds,
    replace_between_markers,
    run_module,
    write_report,
)

BACKENDS = ("tensorflow", "jax", "torch")
SHAPE, LEVELS = DATASETS["mnist"]


def measure_family(family, args):
    """The figures of one family, in this process, as a dict."""
    import keras
    import numpy as np

    from pixel_models.models import build_model
    from pixel_models.sampling import sample
    from pixel_models.training import compile_model

    keras.utils.set_random_seed(0)
    model = build_model(
        family, SHAPE, LEVELS, num_layers=args.num_layers, width=args.width
    )
    compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.integers(0, LEVELS, (args.batch_size, *SHAPE)).astype("float32")
    start = time.perf_counter()
    model.train_on_batch(x, x)
    first_step = time.perf_counter() - start
    model.train_on_batch(x, x)
    step = median_seconds(lambda: model.train_on_batch(x, x), args.steps)

    batch = x[: args.num_samples]
    model.predict_on_batch(batch)
    forward = median_seconds(lambda: model.predict_on_batch(batch), args.steps)

    def draw():
        sample(model, args.num_samples, seed=0, progress=False)

    draw()  # the first draw reads the model's graph and weights
    fast = median_seconds(draw, 3)
    pixels = int(np.prod(SHAPE))
    return {
        "family": family,
        "parameters": model.count_params(),
        "first_step_s": first_step,
        "median_step_s": step,
        "train_images_per_s": args.batch_size / step,
        "forward_s": forward,
        "naive_images_per_s": args.num_samples / (forward * pixels),
        "fast_s": fast,
        "fast_images_per_s": args.num_samples / fast,
    }


def measure_backend(args):
    """Every family on the backend of this process; prints JSON lines."""
    import keras

    backend = keras.backend.backend()
    roof = matmul_roof(keras_ops=True)["flops_per_s"]
    print(json.dumps({"backend": backend, "matmul_flops": roof}))
    for family in args.families:
        result = measure_family(family, args)
        print(json.dumps({"backend": backend, **result}), flush=True)


def run_backend(backend, argv):
    env = {"KERAS_BACKEND": backend}
    return run_module("backends", ["--single", *argv], backend, env=env)


def table(roofs, rows, families):
    """The README's tables: training, then sampling; a row per family,
    the backends side by side."""
    by_key = {(r["backend"], r["family"]): r for r in rows}
    backends = list(roofs)
    head = "| family | " + " | ".join(backends) + " |"
    rule = "|---|" + "---|" * len(backends)
    train = [
        "Training, images/s (against the first backend) and the first "
        "step's seconds (tracing and compiling):",
        "",
        head,
        rule,
    ]
    sampling = [
        "Sampling, images/s: fast sampler, and naive (one forward pass "
        "per pixel):",
        "",
        head,
        rule,
    ]
    for family in families:
        first = by_key[(backends[0], family)]["train_images_per_s"]
        cells, sample_cells = [], []
        for b in backends:
            r = by_key[(b, family)]
            cells.append(
                f"{r['train_images_per_s']:.0f} "
                f"({r['train_images_per_s'] / first:.2f}x), "
                f"{r['first_step_s']:.0f} s"
            )
            sample_cells.append(
                f"{r['fast_images_per_s']:.1f}, {r['naive_images_per_s']:.2f}"
            )
        name = TITLES[family]
        train.append(f"| {name} | " + " | ".join(cells) + " |")
        sampling.append(f"| {name} | " + " | ".join(sample_cells) + " |")
    roof = "Dense float32 matmul roof (`keras.ops.matmul`, 2048^2): " + (
        ", ".join(f"{b} {roofs[b] / 1e9:.0f} GFLOP/s" for b in backends)
    )
    return "\n".join([*train, "", *sampling, "", roof + "."])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--num-layers", type=int, default=7)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/backends.json")
    parser.add_argument(
        "--readme", default=None, help="README to put the table in"
    )
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single:
        return measure_backend(args)

    forwarded = [
        "--families",
        *args.families,
        "--num-layers",
        str(args.num_layers),
        "--width",
        str(args.width),
        "--batch-size",
        str(args.batch_size),
        "--num-samples",
        str(args.num_samples),
        "--steps",
        str(args.steps),
    ]
    roofs, rows = {}, []
    for backend in args.backends:
        print(f"{backend}: measuring {', '.join(args.families)}", flush=True)
        for record in run_backend(backend, forwarded):
            if "matmul_flops" in record:
                roofs[backend] = record["matmul_flops"]
            else:
                rows.append(record)
                print(
                    f"  {record['family']:<16} train "
                    f"{record['train_images_per_s']:7.1f} img/s, fast "
                    f"sampling {record['fast_images_per_s']:6.2f} img/s, "
                    f"first step {record['first_step_s']:5.1f} s",
                    flush=True,
                )
    text = table(roofs, rows, args.families)
    print(text)
    if args.readme:
        replace_between_markers(args.readme, "backends table", text)
    return write_report(
        args.out,
        rows,
        matmul_flops=roofs,
        shape=list(SHAPE),
        levels=LEVELS,
        num_layers=args.num_layers,
        width=args.width,
        batch_size=args.batch_size,
        num_samples=args.num_samples,
        steps=args.steps,
    )


if __name__ == "__main__":
    main()
