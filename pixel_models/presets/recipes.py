"""How each preset is trained, and how a training run becomes a preset.

A recipe is the flag list of the training scripts (`examples/train_mnist.py`
and `examples/train_cifar.py` take the same flags). Long runs go on across
sessions: `train` runs the recipe in a run folder, and the same command
goes on from where the folder's run stopped (see `train`). `export` scores
the run's best checkpoint (by validation NLL) on the test set and writes
the preset: `model.keras` (without optimizer state) and its `card.json`.

Example:
    python -m pixel_models.presets.recipes train pixelcnn_binarized_mnist \\
        --log-dir runs/presets/pixelcnn_binarized_mnist
    python -m pixel_models.presets.recipes export pixelcnn_binarized_mnist \\
        --log-dir runs/presets/pixelcnn_binarized_mnist
"""

import argparse
import datetime
import json
import os
import sys
import time

from pixel_models.presets.table import (
    CIFAR,
    MNIST,
    RECIPES,
    SCRIPT_DEFAULT_EPOCHS,
    SCRIPT_SIZES,
)


def recipe_flags(name):
    """The training flags of preset `name`, as a list."""
    check_name(name)
    return RECIPES[name][1].split()


def check_name(name):
    if name not in RECIPES:
        raise ValueError(
            f"Unknown preset. name must be one of {sorted(RECIPES)}. "
            f"Received: name={name!r}"
        )


def parse_recipe(name, extra=()):
    """The parsed training arguments of preset `name` plus `extra` flags."""
    from pixel_models.cli.arguments import parse_args

    script = RECIPES[name][0]
    datasets = MNIST if script == "train_mnist" else CIFAR
    sizes = dict(SCRIPT_SIZES[script], epochs=SCRIPT_DEFAULT_EPOCHS[script])
    return parse_args(
        name,
        [*recipe_flags(name), *extra],
        datasets=list(datasets),
        default_dataset=datasets[0],
        sizes=sizes,
    )


def command(name, log_dir):
    """The shell command that trains preset `name` into `log_dir`."""
    return (
        f"python -m pixel_models.presets.recipes train {name} "
        f"--log-dir {log_dir}"
    )


def train(name, log_dir, data_dir=None, minutes=None, extra=()):
    """Trains preset `name` in `log_dir`, going on from where it stopped.

    One command for every session of a long run: in a new `log_dir` it
    starts the recipe; after a run killed part-way it resumes from
    `log_dir/backup` (BackupAndRestore); after a run that ended (its time
    budget spent, or stopped early) it trains `log_dir/model.keras` on
    with its optimizer state (`--resume`), for the recipe's epochs.

    Args:
        name: a preset name (`RECIPES`).
        log_dir: the run folder.
        data_dir: the data folder (default `$PIXEL_MODELS_DATA_DIR`).
        minutes: stop after this many minutes of training (validation
            not counted); None trains the recipe's epochs.
        extra: more training flags, after the recipe's (a later flag
            wins): for a quick run, say, `["--max-train", "1000"]`; to
            restart a finished run whose learning rate has decayed,
            `["--restart-learning-rate", "3e-4"]`.

    Returns:
        The results dict of `pixel_models.cli.train.run_training`.
    """
    from pixel_models.cli.train import backup_epoch, run_training

    check_name(name)
    flags = list(extra)
    carried = _carried_run_flags(log_dir, flags)
    if carried:
        print(f"Going on with {' '.join(carried)}, as an earlier session added")
    # The carried flags first, so that any flag given now wins; recorded
    # are only the flags given now.
    extra = [*carried, *flags, "--log-dir", log_dir]
    if data_dir:
        extra += ["--data-dir", data_dir]
    if minutes:
        extra += ["--time-budget", str(minutes)]
    saved = os.path.join(log_dir, "model.keras")
    killed = backup_epoch(log_dir) is not None
    if os.path.isfile(saved) and not killed:
        print(f"Training {saved} on")
        extra += ["--resume", saved]
    elif any(flag.startswith("--restart-learning-rate") for flag in flags):
        raise ValueError(
            f"--restart-learning-rate restarts a run that ended, but "
            f"{log_dir} holds "
            + (
                "a run killed part-way: run 'train' without it to resume "
                "that first."
                if killed
                else "no finished run."
            )
        )
    args = parse_recipe(name, extra)
    return run_training(args, callbacks=_flag_recorder(log_dir, flags))


