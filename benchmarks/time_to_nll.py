"""Validation NLL against wall-clock time: one family, one recipe, a budget.

Trains a model on binarized MNIST (or any data set of
`pixel_models.data`) for a budget of training minutes and scores it on a
fixed set of validation images every `--eval-every` training images.
Scoring is not counted in the hours. With weight averaging (`--ema`),
each point is scored twice, with the raw weights and with their
exponential moving average (the optimizer's, `use_ema`), so one run
answers whether averaging pays. The learning-rate schedule can be planned
for the budget: `cosine` warms up linearly over the first
`--warmup` of the budget, then decays to `--final-fraction` of the peak
at its end, by the clock (the run's length is time, not steps).

Writes `benchmarks/results/time_to_nll/NAME.json` (every point: hours,
images seen, learning rate, NLL raw and averaged; the recipe; the
machine and its dense matmul roof measured in the same run), and with
`--plot` draws every result file of the folder, NLL against hours.

Example (two recipes side by side, one core each):
    taskset -c 0 python -m benchmarks.time_to_nll --family gated_pixelcnn \\
        --name gated_baseline --minutes 20 &
    taskset -c 1 python -m benchmarks.time_to_nll --family gated_pixelcnn \\
        --name gated_cosine_ema --schedule cosine --ema 0.999 --minutes 20
    python -m benchmarks.time_to_nll --plot-only

CIFAR-10 and PixelCNN++ (the equal-budget comparison of docs/pixelcnn_pp.md;
a folder and a plot of their own, bits/dim, scored at the end on the
1,017 test images with the exact official pixels):
    taskset -c 0 python -m benchmarks.time_to_nll --dataset cifar10 \
        --family pixelcnn_pp --num-layers 1 --width 32 --batch-size 16 \
        --minutes 120 --test-images 1017 \
        --out benchmarks/results/time_to_nll_cifar10/pixelcnn_pp.json \
        --plot docs/time_to_nll_cifar10.png
"""

import argparse
import glob
import json
import math
import os
import time

from benchmarks.common import FAMILIES, ROOT, describe_cpu, matmul_roof, pyplot

RESULTS = os.path.join(ROOT, "benchmarks", "results", "time_to_nll")
PLOT = os.path.join(ROOT, "docs", "time_to_nll.png")
SCHEDULES = ("constant", "plateau", "cosine")


def learning_rate_at(fraction, args):
    """The learning rate after `fraction` of the budget, by the schedule."""
    peak = args.learning_rate
    if args.schedule != "cosine":
        return peak
    if fraction < args.warmup:
        return peak * max(fraction / args.warmup, 1e-3)
    done = min(1.0, (fraction - args.warmup) / max(1e-9, 1 - args.warmup))
    low = peak * args.final_fraction
    return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * done))


def make_curve_callback(args, validation, image_shape, images_per_epoch):
    """The callback that keeps the clock, sets the learning rate, scores
    each point and stops the run when the budget is spent."""
    import keras
    import numpy as np

    from pixel_models.losses import bits_per_dim_to_nats_per_image

    class Curve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.points = []
            # The raw weights at the last point: with `use_ema`, `fit`
            # leaves the averaged ones in the model when it returns.
            self.raw_weights = None
            self.train_seconds = 0.0
            self.since = None

        def clock(self):
            return self.train_seconds + time.perf_counter() - self.since

        def on_epoch_begin(self, epoch, logs=None):
            self.since = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            fraction = self.clock() / (60 * args.minutes)
            rate = learning_rate_at(fraction, args)
            if args.schedule == "cosine":
                self.model.optimizer.learning_rate = rate

        def on_train_batch_end(self, batch, logs=None):
            if self.clock() >= 60 * args.minutes:
                self.model.stop_training = True

        def nats(self):
            result = self.model.evaluate(
                validation, verbose=0, return_dict=True
            )
            return bits_per_dim_to_nats_per_image(
                float(result["bits_per_dim"]), image_shape
            )

        def on_epoch_end(self, epoch, logs=None):
            self.train_seconds = self.clock()
            optimizer = self.model.optimizer
            point = {
                "hours": self.train_seconds / 3600,
                "images_seen": (epoch + 1) * images_per_epoch,
                "learning_rate": float(
                    keras.ops.convert_to_numpy(optimizer.learning_rate)
                ),
                "train_nats": bits_per_dim_to_nats_per_image(
                    float(logs["bits_per_dim"]), image_shape
                ),
                "nats": self.nats(),
            }
            if args.ema:
                # Score the averaged weights, then put the raw ones back.
                weights = self.model.trainable_variables
                raw = [np.array(keras.ops.convert_to_numpy(v)) for v in weights]
                optimizer.finalize_variable_values(weights)
                point["ema_nats"] = self.nats()
                for variable, value in zip(weights, raw, strict=True):
                    variable.assign(value)
                self.raw_weights = raw
            logs["val_nats"] = point["nats"]
            self.points.append(point)
            best = min(
                min(p["nats"], p.get("ema_nats", math.inf)) for p in self.points
            )
            print(
                f"{point['hours'] * 60:7.2f} min {point['images_seen']:>8} "
                f"images: {point['nats']:.2f} nats"
                + (f", averaged {point['ema_nats']:.2f}" if args.ema else "")
                + f" (best {best:.2f})",
                flush=True,
            )

    return Curve()


