"""Train, score, time and sample every model family; write BENCHMARKS.md.

Each family trains on binarized MNIST and on CIFAR-10 for the same
wall-clock budget of training (`--budget-minutes`; validation and
scoring are not counted), each run in its own process, so its peak
memory is its own. Every run is then scored on the test set, timed for
naive and fast sampling, and drawn. The same run measures the machine's
dense matmul FLOP/s, so each family's achieved training FLOP/s can be
given as a fraction of that roof. Runs unchanged on a GPU; it prints the
device it used.

With `--multiscale-families`, those families also train as Multi-Scale
models (PixelRNN paper, Sec. 3.6) at the same budget and about the same
parameters, for an equal-budget comparison table per data set.

Writes:
- `BENCHMARKS.md`: one table per data set, the paper's figures beside;
- `docs/benchmarks/`: NLL against training time per data set, a grid of
  samples per family and data set, the receptive fields;
- `benchmarks/results/run_all.json`: every figure, with the settings.

Example (about 55 minutes on two CPU cores):
    python -m benchmarks.run_all --budget-minutes 5 \
        --data-dir ../shared/data
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

from benchmarks.common import (
    FAMILIES,
    ROOT,
    SMALL_SIZES,
    TITLES,
    describe_device,
    matmul_roof,
    parse_size,
    pyplot,
    run_module,
    write_report,
)

DATASETS = ("binarized_mnist", "cifar10")
# The papers' test NLL: nats/image for binarized MNIST (PixelRNN, table
# 4), bits/dim for CIFAR-10 (PixelRNN, table 5; Gated PixelCNN, table 1).
PAPER = {
    "binarized_mnist": {
        "pixelcnn": 81.30,
        "row_lstm": 80.54,
        "diagonal_bilstm": 79.20,
        "gated_pixelcnn": None,
    },
    "cifar10": {
        "pixelcnn": 3.14,
        "row_lstm": 3.07,
        "diagonal_bilstm": 3.00,
        "gated_pixelcnn": 3.03,
    },
}
# Test images scored: all of binarized MNIST; for CIFAR-10 the first
# 1,017 test images, the ones with the exact official pixels.
DEFAULT_MAX_TEST = {"binarized_mnist": 10000, "cifar10": 1017}
# Multi-Scale rows: the small image's side (PixelRNN paper, Sec. 3.6).
SMALL_SIZE = {"binarized_mnist": 14, "cifar10": 16}
MULTISCALE_FAMILIES = ("pixelcnn", "gated_pixelcnn")
VALIDATION_SIZE = {"binarized_mnist": 500, "cifar10": 256}
CURVE_POINTS = 6


def log(message):
    """Progress of a run, on stderr (stdout carries its figures)."""
    print(message, file=sys.stderr, flush=True)


def load_splits(args, dataset):
    """The data set's splits as every row of the report uses them."""
    from pixel_models import data

    return data.get_datasets(
        dataset,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        validation_size=min(VALIDATION_SIZE[dataset], args.max_validation),
        seed=args.seed,
        max_test=args.max_test or DEFAULT_MAX_TEST[dataset],
    )


def matched_width(family, shape, levels, layers, target, small_size):
    """The width whose two Multi-Scale models together have about
    `target` parameters (the single-scale model's), and that count."""
    from pixel_models.multiscale import build_multiscale

    step = shape[2]  # colour models need widths divisible by 3

    def params(width):
        return build_multiscale(
            family,
            shape,
            small_size,
            levels,
            num_layers=layers,
            width=width * step,
        ).count_params()

    low, high = 1, 1
    while params(high) < target:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if params(middle) < target else (low, middle)
    best = min((low, high), key=lambda w: abs(params(w) - target))
    return best * step, params(best)


