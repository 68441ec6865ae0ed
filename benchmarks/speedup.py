"""Training images/s of this code against an earlier commit, back to back.

Checks out `--baseline` (any git revision) into a temporary worktree and,
for each configuration, times training steps with this tree's
`benchmarks/train_throughput.py` on the baseline's package, then on this
tree's, each in its own process, alternated (before, after, before,
after, ...) for `--rounds` rounds so that drift in the machine shows in
both; with `--unrolled` the recurrent families are also timed with
`unroll=True`. Each figure is the median over rounds, with the spread
(lowest and highest) and CPU seconds per image beside it. The dense
matmul roof is measured in the same run, so each figure is also given as
a % of the roof (training FLOPs from `benchmarks/flops.py`).

Example (about 20 minutes on two CPU cores):
    python -m benchmarks.speedup --baseline cbee830 --rounds 3 \
        --out benchmarks/results/speedup.json
"""

import argparse
import os
import statistics
import subprocess
import tempfile

from benchmarks.common import (
    CONVOLUTIONAL,
    DATASETS,
    RECURRENT,
    ROOT,
    SMALL_SIZES,
    describe_device,
    matmul_roof,
    run_module,
    write_report,
)
from benchmarks.train_throughput import add_config_argument

DEFAULT_CONFIGS = [
    (family, dataset, layers, width)
    # The Diagonal BiLSTM and the Row LSTM, whose scans the speed-ups
    # were for, then the PixelCNNs.
    for family in (*RECURRENT[::-1], *CONVOLUTIONAL)
    for dataset, (layers, width) in SMALL_SIZES.items()
]


def time_steps(tree, config, args, unroll=False):
    """Images/s of one configuration with the package in `tree`."""
    argv = [
        "--single",
        ",".join(str(v) for v in config),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--package-from",
        tree,
    ]
    if unroll:
        argv.append("--unroll")
    return run_module("train_throughput", argv, f"{config} in {tree}")[-1]


def spread(values):
    """`lo-hi img/s, c CPU ms/img` of a variant's runs."""
    rates = [v["images_per_s"] for v in values]
    cpu = statistics.median(v["cpu_s_per_image"] for v in values)
    low, high = min(rates), max(rates)
    return f"{low:.0f}-{high:.0f} img/s, {1e3 * cpu:.1f} cpu ms/img"


def train_flops_per_image(config):
    """Training FLOPs per image of a configuration (this tree's count)."""
    from benchmarks.flops import train_flops
    from pixel_models.models import build_model

    family, dataset, layers, width = config
    shape, levels = DATASETS[dataset]
    model = build_model(family, shape, levels, num_layers=layers, width=width)
    return train_flops(model)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        required=True,
        help="git revision to compare against, e.g. the commit before a "
        "speed-up",
    )
    add_config_argument(
        parser, "every family at 7x16 on MNIST and 3x48 on CIFAR-10"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="times each pair is timed, alternated; the median is reported",
    )
    parser.add_argument(
        "--unrolled",
        action="store_true",
        help="also time the recurrent families with unroll=True",
    )
    parser.add_argument("--out", default="benchmarks/results/speedup.json")
    return parser


def compare(config, old_tree, args, roof):
    """One configuration before and after, `--rounds` times alternated:
    its row of figures, printed as well."""
    variants = {"before": (old_tree, False), "after": (ROOT, False)}
    if args.unrolled and config[0] in RECURRENT:
        variants["after_unrolled"] = (ROOT, True)
    runs = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (tree, unroll) in variants.items():
            runs[name].append(time_steps(tree, config, args, unroll))
    flops = train_flops_per_image(config)
    row = {
        "family": config[0],
        "dataset": config[1],
        "num_layers": config[2],
        "width": config[3],
        "train_flops_per_image": flops,
    }
    for name, values in runs.items():
        rates = [v["images_per_s"] for v in values]
        rate = statistics.median(rates)
        row[f"{name}_images_per_s"] = rate
        row[f"{name}_images_per_s_all"] = rates
        row[f"{name}_cpu_s_per_image"] = statistics.median(
            v.get("cpu_s_per_image", float("nan")) for v in values
        )
        row[f"{name}_roof_percent"] = 100 * rate * flops / roof
        row[f"{name}_ratio"] = rate / row["before_images_per_s"]
    unrolled = (
        ""
        if "after_unrolled_images_per_s" not in row
        else (
            f"{row['after_unrolled_images_per_s']:>10.1f}"
            f"{row['after_unrolled_ratio']:>6.2f}x"
            f"{row['after_unrolled_roof_percent']:>7.1f}%"
        )
    )
    print(
        f"{config[0]:<16}{config[1]:<9}"
        f"{f'{config[2]}x{config[3]}':>6}"
        f"{row['before_images_per_s']:>9.1f}"
        f"{row['after_images_per_s']:>9.1f}"
        f"{row['after_ratio']:>6.2f}x"
        f"{row['after_roof_percent']:>7.1f}%{unrolled}"
        f"   before {spread(runs['before'])}"
        f" after {spread(runs['after'])}",
        flush=True,
    )
    return row


def main(argv=None):
    args = build_parser().parse_args(argv)
    device, gpu = describe_device()
    roof = matmul_roof(gpu)["flops_per_s"]
    print(f"{device}; dense matmul roof {roof / 1e9:.1f} GFLOP/s", flush=True)
    print(
        f"{'family':<16}{'data':<9}{'size':>6}{'before':>9}{'after':>9}"
        f"{'ratio':>7}{'% roof':>8}{'unrolled':>10}{'ratio':>7}{'% roof':>8}"
    )
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        old_tree = os.path.join(scratch, "baseline")
        subprocess.run(
            ["git", "-C", ROOT, "worktree", "add", "--detach", "-q"]
            + [old_tree, args.baseline],
            check=True,
        )
        try:
            for config in args.config or DEFAULT_CONFIGS:
                results.append(compare(config, old_tree, args, roof))
        finally:
            subprocess.run(
                ["git", "-C", ROOT, "worktree", "remove", "--force", old_tree],
                check=False,
            )
    return write_report(
        args.out,
        results,
        device=device,
        matmul_roof_flops_per_s=roof,
        baseline=args.baseline,
        batch_size=args.batch_size,
        steps=args.steps,
        rounds=args.rounds,
    )


if __name__ == "__main__":
    main()
