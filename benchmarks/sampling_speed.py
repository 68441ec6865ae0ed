"""Sampling speed of each model family, in one run: the compiled fast
sampler at two batch sizes, an earlier sampler, and the naive one.

For each family and image size it times, on the backend Keras runs:
- the fast sampler (`pixel_models.sampling`, one compiled call per row):
  its first call (tracing and compiling) apart, then the median of
  `--repeats` calls, at `--batch` images and at each `--large-batch`;
- the fast sampler of `--baseline`, a git revision (by default the NumPy
  executor that the compiled sampler replaced), read from git and run on
  the same models in this process;
- the naive sampler (a full forward pass per sub-pixel): by default the
  median of `--naive-steps` timed passes times the number of sub-pixels.
The dense float32 matmul roof measured in the same run comes with the
figures, so that runs on different machines can be compared. Writes JSON
and prints a table; `--readme PATH` also rewrites the table between the
`sampling table` markers there.

Example:
    python -m benchmarks.sampling_speed --out benchmarks/results/sampling.json
"""

import argparse
import importlib.util
import subprocess
import sys
import time

import keras
import numpy as np

from benchmarks.common import (
    DATASETS,
    FAMILIES,
    ROOT,
    TITLES,
    matmul_roof,
    median_seconds,
    replace_between_markers,
    write_report,
)
from pixel_models.models import build_model
from pixel_models.sampling import sample, sample_fast

# The two image sizes, by name: "28x28x1" and "32x32x3".
SIZES = {
    "x".join(str(side) for side in shape): (shape, levels)
    for shape, levels in DATASETS.values()
}
# The last commit with the NumPy executor (`_FastExecutor`).
NUMPY_SAMPLER = "c7e5423"


def load_baseline(revision):
    """`pixel_models/sampling.py` of a git revision, as a module."""
    source = subprocess.run(
        ["git", "-C", ROOT, "show", f"{revision}:pixel_models/sampling.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("baseline_sampling", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{revision}:sampling.py", "exec"), module.__dict__)
    return module


def naive_seconds(model, num_samples, steps):
    """Seconds of a full naive run, from `steps` timed forward passes
    (`steps=0`: the whole run, timed), and whether it was extrapolated."""
    shape = model.input_shape[1:]
    if steps == 0:
        start = time.perf_counter()
        sample(model, num_samples, seed=0, method="naive", progress=False)
        return time.perf_counter() - start, False
    x = np.zeros((num_samples, *shape), "float32")
    model.predict_on_batch(x)  # trace once
    seconds = median_seconds(lambda: model.predict_on_batch(x), steps)
    return seconds * int(np.prod(shape)), True


def noise_for(model, n):
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(0).random((n, *shape))


def measure(family, size, args, baseline):
    shape, levels = SIZES[size]
    keras.utils.set_random_seed(0)
    model = build_model(
        family, shape, levels, num_layers=args.num_layers, width=args.width
    )
    row = {"family": family, "size": size}

    def fast(n):
        noise = noise_for(model, n)
        return lambda: sample_fast(
            model, noise, None, 1.0, None, False, None, False
        )

    start = time.perf_counter()
    fast(args.batch)()
    row["fast_first_call_s"] = time.perf_counter() - start
    for n in (args.batch, *args.large_batch):
        if n != args.batch and (family, size) not in LARGE:
            continue
        if n != args.batch:
            fast(n)()  # compile for this batch size
        seconds = median_seconds(fast(n), args.repeats)
        row[f"fast_images_per_s_{n}"] = n / seconds
    if baseline is not None:
        noise = noise_for(model, args.batch)
        seconds = median_seconds(
            lambda: baseline._fast(model, noise, None, 1.0, None, False),
            args.repeats,
        )
        row["baseline_images_per_s"] = args.batch / seconds
        row["new_time_over_baseline"] = (
            row["baseline_images_per_s"]
            / row[f"fast_images_per_s_{args.batch}"]
        )
    naive, _ = naive_seconds(model, args.batch, args.naive_steps)
    row["naive_images_per_s"] = args.batch / naive
    row["fast_over_naive"] = (
        row[f"fast_images_per_s_{args.batch}"] / row["naive_images_per_s"]
    )
    return row


# Where the large batch is measured (the target: PixelCNN and
# Gated PixelCNN at 32x32x3).
LARGE = {("pixelcnn", "32x32x3"), ("gated_pixelcnn", "32x32x3")}


def table(rows, args, roof, backend, baseline):
    b, large = args.batch, args.large_batch
    head = (
        f"| family | size | fast img/s, batch {b} | "
        + "".join(f"batch {n} | x batch {b} | " for n in large)
        + f"{baseline} img/s | new time / {baseline} | naive img/s | "
        "fast / naive |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [
            TITLES[r["family"]],
            r["size"],
            f"{r[f'fast_images_per_s_{b}']:.1f}",
        ]
        for n in large:
            value = r.get(f"fast_images_per_s_{n}")
            cells += (
                [f"{value:.1f}", f"{value / r[f'fast_images_per_s_{b}']:.2f}x"]
                if value
                else ["", ""]
            )
        if "baseline_images_per_s" in r:
            cells += [
                f"{r['baseline_images_per_s']:.1f}",
                f"{r['new_time_over_baseline']:.2f}",
            ]
        else:
            cells += ["", ""]
        cells += [
            f"{r['naive_images_per_s']:.3f}",
            f"{r['fast_over_naive']:.0f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"{backend} backend, {args.num_layers} layers of h = {args.width}; "
        f"medians of {args.repeats} calls after a first; naive: "
        f"{args.naive_steps} timed full passes times the number of "
        f"sub-pixels. Dense float32 matmul roof in the same run: "
        f"{roof / 1e9:.0f} GFLOP/s."
    )
    return "\n".join(lines) + "\n\n" + note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--large-batch", type=int, nargs="*", default=[128])
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-steps", type=int, default=32)
    parser.add_argument(
        "--baseline",
        default=NUMPY_SAMPLER,
        help="git revision whose fast sampler to time too ('' for none); "
        "default: the NumPy executor the compiled sampler replaced",
    )
    parser.add_argument("--out", default="benchmarks/results/sampling.json")
    parser.add_argument("--readme", help="rewrite its sampling table")
    args = parser.parse_args(argv)

    backend = keras.backend.backend()
    baseline = load_baseline(args.baseline) if args.baseline else None
    roof = matmul_roof(False)["flops_per_s"]
    print(f"matmul roof: {roof / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    for family in args.families:
        for size in args.sizes:
            rows.append(measure(family, size, args, baseline))
            print(rows[-1], flush=True)
    text = table(rows, args, roof, backend, args.baseline or "baseline")
    print(text)
    if args.readme and not replace_between_markers(
        args.readme, "sampling table", text
    ):
        print(f"{args.readme} has no sampling table markers", file=sys.stderr)
    return write_report(
        args.out,
        rows,
        backend=backend,
        batch=args.batch,
        large_batch=args.large_batch,
        num_layers=args.num_layers,
        width=args.width,
        repeats=args.repeats,
        naive_steps=args.naive_steps,
        baseline=args.baseline,
        matmul_flops=roof,
    )


if __name__ == "__main__":
    main()