def _flag_recorder(log_dir, flags):
    """A callback that records `flags` (`record_flags`) when training
    begins, once: flags that are refused leave no record."""
    if not flags:
        return []
    import keras

    recorded = []

    def record(logs=None):
        if not recorded:
            record_flags(log_dir, flags)
            recorded.append(True)

    return [keras.callbacks.LambdaCallback(on_train_begin=record)]


def record_flags(log_dir, flags):
    """Appends the flags a session added to the recipe's (a warm restart,
    say) to `log_dir/added_flags.json`, with the epoch and images the run
    had reached, so that the card can say how the run was trained. The
    same flags as the last record's (a killed run resumed with its
    command) add nothing."""
    from pixel_models.training import append_record

    records = added_flags(log_dir)
    if records and records[-1]["flags"] == " ".join(flags):
        return
    rows = []
    if os.path.exists(os.path.join(log_dir, "history.csv")):
        rows = read_history(log_dir)
    append_record(
        os.path.join(log_dir, "added_flags.json"),
        {
            "from_epoch": int(rows[-1]["epoch"]) + 1 if rows else 0,
            "images_seen": int(rows[-1]["images_seen"]) if rows else 0,
            "flags": " ".join(flags),
        },
    )


# Flags that describe the run's data, not one session's: a session that
# does not name them goes on with the value an earlier session added.
RUN_FLAGS = ("--binarization",)


def _carried_run_flags(log_dir, flags):
    """The `RUN_FLAGS` that earlier sessions added and `flags` leave out,
    with their last values."""
    carried = []
    for flag in RUN_FLAGS:
        named = flag in flags or any(f.startswith(flag + "=") for f in flags)
        value = last_added_value(log_dir, flag)
        if not named and value is not None:
            carried += [flag, value]
    return carried


def last_added_value(log_dir, flag):
    """The value of `flag` in the last record of `record_flags` that
    names it, or None."""
    for record in reversed(added_flags(log_dir)):
        words = record["flags"].split()
        for i, word in enumerate(words):
            if word.startswith(flag + "="):
                return word.split("=", 1)[1]
            if word == flag and i + 1 < len(words):
                return words[i + 1]
    return None


def added_flags(log_dir):
    """The records of `record_flags` (an empty list if none)."""
    from pixel_models.training import read_records

    return read_records(os.path.join(log_dir, "added_flags.json"))


def run_arguments(name, log_dir):
    """The training arguments of the run in `log_dir`.

    Read from `log_dir/run_args.json`, which training writes, so that a
    card tells what was trained even where flags were added to the
    recipe's; the recipe's own arguments if the file is missing.
    """
    path = os.path.join(log_dir, "run_args.json")
    if not os.path.exists(path):
        return parse_recipe(name, ["--log-dir", log_dir])
    with open(path) as f:
        return argparse.Namespace(**json.load(f))


def read_history(log_dir):
    """The rows of `log_dir/history.csv` as dicts of floats."""
    from pixel_models.callbacks import logged_rows

    path = os.path.join(log_dir, "history.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No training history at {path!r}: train the preset there first."
        )
    return [
        {key: float(value) for key, value in row.items() if value}
        for row in logged_rows(path)
    ]


