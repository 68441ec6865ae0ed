"""What dropout costs a training step: `FastDropout` against the stock
`keras.layers.Dropout` call, and against no dropout.

Three models of one family and size, built in one process: without
dropout, with the project's `FastDropout` (the builders' layer), and the
same with the stock call (`keras.layers.Dropout.call` patched in while
that model is traced). Their train steps are timed in alternating rounds,
so that a noisy machine slows the three alike; medians and ratios go to
`--out` with the matmul roof of the same run.

Example:
    taskset -c 0 python -m benchmarks.dropout_speed --family pixelcnn \\
        --num-layers 15 --width 32 --dropout 0.1 \\
        --mixed-precision mixed_bfloat16
"""

import argparse
import statistics
import time
from unittest import mock

from benchmarks.common import DATASETS, describe_cpu, matmul_roof, write_report

VARIANTS = ("none", "fast", "stock")


def build(variant, args):
    """A compiled model of `variant`, traced on its first step."""
    import keras
    import numpy as np

    from pixel_models.layers import FastDropout
    from pixel_models.models import build_model
    from pixel_models.training import compile_model

    shape, levels = DATASETS[args.dataset]
    keras.utils.set_random_seed(0)
    rate = 0.0 if variant == "none" else args.dropout
    model = build_model(
        args.family,
        shape,
        levels,
        num_layers=args.num_layers,
        width=args.width,
        dropout=rate,
    )
    compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.integers(0, levels, size=(args.batch_size, *shape))
    x = x.astype("float32")
    stock = keras.layers.Dropout.call
    patch = (
        mock.patch.object(FastDropout, "call", stock)
        if variant == "stock"
        else mock.patch.object(FastDropout, "call", FastDropout.call)
    )
    with patch:
        for _ in range(args.warmup):
            model.train_on_batch(x, x)
    return model, x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="pixelcnn")
    parser.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    parser.add_argument("--num-layers", type=int, default=15)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="a round's")
    parser.add_argument(
        "--mixed-precision",
        default="float32",
        choices=("float32", "mixed_bfloat16"),
    )
    parser.add_argument(
        "--out", default="benchmarks/results/dropout_speed.json"
    )
    args = parser.parse_args(argv)

    from pixel_models.training import set_precision

    set_precision(args.mixed_precision)
    models = {variant: build(variant, args) for variant in VARIANTS}
    times = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant, (model, x) in models.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                model.train_on_batch(x, x)
                times[variant].append(time.perf_counter() - start)
    roof = matmul_roof()["flops_per_s"]
    step = {v: statistics.median(t) for v, t in times.items()}
    results = {
        variant: {
            "median_step_s": step[variant],
            "images_per_s": args.batch_size / step[variant],
            "step_over_no_dropout": step[variant] / step["none"],
        }
        for variant in VARIANTS
    }
    print(describe_cpu(), f"float32 matmul roof {roof / 1e9:.0f} GFLOP/s")
    print(
        f"{args.family} {args.num_layers} x {args.width}, dropout "
        f"{args.dropout}, {args.mixed_precision}, batch {args.batch_size}"
    )
    for variant, result in results.items():
        print(
            f"{variant:6s} {result['median_step_s'] * 1e3:8.1f} ms/step "
            f"{result['images_per_s']:7.1f} img/s "
            f"{result['step_over_no_dropout']:.2f}x the step without dropout"
        )
    write_report(
        args.out,
        results,
        settings=vars(args),
        cpu=describe_cpu(),
        float32_matmul_flops=roof,
    )
    return results


if __name__ == "__main__":
    main()