def train_multiscale_and_measure(args, dataset, family):
    """A Multi-Scale model of one family at the single-scale budget.

    Both models together have about the parameters of the single-scale
    model (`matched_width`); each stage trains for half the budget. The
    test NLL is -log p(x_small) - log p(x_rest | x_small), every pixel
    counted once.
    """
    import keras

    from pixel_models import multiscale
    from pixel_models.models import build_model

    layers, width = args.mnist_size if "mnist" in dataset else args.cifar_size
    small_size = SMALL_SIZE[dataset]
    keras.utils.set_random_seed(args.seed)
    splits = load_splits(args, dataset)
    shape = splits.image_shape
    single = build_model(
        family, shape, splits.levels, num_layers=layers, width=width
    ).count_params()
    ms_width, _ = matched_width(
        family, shape, splits.levels, layers, single, small_size
    )
    pair = multiscale.build_multiscale(
        family,
        shape,
        small_size,
        splits.levels,
        num_layers=layers,
        width=ms_width,
    )
    stages = {"small": pair.small_model, "large": pair.large_model}
    figures = {
        stage: train_stage(args, dataset, family, stage, model, splits)
        for stage, model in stages.items()
    }
    log(f"[{dataset} / multi-scale {family}] sampling {args.num_samples}")
    start = time.perf_counter()
    images, small = pair.sample(
        args.num_samples, seed=args.seed, progress=False, return_small=True
    )
    fast = (time.perf_counter() - start) / args.num_samples
    grids = save_grids(args, dataset, family, splits.levels, small, images)
    total = multiscale.two_stage_nll(
        figures["small"]["test_nats"],
        figures["large"]["test_nats"],
        shape,
        splits.num_test,
    )
    return {
        "dataset": dataset,
        "family": family,
        "multiscale": small_size,
        "num_layers": layers,
        "width": ms_width,
        "single_scale_width": width,
        "image_shape": list(shape),
        "parameters": pair.count_params(),
        "single_scale_parameters": single,
        "stages": figures,
        "train_images": sum(f["train_images"] for f in figures.values()),
        "num_test": splits.num_test,
        "test_nats_per_image": total["nats_per_image"],
        "test_bits_per_dim": total["bits_per_dim"],
        "fast_sample_s_per_image": fast,
        "grids": grids,
    }


def train_stage(args, dataset, family, stage, model, splits):
    """Trains one Multi-Scale stage for half the budget and scores it."""
    from pixel_models import multiscale
    from pixel_models.callbacks import TimeBudget
    from pixel_models.losses import LN2, rest_mask
    from pixel_models.training import compile_model, repeat_for_fit

    small_size = SMALL_SIZE[dataset]
    shape = splits.image_shape
    large = stage == "large"
    compile_model(
        model,
        learning_rate=args.learning_rate,
        **(multiscale.conditional_loss(model) if large else {}),
    )

    def part(split, stage=stage):
        return multiscale.stage_dataset(split, stage, small_size)

    class Steps(TimeBudget):
        def on_train_batch_begin(self, batch, logs=None):
            self.step_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self.step_start)
            super().on_train_batch_end(batch, logs)

    budget = Steps(args.budget_minutes / 2)
    budget.seconds = []
    train, steps_per_epoch = repeat_for_fit(
        part(splits.train), splits.num_train, args.batch_size
    )
    log(
        f"[{dataset} / multi-scale {family}] stage {stage}: training "
        f"for {args.budget_minutes / 2:g} min"
    )
    model.fit(
        train,
        steps_per_epoch=steps_per_epoch,
        epochs=100000,
        callbacks=[budget],
        verbose=args.verbose,
        shuffle=False,
    )
    log(f"[{dataset} / multi-scale {family}] stage {stage}: scoring")
    bpd = model.evaluate(part(splits.test), verbose=0)[0] / LN2
    dims = (
        rest_mask(shape, (small_size, small_size)).sum()
        if large
        else (small_size * small_size)
    )
    return {
        "parameters": model.count_params(),
        "train_images": len(budget.seconds) * args.batch_size,
        "train_seconds": 60 * budget.elapsed_minutes(),
        "test_nats": float(bpd * LN2 * dims * shape[2]),
    }


def save_grids(args, dataset, family, levels, small, images):
    """The sample grids of both stages, saved for the report's figure."""
    import numpy as np

    from pixel_models.plotting import image_grid

    grids = {}
    for stage, batch in (("small", small), ("large", images)):
        grids[stage] = os.path.join(
            args.work_dir, f"{dataset}_{family}_multiscale_{stage}_grid.npy"
        )
        np.save(grids[stage], image_grid(batch, levels, cols=8))
    return grids