def recipe(args, model):
    """The run's settings, as its result file gives them."""
    return {
        "family": args.family,
        "dataset": args.dataset,
        "num_layers": args.num_layers,
        "width": args.width,
        "parameters": model.count_params(),
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "schedule": args.schedule,
        "warmup": args.warmup if args.schedule == "cosine" else None,
        "final_fraction": (
            args.final_fraction if args.schedule == "cosine" else None
        ),
        "ema": args.ema or None,
        **model_options(args),
        "clipnorm": args.clipnorm,
        "minutes": args.minutes,
        "seed": args.seed,
    }


def load_splits(args, **limits):
    """The run's data set (`pixel_models.data.get_datasets`)."""
    from pixel_models import data

    return data.get_datasets(
        args.dataset,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_size=args.validation_size,
        **limits,
    )


def model_options(args):
    """The builder's likelihood and dropout arguments of the run."""
    options = {"dropout": args.dropout}
    output = "logistic_mixture" if args.family == "pixelcnn_pp" else args.output
    if output == "logistic_mixture":
        options["num_mixtures"] = args.num_mixtures
        if args.family != "pixelcnn_pp":
            options["output"] = output
    return options


def score_test(args, model, image_shape, raw_weights=None):
    """Bits/dim of the model at the budget's end on the first
    `--test-images` test images (raw weights, and averaged ones with
    `--ema`): `{"test_images", "test_bits_per_dim", ...}`.

    With `--ema`, `fit` has left the averaged weights in the model:
    `raw_weights` (the curve's `raw_weights`) are put back for the raw
    score, then the average again."""
    import numpy as np

    test = load_splits(args, max_test=args.test_images).test.cache()

    def bits():
        result = model.evaluate(test, verbose=0, return_dict=True)
        return float(result["bits_per_dim"])

    weights = model.trainable_variables
    if args.ema:
        for variable, value in zip(weights, raw_weights, strict=True):
            variable.assign(value)
    scored = {
        "test_images": int(
            sum(int(np.shape(x)[0]) for x, _ in test.as_numpy_iterator())
        ),
        "test_bits_per_dim": bits(),
    }
    if args.ema:
        model.optimizer.finalize_variable_values(weights)
        scored["test_ema_bits_per_dim"] = bits()
    dims = int(np.prod(image_shape))
    for key in [k for k in scored if k.endswith("bits_per_dim")]:
        scored[key.replace("bits_per_dim", "nats")] = (
            scored[key] * dims * math.log(2)
        )
    print(f"Test ({scored['test_images']} images): {scored}", flush=True)
    return scored


def plateau_callback():
    """Halves the learning rate after two scored points without a better
    validation NLL."""
    import keras

    return keras.callbacks.ReduceLROnPlateau(
        monitor="val_nats", mode="min", factor=0.5, patience=2, verbose=0
    )


