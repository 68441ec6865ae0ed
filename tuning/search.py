"""Hyperparameter search for a model family with KerasTuner.

The objective is `val_bits_per_dim` (minimised). The search is resumable:
run the same command again with the same `--directory` and it continues
where it stopped, never repeating a finished trial. Each trial logs to
TensorBoard under DIRECTORY/tensorboard/<trial>; at the end the trials are
written to DIRECTORY/trials.csv and plotted in DIRECTORY/trials.png.

Example (grid over dropout and weight decay on binarized MNIST):
    python tuning/search.py --model pixelcnn --dataset binarized_mnist \
        --tuner grid --search dropout weight_decay \
        --dropout 0.0 0.25 --weight-decay 0.0 1e-4 \
        --max-trials 4 --epochs 2 --directory runs/search
"""

import argparse
import csv
import os
import sys

import keras
import keras_tuner

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pixel_models import data  # noqa: E402
from pixel_models.callbacks import TimeBudget  # noqa: E402
from pixel_models.runs import TENSORBOARD, RunFolder
from pixel_models.training import repeat_for_fit  # noqa: E402
from tuning.hypermodels import HYPERMODELS  # noqa: E402

TUNERS = ("grid", "random", "bayesian", "hyperband")
SEARCHABLE = ("num_layers", "width", "dropout", "weight_decay", "learning_rate")
OBJECTIVE = keras_tuner.Objective("val_bits_per_dim", direction="min")


def make_tuner(name, hypermodel, directory, project, max_trials, epochs, seed):
    """Builds the named KerasTuner tuner (resuming what is on disk)."""
    common = dict(
        objective=OBJECTIVE,
        directory=directory,
        project_name=project,
        overwrite=False,  # resume: reload finished trials, never repeat
        seed=seed,
    )
    if name == "grid":
        return keras_tuner.GridSearch(
            hypermodel, max_trials=max_trials, **common
        )
    if name == "random":
        return keras_tuner.RandomSearch(
            hypermodel, max_trials=max_trials, **common
        )
    if name == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=max_trials, **common
        )
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=epochs, factor=3, **common
    )


def trial_table(tuner, searched):
    """One row per trial: id, status, searched values, best objective."""
    rows = []
    for trial in tuner.oracle.trials.values():
        row = {"trial": trial.trial_id, "status": trial.status}
        for name in searched:
            row[name] = trial.hyperparameters.values.get(name)
        row["val_bits_per_dim"] = trial.score
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial"])


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_trials(rows, searched, path):
    """Bits/dim of every finished trial against each searched value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["val_bits_per_dim"] is not None]
    fig, axes = plt.subplots(
        1, len(searched), figsize=(4 * len(searched), 3.5), squeeze=False
    )
    for ax, name in zip(axes[0], searched, strict=True):
        values = [r[name] for r in done]
        scores = [r["val_bits_per_dim"] for r in done]
        numeric = all(isinstance(v, (int, float)) for v in values)
        xs = values if numeric else [str(v) for v in values]
        ax.scatter(xs, scores)
        if numeric and values and min(values) > 0 and max(values) > 0:
            if max(values) / min(values) >= 100:
                ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("val bits/dim")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{len(done)} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _spec(values):
    """Flag values -> hypermodel spec: None, one value, or choices."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else list(values)


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    keras.utils.set_random_seed(args.seed)
    splits = data.get_datasets(
        args.dataset,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        validation_size=args.validation_size,
        seed=args.seed,
        max_train=args.max_train,
        max_test=args.max_test,
    )
    hypermodel_class = HYPERMODELS[args.model]
    probe = hypermodel_class(splits.image_shape, splits.levels)
    specs = _hypermodel_specs(parser, args, probe.paper_size())
    hypermodel = hypermodel_class(splits.image_shape, splits.levels, **specs)
    project = args.project_name or f"{args.model}_{args.dataset}"
    tuner = make_tuner(
        args.tuner,
        hypermodel,
        args.directory,
        project,
        args.max_trials,
        args.epochs,
        args.seed,
    )
    tuner.search_space_summary()
    train, steps_per_epoch = repeat_for_fit(
        splits.train, splits.num_train, args.batch_size, args.steps_per_epoch
    )
    tuner.search(
        train,
        validation_data=splits.validation,
        epochs=args.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=_trial_callbacks(args.directory, args.time_budget),
        shuffle=False,  # the train split is shuffled by tf.data
        verbose=2,
    )
    rows = trial_table(tuner, args.search)
    csv_path = os.path.join(args.directory, "trials.csv")
    png_path = os.path.join(args.directory, "trials.png")
    write_csv(rows, csv_path)
    plot_trials(rows, args.search, png_path)
    _print_trials(rows, args.search)
    print(f"Wrote {csv_path} and {png_path}")
    return rows


