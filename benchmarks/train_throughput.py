"""Training throughput and peak memory of each model family.

Each configuration runs in its own subprocess, so its peak resident memory
(RSS) is its own. A configuration is timed over `--steps` train steps
after `--warmup` steps (graph tracing and compilation); the figure quoted
is the median step time, as images/s.

Example:
    python -m benchmarks.train_throughput --steps 10 \
        --out benchmarks/results/train_throughput.json
"""

import argparse
import json
import resource
import statistics
import sys
import time

# Nothing imports `pixel_models` before `main` has read `--package-from`.
from benchmarks.common import (
    DATASETS,
    FAMILIES,
    SMALL_SIZES,
    describe_cpu,
    matmul_roof,
    paper_size,
    run_module,
    write_report,
)

# (family, data set, layers, width): the small sizes, then the paper's.
DEFAULT_CONFIGS = [
    (family, dataset, layers, width)
    for family in FAMILIES
    for dataset, (layers, width) in (
        *SMALL_SIZES.items(),
        ("cifar10", paper_size(family)),
    )
]


def measure(
    family,
    dataset,
    num_layers,
    width,
    batch_size,
    steps,
    warmup,
    unroll=False,
    precision="float32",
):
    """Times train steps of one configuration in this process.

    `unroll=True` unrolls the recurrent layers' scans (Row LSTM and
    Diagonal BiLSTM only); `precision` is the Keras dtype policy.
    """
    import keras
    import numpy as np

    from pixel_models.models import build_model
    from pixel_models.training import compile_model

    if precision != "float32":
        from pixel_models.training import set_precision

        set_precision(precision)
    shape, levels = DATASETS[dataset]
    keras.utils.set_random_seed(0)
    extra = {"unroll": True} if unroll else {}
    model = build_model(
        family, shape, levels, num_layers=num_layers, width=width, **extra
    )
    compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.integers(0, levels, size=(batch_size, *shape)).astype("float32")
    times, cpu = [], 0.0
    for step in range(warmup + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(x, x)
        if step >= warmup:
            times.append(time.perf_counter() - start)
            cpu += time.process_time() - start_cpu
    median = statistics.median(times)
    return {
        "family": family,
        "dataset": dataset,
        "input_shape": list(shape),
        "num_layers": num_layers,
        "width": width,
        "parameters": model.count_params(),
        "batch_size": batch_size,
        "precision": precision,
        "steps": steps,
        "median_step_s": median,
        "images_per_s": batch_size / median,
        # CPU seconds (all threads) per image: a machine that gives the
        # process less of its cores shows here, not in images/s alone.
        "cpu_s_per_image": cpu / (steps * batch_size),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024,
    }


def run_in_subprocess(config, args):
    family, dataset, num_layers, width = config
    argv = [
        "--single",
        f"{family},{dataset},{num_layers},{width}",
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--mixed-precision",
        args.mixed_precision,
    ]
    return run_module("train_throughput", argv, config)[-1]


def add_config_argument(parser, default):
    """`--config family,dataset,num_layers,width`, repeatable."""
    parser.add_argument(
        "--config",
        action="append",
        type=parse_config,
        help="family,dataset,num_layers,width (repeatable); default: "
        + default,
    )


def parse_config(text):
    try:
        family, dataset, num_layers, width = text.split(",")
        config = family, dataset, int(num_layers), int(width)
    except ValueError:
        config = None
    if config is None or config[0] not in FAMILIES or config[1] not in DATASETS:
        raise argparse.ArgumentTypeError(
            f"expected family,dataset,num_layers,width with a family of "
            f"{list(FAMILIES)} and a data set of {list(DATASETS)}; "
            f"got {text!r}"
        )
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_argument(parser, "the paper's widths and smaller ones")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--mixed-precision",
        default="float32",
        choices=("float32", "mixed_float16", "mixed_bfloat16"),
        help="Keras dtype policy of every model (mixed_bfloat16 pays on "
        "CPUs with bfloat16 instructions, avx512_bf16 or amx_bf16 in "
        "lscpu; see docs/performance.md)",
    )
    parser.add_argument(
        "--out", default="benchmarks/results/train_throughput.json"
    )
    parser.add_argument("--single", type=parse_config, help=argparse.SUPPRESS)
    parser.add_argument("--unroll", action="store_true", help=argparse.SUPPRESS)
    # The copy of `pixel_models` to time (`speedup`'s baseline).
    parser.add_argument("--package-from", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.single:
        if args.package_from:
            sys.path.insert(0, args.package_from)
        result = measure(
            *args.single,
            args.batch_size,
            args.steps,
            args.warmup,
            args.unroll,
            args.mixed_precision,
        )
        print(json.dumps(result))
        return result

    configs = args.config or DEFAULT_CONFIGS
    results = []
    header = (
        f"{'family':<16}{'data':<9}{'layers':>7}{'width':>7}{'params':>11}"
        f"{'img/s':>10}{'step ms':>10}{'peak MiB':>10}"
    )
    print(header)
    for config in configs:
        r = run_in_subprocess(config, args)
        results.append(r)
        print(
            f"{r['family']:<16}{r['dataset']:<9}{r['num_layers']:>7}"
            f"{r['width']:>7}{r['parameters']:>11,}{r['images_per_s']:>10.1f}"
            f"{1000 * r['median_step_s']:>10.1f}{r['peak_rss_mib']:>10.0f}",
            flush=True,
        )
    # The roofs of the policy's compute dtype, measured in the same run.
    roofs = {"float32": matmul_roof()["flops_per_s"]}
    if args.mixed_precision != "float32":
        dtype = args.mixed_precision.removeprefix("mixed_")
        roofs[dtype] = matmul_roof(dtype=dtype)["flops_per_s"]
    for dtype, flops in roofs.items():
        print(f"Dense {dtype} matmul roof: {flops / 1e9:.0f} GFLOP/s")
    return write_report(
        args.out,
        results,
        batch_size=args.batch_size,
        precision=args.mixed_precision,
        machine_description=describe_cpu(),
        matmul_flops=roofs,
    )


if __name__ == "__main__":
    main()
