"""Training images/s against batch size, every family, with repeats.

For each round and each family, one process times training steps at
every batch size (the batch sizes in the opposite order every other
round, the families in turn), so that drift in the machine shows as
spread rather than as a curve. Each figure is the median over rounds,
with the lowest and highest, and CPU seconds per image beside it; the
dense matmul roof is measured in the same run, so each figure is also a
% of the roof (training FLOPs from `benchmarks/flops.py`). Writes the
figures to JSON, prints a table and plots the curves.

Example (about 10 minutes on two CPU cores):
    python -m benchmarks.batch_curve --rounds 3 \
        --out benchmarks/results/batch_curve.json --plot docs/batch_curve.png
"""

import argparse
import json
import statistics

from benchmarks.common import (
    CONVOLUTIONAL,
    RECURRENT,
    describe_device,
    matmul_roof,
    pyplot,
    run_module,
    write_report,
)
from benchmarks.speedup import train_flops_per_image
from benchmarks.train_throughput import measure, parse_config

# The curves' order: the convolutional families, then the recurrent ones.
FAMILIES = CONVOLUTIONAL + RECURRENT
BATCHES = (16, 32, 64, 128, 256)
# Enough steps for a stable median at small batches, few at large ones.
IMAGES_PER_SIZE = 512


def steps_for(batch_size):
    return max(3, IMAGES_PER_SIZE // batch_size)


def measure_all(config, batches, warmup):
    """Figures of one configuration at each batch size, in this process."""
    return [
        measure(*config, batch, steps_for(batch), warmup) for batch in batches
    ]


def run_round(config, batches, warmup):
    argv = [
        "--single",
        ",".join(str(v) for v in config),
        "--batches",
        ",".join(str(b) for b in batches),
        "--warmup",
        str(warmup),
    ]
    return run_module("batch_curve", argv, config)[-1]


def batch_list(text):
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(
            f"--batches must be positive integers separated by commas, "
            f"got {text!r}"
        )
    return batches


def plot(path, results, dataset, size, roof):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    for family in dict.fromkeys(r["family"] for r in results):
        rows = [r for r in results if r["family"] == family]
        batches = [r["batch_size"] for r in rows]
        median = [r["images_per_s"] for r in rows]
        low = [r["images_per_s"] - min(r["images_per_s_all"]) for r in rows]
        high = [max(r["images_per_s_all"]) - r["images_per_s"] for r in rows]
        ax.errorbar(
            batches,
            median,
            yerr=[low, high],
            marker="o",
            capsize=3,
            label=family,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
    ax.set_xlabel("batch size")
    ax.set_ylabel("training images/s (median, lowest-highest)")
    ax.set_title(
        f"{dataset} {size}, TensorFlow CPU; matmul roof {roof / 1e9:.0f} "
        "GFLOP/s"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"Wrote {path}")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help="families separated by commas",
    )
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--num-layers", type=int, default=7)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batches", type=batch_list, default=BATCHES)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/batch_curve.json")
    parser.add_argument("--plot", default="docs/batch_curve.png")
    parser.add_argument("--single", type=parse_config, help=argparse.SUPPRESS)
    return parser


def summarise(configs, runs, roof):
    """A row of figures for each configuration and batch size, printed as
    a table as well."""
    results = []
    print(
        f"{'family':<16}{'batch':>6}{'img/s':>9}{'lo-hi':>14}"
        f"{'% roof':>8}{'cpu ms/img':>12}"
    )
    for config in configs:
        flops = train_flops_per_image(config)
        for batch, figures in runs[config].items():
            rates = [f["images_per_s"] for f in figures]
            rate = statistics.median(rates)
            row = {
                "family": config[0],
                "dataset": config[1],
                "num_layers": config[2],
                "width": config[3],
                "batch_size": batch,
                "steps": steps_for(batch),
                "images_per_s": rate,
                "images_per_s_all": rates,
                "cpu_s_per_image": statistics.median(
                    f["cpu_s_per_image"] for f in figures
                ),
                "train_flops_per_image": flops,
                "roof_percent": 100 * rate * flops / roof,
            }
            results.append(row)
            print(
                f"{config[0]:<16}{batch:>6}{rate:>9.1f}"
                f"{f'{min(rates):.0f}-{max(rates):.0f}':>14}"
                f"{row['roof_percent']:>7.1f}%"
                f"{1e3 * row['cpu_s_per_image']:>12.1f}",
                flush=True,
            )
    return results


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.single:
        print(json.dumps(measure_all(args.single, args.batches, args.warmup)))
        return None

    device, gpu = describe_device()
    roof = matmul_roof(gpu)["flops_per_s"]
    print(f"{device}; dense matmul roof {roof / 1e9:.1f} GFLOP/s", flush=True)
    families = args.families.split(",")
    configs = [(f, args.dataset, args.num_layers, args.width) for f in families]
    runs = {c: {b: [] for b in args.batches} for c in configs}
    for round_ in range(args.rounds):
        batches = args.batches[:: -1 if round_ % 2 else 1]
        shift = round_ % len(configs)
        for config in configs[shift:] + configs[:shift]:
            for figure in run_round(config, batches, args.warmup):
                runs[config][figure["batch_size"]].append(figure)
            print(f"round {round_ + 1}: {config[0]} done", flush=True)
    results = summarise(configs, runs, roof)
    if args.plot:
        size = f"{args.num_layers} x {args.width}"
        plot(args.plot, results, args.dataset, size, roof)
    return write_report(
        args.out,
        results,
        device=device,
        matmul_roof_flops_per_s=roof,
        rounds=args.rounds,
        warmup=args.warmup,
        images_per_size=IMAGES_PER_SIZE,
    )


if __name__ == "__main__":
    main()