def _parser():
    """The command line: data, tuner, budget, and the values to search."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="pixelcnn", choices=sorted(HYPERMODELS)
    )
    parser.add_argument("--dataset", default="binarized_mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--tuner", default="grid", choices=TUNERS)
    parser.add_argument("--max-trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument(
        "--time-budget", type=float, default=None, help="minutes per trial"
    )
    parser.add_argument("--directory", default="runs/search")
    parser.add_argument("--project-name", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--search",
        nargs="+",
        default=["dropout", "weight_decay"],
        choices=SEARCHABLE,
        help="values to search; the others are fixed (flags or the paper's)",
    )
    parser.add_argument("--num-layers", type=int, nargs="+", default=None)
    parser.add_argument("--width", type=int, nargs="+", default=None)
    parser.add_argument("--dropout", type=float, nargs="+", default=None)
    parser.add_argument("--weight-decay", type=float, nargs="+", default=None)
    parser.add_argument("--learning-rate", type=float, nargs="+", default=None)
    return parser


def _hypermodel_specs(parser, args, paper_size):
    """The hypermodel's keyword arguments, one per `SEARCHABLE` name.

    A searched name keeps its flag values (`None`: the hypermodel's
    default space); any other is fixed to its one flag value, else to the
    paper's size (`paper_size`, `(num_layers, width)`) or a default.
    """
    specs = {name: _spec(getattr(args, name)) for name in SEARCHABLE}
    paper_layers, paper_width = paper_size
    fixed_defaults = {
        "num_layers": paper_layers,
        "width": paper_width,
        "dropout": 0.0,
        "weight_decay": 0.0,
        "learning_rate": 1e-3,
    }
    for name in SEARCHABLE:
        if name not in args.search:
            value = specs[name]
            if isinstance(value, list):
                parser.error(
                    f"--{name.replace('_', '-')} has several values but "
                    f"{name} is not in --search. Received: {value}"
                )
            specs[name] = fixed_defaults[name] if value is None else value
    return specs


def _trial_callbacks(directory, time_budget):
    """Every trial's callbacks: TensorBoard, NaN stop, optional budget."""
    callbacks = [
        keras.callbacks.TensorBoard(RunFolder(directory).path(TENSORBOARD)),
        keras.callbacks.TerminateOnNaN(),
    ]
    if time_budget:
        callbacks.append(TimeBudget(time_budget))
    return callbacks


def _print_trials(rows, searched):
    """Prints the trial table: id, searched values, val bits/dim."""
    print(
        f"{'trial':<8}"
        + "".join(f"{n:>16}" for n in searched)
        + f"{'val bits/dim':>16}"
    )
    for r in rows:
        score = r["val_bits_per_dim"]
        print(
            f"{r['trial']:<8}"
            + "".join(f"{r[n]!s:>16}" for n in searched)
            + (f"{score:>16.4f}" if score is not None else f"{'-':>16}")
        )


if __name__ == "__main__":
    main()