def run(args):
    import keras
    import numpy as np

    from pixel_models import models
    from pixel_models.training import compile_model

    keras.utils.set_random_seed(args.seed)
    roof = matmul_roof()["flops_per_s"]
    splits = load_splits(args, max_train=args.max_train)
    validation = splits.validation.take(
        math.ceil(args.validation_images / args.batch_size)
    ).cache()
    model = models.build_model(
        args.family,
        splits.image_shape,
        levels=splits.levels,
        num_layers=args.num_layers,
        width=args.width,
        **model_options(args),
    )
    compile_model(
        model,
        learning_rate=learning_rate_at(0.0, args),
        clipnorm=args.clipnorm or None,
        ema_momentum=args.ema or None,
    )
    steps = max(1, args.eval_every // args.batch_size)
    curve = make_curve_callback(
        args, validation, splits.image_shape, steps * args.batch_size
    )
    callbacks = [curve]
    if args.schedule == "plateau":
        callbacks.append(plateau_callback())
    model.fit(
        splits.train.repeat(),
        epochs=10**6,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=args.verbose,
        shuffle=False,  # tf.data shuffles the training split
    )
    points = curve.points
    test = (
        score_test(args, model, splits.image_shape, curve.raw_weights)
        if args.test_images
        else {}
    )
    raw = [p["nats"] for p in points]
    averaged = [p["ema_nats"] for p in points if "ema_nats" in p]
    result = {
        "name": args.name,
        "recipe": recipe(args, model),
        "validation_images": int(
            sum(int(np.shape(x)[0]) for x, _ in validation.as_numpy_iterator())
        ),
        "machine": describe_cpu(),
        "matmul_roof_flops_per_s": roof,
        "dimensions": int(np.prod(splits.image_shape)),
        "best_nats": min(raw + averaged),
        "best_raw_nats": min(raw),
        "best_ema_nats": min(averaged) if averaged else None,
        **test,
        "points": points,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    temporary = args.out + ".tmp"
    with open(temporary, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(temporary, args.out)
    print(f"Best validation NLL {result['best_nats']:.2f} nats; {args.out}")
    return result


def plot(folder, path):
    """Every result in `folder`: validation NLL against training hours
    (nats per image on binarized MNIST, bits/dim on other data sets)."""
    plt = pyplot()
    results = []
    for file in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(file) as f:
            results.append(json.load(f))
    if not results:
        raise ValueError(f"No result files (*.json) in {folder!r}.")
    dataset = results[0]["recipe"]["dataset"]
    if any(r["recipe"]["dataset"] != dataset for r in results):
        raise ValueError(
            f"The results in {folder!r} are on more than one data set: "
            "give each data set a folder of its own (--out)."
        )
    in_bits = dataset != "binarized_mnist"
    fig, ax = plt.subplots(figsize=(9, 5))
    lows = []
    for result in results:
        scale = 1.0
        if in_bits:
            scale = 1 / (result["dimensions"] * math.log(2))
        points = result["points"]
        hours = [p["hours"] for p in points]
        # The cores it trained on ("1 of 2 cores"): runs are compared by
        # the clock, so the plot says which had more.
        cores = result.get("machine", "").rpartition(", ")[2]
        name = (
            f"{result['name']} ({cores})"
            if "core" in cores
            else (result["name"])
        )
        line = ax.plot(hours, [p["nats"] * scale for p in points], label=name)[
            0
        ]
        if result["recipe"].get("ema"):
            ax.plot(
                hours,
                [p["ema_nats"] * scale for p in points],
                linestyle="--",
                color=line.get_color(),
                label=f"{name} (averaged)",
            )
        lows.append(result["best_nats"] * scale)
    ax.set_xlabel("training hours")
    unit = "bits/dim" if in_bits else "nats per image"
    ax.set_ylabel(f"validation NLL ({unit})")
    names = {"binarized_mnist": "binarized MNIST", "cifar10": "CIFAR-10"}
    ax.set_title(f"Time to NLL, {names.get(dataset, dataset)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    # From the best run's low to above the worst run's: every curve's
    # end shows, however far apart the runs finish.
    low, high = min(lows), max(lows)
    ax.set_ylim(*((low - 0.1, high + 1.5) if in_bits else (low - 1, high + 15)))
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {text!r}"
            )
        return value

    return parse


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1), got {text!r}"
        )
    return value


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family", choices=(*FAMILIES, "pixelcnn_pp"), default="gated_pixelcnn"
    )
    parser.add_argument(
        "--output",
        choices=("categorical", "logistic_mixture"),
        default="categorical",
        help="the likelihood (pixelcnn_pp: always the mixture)",
    )
    parser.add_argument("--num-mixtures", type=positive(int), default=10)
    parser.add_argument("--dropout", type=fraction, default=0.0)
    parser.add_argument(
        "--name", help="the result's name (default: from the recipe)"
    )
    parser.add_argument("--dataset", default="binarized_mnist")
    parser.add_argument(
        "--data-dir", help="data folder (default: $PIXEL_MODELS_DATA_DIR)"
    )
    parser.add_argument("--minutes", type=positive(float), default=20.0)
    parser.add_argument("--num-layers", type=positive(int), default=7)
    parser.add_argument("--width", type=positive(int), default=16)
    parser.add_argument("--batch-size", type=positive(int), default=64)
    parser.add_argument("--learning-rate", type=positive(float), default=1e-3)
    parser.add_argument("--schedule", choices=SCHEDULES, default="plateau")
    parser.add_argument(
        "--warmup", type=fraction, default=0.01, help="of the budget (cosine)"
    )
    parser.add_argument(
        "--final-fraction",
        type=fraction,
        default=0.02,
        help="of the peak learning rate at the budget's end (cosine)",
    )
    parser.add_argument(
        "--ema",
        type=fraction,
        default=0.0,
        help="momentum of the weights' moving average (0: none)",
    )
    parser.add_argument("--clipnorm", type=float, default=1.0)
    parser.add_argument(
        "--eval-every",
        type=positive(int),
        default=12800,
        help="training images between two scored points",
    )
    parser.add_argument("--validation-images", type=positive(int), default=2000)
    parser.add_argument(
        "--validation-size",
        type=positive(int),
        default=None,
        help="training images held out (default: the data set's, 5000)",
    )
    parser.add_argument("--max-train", type=positive(int), default=None)
    parser.add_argument(
        "--test-images",
        type=int,
        default=0,
        help="score the model at the budget's end on this many test images "
        "(CIFAR-10: 1017, the ones with the exact official pixels)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--out", help="result file (default: from --name)")
    parser.add_argument(
        "--plot",
        default=None,
        help="the plot's path (default: docs/time_to_nll.png for the "
        "default result folder, else docs/FOLDER.png for --out's folder)",
    )
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="draw the plot from the result files without training",
    )
    return parser