def as_family_class(model, family, builder_arguments):
    """`model` (a plain functional model from a file written before the
    model classes, or a class) as its family's class, same weights.

    Args:
        family: the family name (`models.MODEL_FAMILIES`).
        builder_arguments: the card's `builder_arguments`.
    """
    from pixel_models import models

    if getattr(model, "family", None) == family:
        return model
    arguments = dict(builder_arguments)
    if arguments.pop("unroll", False):  # the recurrent families only
        arguments["unroll"] = True
    shape = tuple(arguments.pop("input_shape"))
    levels = arguments.pop("levels")
    rebuilt = models.build_model(family, shape, levels, **arguments)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def convert(name, out_dir=None):
    """Rewrites preset `name`'s file as its family's class, same weights.

    For presets exported before the model classes: the function and the
    card's figures stay; the file and its sha256 change.

    Returns:
        The largest difference of the logits, old file against new, on
        random images (0 when the weights moved over unchanged).
    """
    import keras
    import numpy as np

    from pixel_models.presets import sha256

    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    folder = os.path.join(out_dir, name)
    with open(os.path.join(folder, "card.json")) as f:
        card = json.load(f)
    path = os.path.join(folder, "model.keras")
    old = keras.models.load_model(path, compile=False, safe_mode=True)
    new = as_family_class(old, card["family"], card["builder_arguments"])
    levels = card["builder_arguments"]["levels"]
    shape = card["builder_arguments"]["input_shape"]
    x = np.random.default_rng(0).integers(0, levels, (2, *shape))
    inputs = [x.astype("float32")]
    if card["builder_arguments"].get("num_classes"):
        inputs.append(np.array([0, 1], "int32"))
    inputs = inputs if len(inputs) > 1 else inputs[0]
    before = keras.ops.convert_to_numpy(old(inputs))
    after = keras.ops.convert_to_numpy(new(inputs))
    difference = float(np.abs(before - after).max())
    if difference > 1e-5:
        raise ValueError(
            f"Preset {name!r}: the class gives other logits than the file "
            f"(largest difference {difference}); nothing was written."
        )
    temporary = path + ".tmp.keras"
    new.save(temporary)
    os.replace(temporary, path)
    card["sha256"] = sha256(path)
    with open(os.path.join(folder, "card.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return difference


def export(name, log_dir, out_dir=None, data_dir=None, first=500):
    """Scores a run's best checkpoint and writes it as preset `name`.

    Loads `log_dir/checkpoints/best.keras` (the epoch of lowest validation
    NLL), scores it on the whole test split and on its first `first`
    images, and writes `out_dir/name/model.keras` (weights only, no
    optimizer state) and `out_dir/name/card.json`.

    Returns:
        The card (a dict).
    """
    from pixel_models.training import (
        compile_model,
        evaluate_nll,
        use_averaged_weights,
    )

    check_name(name)
    args = run_arguments(name, log_dir)
    data_dir = data_dir or args.data_dir
    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    model, history = _load_best(log_dir)
    averaged = bool(getattr(args, "ema", None))
    if averaged:
        # The checkpoint holds the raw weights and their average; the
        # average is what validation chose the epoch by.
        use_averaged_weights(model)
    best_row = min(history, key=lambda row: row["val_loss"])
    results = {}
    counts = None
    # Read from the run's records once, for the scoring and the card.
    binarization = run_binarization(args, log_dir)
    for key, limit in (("test", None), (f"test_first_{first}", first)):
        splits = _test_splits(args, data_dir, limit, binarization)
        counts = counts or _image_counts(splits)
        fresh = _fresh_copy(model)
        compile_model(fresh)
        scored = evaluate_nll(
            fresh, splits.test, splits.image_shape, splits.num_test
        )
        results[key] = _test_result(splits, scored)
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    model_path = os.path.join(folder, "model.keras")
    num_classes = splits.num_classes if args.conditional else None
    builder_arguments = _builder_arguments(args, splits, num_classes)
    # The weights scored, not the file again: a run still training may
    # have written a better checkpoint since (an averaged run's: the
    # average, not the raw weights).
    _save_plain_model(model, model_path, args.model, builder_arguments)
    card = {
        "name": name,
        "family": args.model,
        "builder_arguments": builder_arguments,
        "parameters": model.count_params(),
        "data": _card_data(args, counts, binarization),
        "training": _card_training(
            args, history, best_row, splits.image_shape, averaged, log_dir
        ),
        "results": results,
        **_card_provenance(name, log_dir, model_path),
    }
    _write_json(os.path.join(folder, "card.json"), card)
    return card


def _finished_run(log_dir):
    """The best checkpoint's path and the history rows of a finished run.

    Raises:
        FileNotFoundError: the run has no finished epoch yet.
    """
    best = os.path.join(log_dir, "checkpoints", "best.keras")
    history = read_history(log_dir)
    if not history or not os.path.isfile(best):
        raise FileNotFoundError(
            f"The run in {log_dir!r} has no finished epoch yet (no "
            "history rows or no checkpoints/best.keras): train it first."
        )
    return best, history


def _load_best(log_dir, tries=10):
    """The best checkpoint, loaded, and the history rows it belongs to.

    A run still training writes `checkpoints/best.keras` a moment before
    its epoch's history row (the checkpoint callback runs before
    `CSVLogger`), so rows read around the load could end one epoch before
    the weights. Both are read again until neither changed across the
    load: the card's images and hours are those of the weights it scores.

    Raises:
        FileNotFoundError: the run has no finished epoch yet.
        RuntimeError: the checkpoint changed during each of `tries` loads.
    """
    from pixel_models.training import load_checkpoint

    for _ in range(tries):
        best, history = _finished_run(log_dir)
        before = _file_stamp(best)
        model = load_checkpoint(best)
        unchanged = _file_stamp(best) == before
        if unchanged and len(read_history(log_dir)) == len(history):
            return model, history
        time.sleep(1.0)
    raise RuntimeError(
        f"{best} or the history beside it changed during each of {tries} "
        "loads: export between two epochs, or after the run."
    )


def _file_stamp(path):
    """What changes when a file is written or replaced."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _test_splits(args, data_dir, limit, binarization):
    """The run's data splits, with at most `limit` test images."""
    from pixel_models import data

    return data.get_datasets(
        args.dataset,
        data_dir=data_dir,
        batch_size=64,
        validation_size=args.validation_size,
        binarization=scored_binarization(binarization),
        seed=args.seed,
        with_labels=args.conditional,
        max_test=limit,
    )


def run_binarization(args, log_dir):
    """How the run's training images were binarized last: the last
    `--binarization` a session added, else the run's own."""
    added = last_added_value(log_dir, "--binarization")
    return added or getattr(args, "binarization", "stochastic")


def scored_binarization(binarization):
    """How the validation and test images of a run trained on
    `binarization` were binarized: as the training images, except that
    dynamic binarization scores on the fixed draw."""
    return "stochastic" if binarization == "dynamic" else binarization


def _image_counts(splits):
    """The card's image counts of each split."""
    return {
        "train_images": splits.num_train,
        "validation_images": splits.num_validation,
        "validation": f"the last {splits.num_validation} training images",
        "test_images": splits.num_test,
    }


def _fresh_copy(model):
    """A new model of `model`'s architecture holding its weights (of its
    family's class, so that it keeps its likelihood: `clone_model` gives
    a plain functional model)."""
    import keras

    if getattr(model, "family", None):
        fresh = type(model).from_config(model.get_config())
    else:
        fresh = keras.models.clone_model(model)
    fresh.set_weights(model.get_weights())
    return fresh


def _test_result(splits, scored):
    """One entry of the card's `results`, from `evaluate_nll`'s figures."""
    return {
        "split": "test",
        "first_images": splits.num_test,
        "nats_per_image": scored["nats_per_image"],
        "bits_per_dim": scored["bits_per_dim"],
    }


def _builder_arguments(args, splits, num_classes):
    """The card's `builder_arguments`: what rebuilds the model."""
    arguments = {
        "input_shape": list(splits.image_shape),
        "levels": splits.levels,
        "num_layers": args.num_layers,
        "width": args.width,
        "dropout": args.dropout,
        "num_classes": num_classes,
        "unroll": bool(args.unroll),
    }
    output = getattr(args, "output", "categorical")
    if args.model == "pixelcnn_pp" or output == "logistic_mixture":
        if args.model != "pixelcnn_pp":
            arguments["output"] = output
        arguments["num_mixtures"] = getattr(args, "num_mixtures", None) or 10
    return arguments


def _save_plain_model(model, path, family, builder_arguments):
    """Saves `model`'s weights to `path` as its family's class, without
    the optimizer (half the size, and a preset is for use)."""
    plain = as_family_class(_fresh_copy(model), family, builder_arguments)
    plain.save(path)


def _card_data(args, counts, binarization):
    """The card's `data` section: the data set and its splits."""
    binarized = args.dataset == "binarized_mnist"
    return {
        "name": args.dataset,
        "binarization": (
            scored_binarization(binarization) if binarized else None
        ),
        "binarization_seed": args.seed if binarized else None,
        "seed": args.seed,
        **counts,
        "notes": data_note(args.dataset, binarization),
    }


def _card_training(args, history, best_row, image_shape, averaged, log_dir):
    """The card's `training` section: how long, where, and how it went."""
    from pixel_models.losses import bits_per_dim_to_nats_per_image
    from pixel_models.training import trained_on

    last = history[-1]
    return {
        "images_seen": int(best_row["images_seen"]),
        "epochs": int(best_row["epoch"]) + 1,
        "images_seen_in_run": int(last["images_seen"]),
        "epochs_in_run": int(last["epoch"]) + 1,
        "wall_clock_hours": round(best_row["train_hours"], 3),
        "wall_clock_hours_in_run": round(last["train_hours"], 3),
        # Which machine trained which epochs up to the kept one.
        "machine": trained_on(
            log_dir, [r for r in history if r["epoch"] <= best_row["epoch"]]
        ),
        "batch_size": args.batch_size,
        "optimizer": f"Adam, learning rate {args.learning_rate}, "
        f"gradient clipnorm {args.clipnorm}"
        + (
            f"; weights averaged (EMA, momentum {args.ema}), the "
            "preset holds the average"
            if averaged
            else ""
        ),
        "schedule": _schedule_text(args)
        + "".join(
            f"; from epoch {record['from_epoch']} "
            f"({record['images_seen']:,} images) trained with "
            f"{record['flags']} added"
            for record in added_flags(log_dir)
        ),
        "validation_nats_per_image": bits_per_dim_to_nats_per_image(
            best_row["val_bits_per_dim"], image_shape
        ),
        # [images seen, validation bits/dim, hours] after every epoch.
        "validation_curve": [
            [
                int(row["images_seen"]),
                row["val_bits_per_dim"],
                round(row["train_hours"], 4),
            ]
            for row in history
        ],
    }


def _schedule_text(args):
    """How the first invocation of a run set its learning rate."""
    from pixel_models.cli.train import lr_patience

    if getattr(args, "schedule", None) == "cosine":
        rate = (
            f"learning rate along half a cosine from {args.learning_rate} "
            f"towards zero over {args.epochs} epochs (planned for the "
            "run's length)"
        )
    else:
        rate = (
            f"learning rate halved after {lr_patience(args)} "
            "epochs without a better validation NLL (ReduceLROnPlateau)"
        )
    return (
        f"{rate}; stopped after {args.patience} epochs without one "
        "(EarlyStopping); the epoch of lowest validation NLL is kept"
    )


def _card_provenance(name, log_dir, model_path):
    """The card's closing entries: paper figure, recipe, versions, hash."""
    import keras

    import pixel_models
    from pixel_models.presets import sha256

    return {
        "paper_nats_per_image": PAPER_NATS.get(name),
        "command": command(name, log_dir),
        "recipe": f"examples/{RECIPES[name][0]}.py {RECIPES[name][1]}",
        "package_version": pixel_models.__version__,
        "keras_version": keras.__version__,
        "exported": datetime.date.today().isoformat(),
        "sha256": sha256(model_path),
    }


def _write_json(path, value):
    """Writes `value` to `path` as indented JSON and a final newline."""
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


# PixelRNN paper, table 4 (binarized MNIST, nats/image).
PAPER_NATS = {
    "pixelcnn_binarized_mnist": 81.30,
    "row_lstm_binarized_mnist": 80.54,
    "diagonal_bilstm_binarized_mnist": 79.20,
}


def data_note(dataset, binarization="stochastic"):
    if dataset == "binarized_mnist" and binarization == "threshold":
        return "MNIST pixels set to 1 where pixel >= 128"
    if dataset == "binarized_mnist":
        note = (
            "MNIST pixels, each set to 1 with probability pixel/255, drawn "
            "once with the seed (train and test with derived seeds)"
        )
        if binarization == "dynamic":
            note += (
                "; the training images drawn afresh in every pass "
                "(--binarization dynamic; the schedule says from which "
                "epoch), validation and test images as drawn once"
            )
        return note
    if dataset == "cifar10":
        return (
            "CIFAR-10 training images partly decoded from a JPEG copy "
            "(pixels differ from the official ones by a few levels); "
            "bits/dim not comparable with published figures"
        )
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "action", choices=["train", "export", "show", "convert"]
    )
    parser.add_argument("name", help=f"one of {', '.join(sorted(RECIPES))}")
    parser.add_argument(
        "--log-dir", default=None, help="run folder (default runs/presets/NAME)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="train: stop after this many minutes of training",
    )
    parser.add_argument(
        "--out-dir",
        default=None,
        help="export: where preset folders go (default: the package's)",
    )
    argv = sys.argv[1:] if argv is None else argv
    args, extra = parser.parse_known_args(argv)
    if extra and args.action != "train":
        parser.error(
            f"training flags go with 'train' only. Received: {' '.join(extra)}"
        )
    if args.name not in RECIPES:
        parser.error(
            f"unknown preset {args.name!r}; known: {', '.join(sorted(RECIPES))}"
        )
    log_dir = args.log_dir or os.path.join("runs", "presets", args.name)
    try:
        if args.action == "show":
            print(command(args.name, log_dir))
            script, flags = RECIPES[args.name]
            print(f"examples/{script}.py {flags}")
            return None
        if args.action == "train":
            return train(args.name, log_dir, args.data_dir, args.minutes, extra)
        if args.action == "convert":
            difference = convert(args.name, args.out_dir)
            print(f"Converted {args.name}: logits within {difference:.2e}")
            return None
        card = export(args.name, log_dir, args.out_dir, args.data_dir)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(json.dumps(card["results"], indent=2))
    return card


if __name__ == "__main__":
    main()