def make_curve(args, validation):
    """The callback that keeps the budget and scores `validation` at
    `CURVE_POINTS` even marks of it."""
    from pixel_models.callbacks import TimeBudget
    from pixel_models.losses import LN2

    budget_s = 60 * args.budget_minutes

    class Curve(TimeBudget):
        """The budget, plus validation NLL at fixed marks of training."""

        def __init__(self):
            super().__init__(args.budget_minutes)
            self.points, self.step_seconds, self.images = [], [], 0
            self.marks = [
                budget_s * k / CURVE_POINTS for k in range(1, CURVE_POINTS + 1)
            ]

        def on_train_batch_begin(self, batch, logs=None):
            self.step_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.step_seconds.append(time.perf_counter() - self.step_start)
            self.images += args.batch_size
            super().on_train_batch_end(batch, logs)
            seconds = 60 * self.elapsed_minutes()
            due = self.marks and seconds >= self.marks[0]
            if self.model.stop_training or due:
                while self.marks and seconds >= self.marks[0]:
                    self.marks.pop(0)
                self.on_test_begin()  # pause the clock
                nats = self.model.evaluate(validation, verbose=0)[0]
                self.on_test_end()
                self.points.append(
                    {
                        "seconds": seconds,
                        "images": self.images,
                        "bits_per_dim": nats / LN2,
                    }
                )

    return Curve()


def score_and_sample(args, model, splits, tag, grid_path):
    """Test NLL and evaluation speed, then the fast and naive sampling
    times per image; the fast samples' grid is saved at `grid_path`."""
    import numpy as np

    from benchmarks.sampling_speed import naive_seconds
    from pixel_models.losses import LN2, bits_per_dim_to_nats_per_image
    from pixel_models.plotting import image_grid
    from pixel_models.sampling import sample

    log(f"{tag} scoring {splits.num_test} test images")
    model.evaluate(splits.test.take(1), verbose=0)  # trace first
    start = time.perf_counter()
    nats_per_dim = model.evaluate(splits.test, verbose=0)[0]
    eval_seconds = time.perf_counter() - start
    bpd = nats_per_dim / LN2

    log(f"{tag} sampling {args.num_samples} images")
    start = time.perf_counter()
    images = sample(model, args.num_samples, seed=args.seed, progress=False)
    fast = (time.perf_counter() - start) / args.num_samples
    naive, _ = naive_seconds(model, args.num_samples, args.naive_steps)
    naive /= args.num_samples
    np.save(grid_path, image_grid(images, splits.levels, cols=8))
    return {
        "eval_images_per_s": splits.num_test / eval_seconds,
        "num_test": splits.num_test,
        "test_bits_per_dim": bpd,
        "test_nats_per_image": bits_per_dim_to_nats_per_image(
            bpd, splits.image_shape
        ),
        "naive_sample_s_per_image": naive,
        "fast_sample_s_per_image": fast,
    }


def peak_memory():
    """Peak memory of this process and, on a GPU, of the device, in MiB."""
    import tensorflow as tf

    gpu_peak = None
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        gpu_peak = info["peak"] / 2**20
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024,
        "peak_device_mib": gpu_peak,
    }


def train_and_measure(args):
    """One family on one data set, in this process: the figures, as dict."""
    import keras

    from benchmarks.flops import forward_flops, train_flops
    from pixel_models.models import build_model
    from pixel_models.training import compile_model, repeat_for_fit

    dataset, family, *multi = args.single.split(",")
    if multi:
        return train_multiscale_and_measure(args, dataset, family)
    layers, width = args.mnist_size if "mnist" in dataset else args.cifar_size
    keras.utils.set_random_seed(args.seed)
    splits = load_splits(args, dataset)
    model = compile_model(
        build_model(
            family,
            splits.image_shape,
            splits.levels,
            num_layers=layers,
            width=width,
        ),
        learning_rate=args.learning_rate,
    )
    curve = make_curve(args, splits.validation.cache())
    train, steps_per_epoch = repeat_for_fit(
        splits.train, splits.num_train, args.batch_size
    )
    log(f"[{dataset} / {family}] training for {args.budget_minutes} min")
    model.fit(
        train,
        steps_per_epoch=steps_per_epoch,
        epochs=100000,
        callbacks=[curve],
        verbose=args.verbose,
        shuffle=False,
    )
    # Steady state: the median step, without the first (tracing) steps.
    step = statistics.median(curve.step_seconds[2:] or curve.step_seconds)
    train_images_per_s = args.batch_size / step
    grid_path = os.path.join(args.work_dir, f"{dataset}_{family}_grid.npy")
    tag = f"[{dataset} / {family}]"
    scored = score_and_sample(args, model, splits, tag, grid_path)
    return {
        "dataset": dataset,
        "family": family,
        "num_layers": layers,
        "width": width,
        "image_shape": list(splits.image_shape),
        "parameters": model.count_params(),
        "batch_size": args.batch_size,
        # Where the budget stopped training (the last curve point).
        "train_seconds": curve.points[-1]["seconds"],
        "slowest_step_s": max(curve.step_seconds),
        "train_images": curve.images,
        "train_images_per_s": train_images_per_s,
        "seconds_per_epoch": splits.num_train / train_images_per_s,
        "num_train": splits.num_train,
        **peak_memory(),
        **scored,
        "forward_flops_per_image": forward_flops(model),
        "train_flops_per_image": train_flops(model),
        "curve": curve.points,
        "grid": grid_path,
    }