def default_name(args):
    parts = [args.family, f"{args.num_layers}x{args.width}"]
    if args.dataset != "binarized_mnist":
        parts.insert(0, args.dataset)
    if "num_mixtures" in model_options(args):
        parts.append(f"mix{args.num_mixtures}")
    parts += [f"b{args.batch_size}", f"lr{args.learning_rate:g}"]
    parts.append(args.schedule)
    if args.ema:
        parts.append(f"ema{args.ema:g}")
    return "_".join(parts)


def main(argv=None):
    args = build_parser().parse_args(argv)
    folder = os.path.dirname(args.out) if args.out else RESULTS
    if not args.plot_only:
        args.name = args.name or default_name(args)
        args.out = args.out or os.path.join(RESULTS, f"{args.name}.json")
        run(args)
    print(f"Plot: {plot(folder, args.plot or default_plot(folder))}")


def default_plot(folder):
    """The plot of result folder `folder`: `docs/time_to_nll.png` for
    the default one, `docs/<folder's name>.png` for another, so that a
    run on another data set does not draw over the default plot."""
    if os.path.abspath(folder) == os.path.abspath(RESULTS):
        return PLOT
    name = os.path.basename(os.path.normpath(os.path.abspath(folder)))
    return os.path.join(ROOT, "docs", f"{name}.png")


if __name__ == "__main__":
    main()
