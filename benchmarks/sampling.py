"""Naive vs fast sampling time for each model family, in one run.

For each family and image size, draws `--num-samples` images with the
fast sampler (timed whole) and with the naive one (a full forward pass per
sub-pixel). Every naive step costs the same full pass, so by default the
naive time is the median of `--naive-steps` timed passes times the number
of sub-pixels; `--naive-steps 0` times the whole naive run instead.
Writes the figures to a JSON file and prints a table.

Example:
    python benchmarks/sampling.py --num-samples 16 \
        --out benchmarks/results/sampling.json
"""

import argparse
import statistics
import time

import keras
import numpy as np
from report import write_report

from pixel_models.models import build_model
from pixel_models.sampling import sample

SIZES = {"28x28x1": ((28, 28, 1), 2), "32x32x3": ((32, 32, 3), 256)}
FAMILIES = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")


def naive_seconds(model, num_samples, steps):
    """Seconds of a full naive run, from `steps` timed forward passes."""
    shape = model.input_shape[1:]
    if steps == 0:
        start = time.perf_counter()
        sample(model, num_samples, seed=0, method="naive", progress=False)
        return time.perf_counter() - start, False
    x = np.zeros((num_samples, *shape), "float32")
    model.predict_on_batch(x)  # trace once
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        np.asarray(model.predict_on_batch(x))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * int(np.prod(shape)), True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--naive-steps", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/sampling.json")
    args = parser.parse_args(argv)

    rows = []
    print(
        f"{'family':<16}{'size':<9}{'naive s':>10}{'fast s':>10}{'speedup':>10}"
    )
    for family in args.families:
        for size in args.sizes:
            shape, levels = SIZES[size]
            keras.utils.set_random_seed(0)
            model = build_model(
                family,
                shape,
                levels,
                num_layers=args.num_layers,
                width=args.width,
            )
            start = time.perf_counter()
            sample(model, args.num_samples, seed=0, progress=False)
            fast = time.perf_counter() - start
            naive, extrapolated = naive_seconds(
                model, args.num_samples, args.naive_steps
            )
            row = {
                "family": family,
                "size": size,
                "num_layers": args.num_layers,
                "width": args.width,
                "num_samples": args.num_samples,
                "fast_seconds": fast,
                "naive_seconds": naive,
                "naive_extrapolated": extrapolated,
                "speedup": naive / fast,
            }
            rows.append(row)
            print(
                f"{family:<16}{size:<9}{naive:>10.1f}{fast:>10.1f}"
                f"{naive / fast:>9.1f}x",
                flush=True,
            )
    return write_report(args.out, rows, naive_steps=args.naive_steps)


if __name__ == "__main__":
    main()