def run_single_in_subprocess(dataset, family, argv, multiscale=False):
    single = f"{dataset},{family}" + (",multiscale" if multiscale else "")
    what = f"{dataset} / {family}"
    records = run_module(
        "run_all", [*argv, "--single", single], what, capture_stderr=False
    )
    return records[-1]


def plot_curves(rows, dataset, path):
    from pixel_models.losses import bits_per_dim_to_nats_per_image

    plt = pyplot()
    nats = "mnist" in dataset
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in rows:
        seconds = [p["seconds"] / 60 for p in row["curve"]]
        values = [
            bits_per_dim_to_nats_per_image(
                p["bits_per_dim"], row["image_shape"]
            )
            if nats
            else p["bits_per_dim"]
            for p in row["curve"]
        ]
        ax.plot(seconds, values, marker="o", label=TITLES[row["family"]])
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel(
        "validation NLL (nats/image)" if nats else "validation bits/dim"
    )
    ax.set_title(f"{dataset}: NLL against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_samples(rows, dataset, path):
    import numpy as np

    plt = pyplot()
    grids = [np.load(row["grid"]) for row in rows]
    aspect = grids[0].shape[0] / grids[0].shape[1]
    fig, axes = plt.subplots(
        1, len(rows), figsize=(3.2 * len(rows), 3.2 * aspect + 0.8)
    )
    axes = np.atleast_1d(axes)
    for ax, row, grid in zip(axes, rows, grids, strict=True):
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray")
        ax.set_title(TITLES[row["family"]])
        ax.axis("off")
    fig.suptitle(f"{dataset}: samples after the budget")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def multiscale_rows(report, dataset):
    return [r for r in report.get("multiscale", []) if r["dataset"] == dataset]


def plot_multiscale_samples(rows, dataset, path):
    """Both stages' samples: the small images, then the large ones drawn
    given them."""
    import numpy as np

    plt = pyplot()
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(6.4, 3.4 * len(rows)), squeeze=False
    )
    for ax_row, row in zip(axes, rows, strict=True):
        for ax, stage in zip(ax_row, ("small", "large"), strict=True):
            grid = np.load(row["grids"][stage])
            ax.imshow(
                grid[..., 0] if grid.shape[-1] == 1 else grid,
                cmap="gray",
                interpolation="nearest",
            )
            side = (
                row["multiscale"]
                if stage == "small"
                else (row["image_shape"][0])
            )
            what = "first stage" if stage == "small" else "given it"
            ax.set_title(f"{TITLES[row['family']]}: {side}x{side}, {what}")
            ax.axis("off")
    fig.suptitle(f"{dataset}: Multi-Scale samples, both stages")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def multiscale_markdown(report, dataset, rel):
    """The equal-budget table of Multi-Scale against single-scale rows."""
    pairs = multiscale_rows(report, dataset)
    if not pairs:
        return []
    nats = "mnist" in dataset
    singles = {
        r["family"]: r for r in report["results"] if r["dataset"] == dataset
    }
    side = pairs[0]["image_shape"][0]
    small = pairs[0]["multiscale"]

    def nll(value):
        return f"{value:.2f}" if nats else f"{value:.3f}"

    def per(value, row):
        # nats/image for MNIST; bits/dim (over all sub-pixels) otherwise.
        if nats:
            return value
        dims = row["image_shape"][0] * row["image_shape"][1]
        return value / (dims * row["image_shape"][2] * 0.6931471805599453)

    lines = [
        f"### Multi-Scale ({small}x{small} -> {side}x{side}) against "
        "single-scale, equal budget",
        "",
        "Each Multi-Scale model is a first-stage model of the "
        f"{small}x{small} subsampled images (every second row and column, "
        "from the top-left pixel) and a second-stage model of the image "
        "given it, every layer biased by an upsampled map of the small "
        "image (PixelRNN paper, Sec. 3.6). Same family and layers as the "
        "single-scale row, its width chosen so that both models together "
        "have about the single-scale model's parameters; each stage "
        f"trains for half of the {report['budget_minutes']:g}-minute "
        "budget. Test NLL = -log p(x_small) - log p(x_rest | x_small): "
        "every pixel counted once, so it compares with the single-scale "
        f"figure directly ({'nats/image' if nats else 'bits/dim'}; the "
        "two terms in the same unit).",
        "",
        "| family | model | params | images trained | test NLL | "
        "-log p(x_small) | -log p(x_rest given x_small) | fast s/img |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        single = singles.get(pair["family"])
        if single is not None:
            value = (
                single["test_nats_per_image"]
                if nats
                else single["test_bits_per_dim"]
            )
            lines.append(
                f"| {TITLES[pair['family']]} | single-scale, h="
                f"{single['width']} | {single['parameters']:,} | "
                f"{single['train_images']:,} | **{nll(value)}** | — | — | "
                f"{single['fast_sample_s_per_image']:.3f} |"
            )
        stages = pair["stages"]
        value = (
            pair["test_nats_per_image"] if nats else pair["test_bits_per_dim"]
        )
        lines.append(
            f"| {TITLES[pair['family']]} | multi-scale, h={pair['width']} | "
            f"{pair['parameters']:,} | "
            f"{stages['small']['train_images']:,} + "
            f"{stages['large']['train_images']:,} | **{nll(value)}** | "
            f"{nll(per(stages['small']['test_nats'], pair))} | "
            f"{nll(per(stages['large']['test_nats'], pair))} | "
            f"{pair['fast_sample_s_per_image']:.3f} |"
        )
    lines += [
        "",
        f"![Multi-Scale samples]({rel}/samples_multiscale_{dataset}.png)",
        "",
    ]
    return lines


def markdown_head(report):
    """The report's title, its command and how every figure is measured."""
    roof = report["matmul"]["flops_per_s"]
    budget = report["budget_minutes"]
    return [
        "# Benchmarks: every family, measured the same way",
        "",
        "Written by `python -m benchmarks.run_all "
        f"--budget-minutes {budget:g}`; the figures are in "
        "`benchmarks/results/run_all.json`.",
        "",
        f"- Device: {report['device']}.",
        f"- Dense float32 matmul ({report['matmul']['n']}²), the roof: "
        f"**{roof / 1e9:.1f} GFLOP/s**.",
        f"- Every family trained for **{budget:g} minutes** of training "
        f"time (validation excluded), batch {report['batch_size']}, Adam "
        f"at {report['learning_rate']:g}, seed {report['seed']}.",
        "- The training clock runs through whatever `fit` does between "
        "steps (input pipeline, epoch ends) and stops at the first step "
        "past the budget; validation for the curves is not counted.",
        "- Train images/s: median step, after the first two (tracing). "
        "Seconds/epoch: one pass over the training set at that rate. Peak "
        "RSS: the whole process (data included).",
        "- Sampling: seconds per image for a batch of "
        f"{report['num_samples']}; naive = one full forward pass per "
        "sub-pixel (median of timed passes times the number of "
        "sub-pixels), fast = `pixel_models.sampling.sample`, exact, with "
        "cached state.",
        "- FLOPs: multiply-adds of every kernel where it is applied "
        "(`benchmarks/flops.py`); training counts 3 forward passes. "
        "Achieved = training FLOPs per image × train images/s.",
        "",
    ]


def dataset_intro(report, dataset, first):
    """What a data set's table holds, in a paragraph."""
    size = f"{first['num_layers']} layer(s) × h={first['width']}"
    if "mnist" in dataset:
        return (
            f"Binarized MNIST (fixed stochastic binarization, seed "
            f"{report['seed']}), {size} (Diagonal BiLSTM and Row LSTM: "
            f"layers of h units). Test NLL on all "
            f"{first['num_test']:,} test images, in nats/image; the "
            "paper's figure beside it (PixelRNN, table 4)."
        )
    return (
        f"CIFAR-10, {size}. Test NLL in bits/dim on the first "
        f"{first['num_test']:,} official test images, whose pixels "
        "are exact. The training images are partly decoded from a "
        "JPEG copy (see the data README); the validation curve "
        "is scored on held-out training images, which JPEG makes "
        "smoother, so it lies below the test figures. The models "
        "are far "
        "smaller and shorter-trained than the papers' (PixelRNN "
        "table 5; Gated PixelCNN table 1)."
    )


def results_table(report, dataset, rows):
    """A data set's table: a row per family, the paper's NLL beside."""
    roof = report["matmul"]["flops_per_s"]
    nats = "mnist" in dataset
    gpu = any(r["peak_device_mib"] for r in rows)
    unit = "nats" if nats else "bits/dim"
    header = [
        "family",
        "params",
        "images trained",
        "train img/s",
        "s/epoch",
        "peak RSS MiB",
        *(["peak GPU MiB"] if gpu else []),
        "eval img/s",
        "naive s/img",
        "fast s/img",
        "train GFLOP/img",
        "achieved GFLOP/s",
        "of roof",
        f"test NLL ({unit})",
        "paper",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        achieved = r["train_flops_per_image"] * r["train_images_per_s"]
        nll = r["test_nats_per_image"] if nats else r["test_bits_per_dim"]
        paper = PAPER[dataset][r["family"]]
        cells = [
            TITLES[r["family"]],
            f"{r['parameters']:,}",
            f"{r['train_images']:,}",
            f"{r['train_images_per_s']:.1f}",
            f"{r['seconds_per_epoch']:.0f}",
            f"{r['peak_rss_mib']:.0f}",
            *([f"{r['peak_device_mib']:.0f}"] if gpu else []),
            f"{r['eval_images_per_s']:.1f}",
            f"{r['naive_sample_s_per_image']:.2f}",
            f"{r['fast_sample_s_per_image']:.3f}",
            f"{r['train_flops_per_image'] / 1e9:.3f}",
            f"{achieved / 1e9:.2f}",
            f"{100 * achieved / roof:.1f}%",
            f"**{nll:.2f}**" if nats else f"**{nll:.3f}**",
            "—" if paper is None else f"{paper:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report, docs_dir, out_dir):
    """BENCHMARKS.md from the report dict."""
    rel = os.path.relpath(docs_dir, out_dir)
    budget = report["budget_minutes"]
    lines = markdown_head(report)
    for dataset in report["datasets"]:
        rows = [r for r in report["results"] if r["dataset"] == dataset]
        if not rows:
            continue
        lines += [f"## {dataset}", ""]
        lines.append(dataset_intro(report, dataset, rows[0]))
        lines += ["", *results_table(report, dataset, rows)]
        lines += [
            "",
            f"![NLL against training time]({rel}/nll_vs_time_{dataset}.png)",
            "",
            f"![Samples]({rel}/samples_{dataset}.png)",
            "",
            *multiscale_markdown(report, dataset, rel),
        ]
    lines += [
        "## Receptive fields",
        "",
        f"![Receptive fields]({rel}/receptive_fields.png)",
        "",
        "## Not comparable with the papers",
        "",
        f"- The budget ({budget:g} minutes on this device) is a tiny "
        "fraction of the papers' training, and the models are smaller, so "
        "the NLL figures rank the families at equal compute; they do not "
        "reproduce the papers' numbers.",
        "- CIFAR-10 training images are partly from a JPEG copy; the test "
        "figure uses only images with exact pixels, but on a subset of "
        "the test set (see its table).",
        "- The Gated PixelCNN paper reports no binarized MNIST figure.",
        "",
    ]
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=5.0)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data folder (default: $PIXEL_MODELS_DATA_DIR)",
    )
    parser.add_argument(
        "--families", nargs="+", default=list(FAMILIES), choices=FAMILIES
    )
    parser.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), choices=DATASETS
    )
    parser.add_argument(
        "--multiscale-families",
        nargs="*",
        default=list(MULTISCALE_FAMILIES),
        choices=FAMILIES,
        help="families that also train as Multi-Scale models (14 -> 28 on "
        "MNIST, 16 -> 32 on CIFAR-10) at the same budget and about the "
        "same parameters (none: no such rows)",
    )
    parser.add_argument(
        "--mnist-size", type=parse_size, default=SMALL_SIZES["mnist"]
    )
    parser.add_argument(
        "--cifar-size", type=parse_size, default=SMALL_SIZES["cifar10"]
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--naive-steps", type=int, default=8)
    parser.add_argument(
        "--max-test",
        type=int,
        default=None,
        help="test images to score (default: all MNIST, CIFAR-10's 1,017 "
        "exact ones)",
    )
    parser.add_argument(
        "--max-validation", type=int, default=1000, help=argparse.SUPPRESS
    )
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument(
        "--docs-dir", default=os.path.join(ROOT, "docs", "benchmarks")
    )
    parser.add_argument(
        "--results",
        default=os.path.join(ROOT, "benchmarks", "results", "run_all.json"),
    )
    parser.add_argument(
        "--work-dir", default=os.path.join(ROOT, "runs", "benchmarks")
    )
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite BENCHMARKS.md and the plots from --results, "
        "without running anything",
    )
    parser.add_argument("--single", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if not args.budget_minutes > 0:
        raise SystemExit(
            "--budget-minutes must be positive. "
            f"Received: {args.budget_minutes}"
        )
    if args.render_only:
        with open(args.results) as f:
            report = json.load(f)
        render(report, args)
        return report
    os.makedirs(args.work_dir, exist_ok=True)
    if args.single:
        print(json.dumps(train_and_measure(args)))
        return None

    device, gpu = describe_device()
    print(f"Device: {device}", flush=True)
    matmul = matmul_roof(gpu)
    print(f"Dense matmul roof: {matmul['flops_per_s'] / 1e9:.1f} GFLOP/s")
    os.makedirs(args.docs_dir, exist_ok=True)
    results = []
    for dataset in args.datasets:
        for family in args.families:
            results.append(run_single_in_subprocess(dataset, family, argv))
            r = results[-1]
            print(
                f"[{dataset} / {family}] {r['test_bits_per_dim']:.4f} "
                f"bits/dim ({r['test_nats_per_image']:.2f} nats/image), "
                f"{r['train_images_per_s']:.1f} train img/s",
                flush=True,
            )
    multiscale = []
    for dataset in args.datasets:
        for family in args.multiscale_families:
            multiscale.append(
                run_single_in_subprocess(dataset, family, argv, True)
            )
            r = multiscale[-1]
            print(
                f"[{dataset} / multi-scale {family}] "
                f"{r['test_bits_per_dim']:.4f} bits/dim "
                f"({r['test_nats_per_image']:.2f} nats/image)",
                flush=True,
            )
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import receptive_fields

    receptive_fields.main(
        ["--out", os.path.join(args.docs_dir, "receptive_fields.png")]
    )
    report = write_report(
        args.results,
        results,
        device=device,
        matmul=matmul,
        budget_minutes=args.budget_minutes,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        num_samples=args.num_samples,
        datasets=args.datasets,
        multiscale=multiscale,
    )
    render(report, args)
    return report


def render(report, args):
    """The plots under `--docs-dir` and `--out` from a report dict."""
    os.makedirs(args.docs_dir, exist_ok=True)
    for dataset in report["datasets"]:
        rows = [r for r in report["results"] if r["dataset"] == dataset]
        plot_curves(
            rows,
            dataset,
            os.path.join(args.docs_dir, f"nll_vs_time_{dataset}.png"),
        )
        # The sample grids live in the work folder of the run.
        if all(os.path.exists(r["grid"]) for r in rows):
            plot_samples(
                rows,
                dataset,
                os.path.join(args.docs_dir, f"samples_{dataset}.png"),
            )
        pairs = multiscale_rows(report, dataset)
        if pairs and all(
            os.path.exists(p) for r in pairs for p in r["grids"].values()
        ):
            plot_multiscale_samples(
                pairs,
                dataset,
                os.path.join(
                    args.docs_dir, f"samples_multiscale_{dataset}.png"
                ),
            )
    out_dir = os.path.dirname(os.path.abspath(args.out))
    with open(args.out, "w") as f:
        f.write(markdown(report, os.path.abspath(args.docs_dir), out_dir))
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
