"""How each preset is trained, and how a training run becomes a preset.

A recipe is data: a training script and the `RunConfig` settings it
gives (`presets.table.RECIPES`; `recipe_flags` spells them as the flags
of `examples/train_mnist.py` and `examples/train_cifar.py`). Long runs go
on across sessions: `train` runs the recipe in a run folder, and the same
command goes on from where the folder's run stopped (see `train`).
`export` scores the run's best checkpoint (by validation NLL) on the test
set and writes the preset: `model.keras` (without optimizer state) and
its `card.json`.

Example:
    python -m pixel_models.presets.recipes train pixelcnn_binarized_mnist \\
        --log-dir runs/presets/pixelcnn_binarized_mnist
    python -m pixel_models.presets.recipes export pixelcnn_binarized_mnist \\
        --log-dir runs/presets/pixelcnn_binarized_mnist
"""

import argparse
import json
import os
import sys
import time

from pixel_models.config import SCRIPTS, RunConfig, parse_flags, to_flags
from pixel_models.presets import PRESET_CARD, PRESET_MODEL
from pixel_models.presets.cards import (
    card_data,
    card_provenance,
    card_training,
    scored_binarization,
)
from pixel_models.presets.table import RECIPES
from pixel_models.runs import MODEL, RunFolder, write_json


def recipe_flags(name):
    """The training flags of preset `name`, as a list."""
    check_name(name)
    return to_flags(RECIPES[name][1])


def check_name(name):
    if name not in RECIPES:
        raise ValueError(
            f"Unknown preset. name must be one of {sorted(RECIPES)}. "
            f"Received: name={name!r}"
        )


def parse_recipe(name, extra=()):
    """The `RunConfig` of preset `name`, with `extra` flags over it."""
    check_name(name)
    script = RECIPES[name][0]
    return parse_flags(extra, script, defaults=recipe_config(name))


def recipe_config(name):
    """The `RunConfig` of preset `name`'s recipe: its script's defaults
    and the recipe's settings over them."""
    script, values = RECIPES[name]
    defaults = dict(
        SCRIPTS[script]["sizes"], dataset=SCRIPTS[script]["default_dataset"]
    )
    return RunConfig(**{**defaults, **values})


def command(name, log_dir):
    """The shell command that trains preset `name` into `log_dir`."""
    return (
        f"python -m pixel_models.presets.recipes train {name} "
        f"--log-dir {log_dir}"
    )


def train(name, log_dir, data_dir=None, minutes=None, extra=()):
    """Trains preset `name` in `log_dir`, going on from where it stopped.

    One command for every session of a long run: in a new `log_dir` it
    starts the recipe; after a run killed part-way it resumes from its
    backup (BackupAndRestore); after a run that ended (its time budget
    spent, or stopped early) it trains the saved model on with its
    optimizer state (`--resume`), for the recipe's epochs.

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
        The results dict of `pixel_models.trainer.run_training`.
    """
    from pixel_models.trainer import run_training

    check_name(name)
    folder = RunFolder(log_dir)
    flags = list(extra)
    killed = folder.killed_after() is not None
    # Only a run that goes on carries what its earlier sessions added.
    going_on = killed or folder.finished()
    carried = folder.carried_flags(flags) if going_on else []
    if carried:
        print(f"Going on with {' '.join(carried)}, as an earlier session added")
    # The carried flags first, so that any flag given now wins; recorded
    # are only the flags given now.
    extra = [*carried, *flags, "--log-dir", log_dir]
    if data_dir:
        extra += ["--data-dir", data_dir]
    if minutes:
        extra += ["--time-budget", str(minutes)]
    if folder.finished():
        print(f"Training {folder.path(MODEL)} on")
        extra += ["--resume", folder.path(MODEL)]
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
    config = parse_recipe(name, extra)
    return run_training(config, callbacks=_flag_recorder(folder, flags))


def _flag_recorder(folder, flags):
    """A callback that records `flags` (`RunFolder.record_flags`) when
    training begins, once: flags that are refused leave no record."""
    if not flags:
        return []
    import keras

    recorded = []

    def record(logs=None):
        if not recorded:
            folder.record_flags(flags)
            recorded.append(True)

    return [keras.callbacks.LambdaCallback(on_train_begin=record)]


def run_config(name, folder):
    """The `RunConfig` of the first session of the run in `folder` (its
    recorded arguments), or the recipe's if there is no record."""
    arguments = folder.first_arguments()
    if arguments is None:
        return parse_recipe(name, ["--log-dir", folder.log_dir])
    return RunConfig.from_dict(arguments)


def run_binarization(folder, config):
    """How the run's training images were binarized last: the last
    `--binarization` a session added, else the run's own (`config`)."""
    return folder.added_value("--binarization") or config.binarization


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

    from pixel_models.callbacks import save_atomically
    from pixel_models.presets import sha256

    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    folder = os.path.join(out_dir, name)
    with open(os.path.join(folder, PRESET_CARD)) as f:
        card = json.load(f)
    path = os.path.join(folder, PRESET_MODEL)
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
    save_atomically(new, path)
    card["sha256"] = sha256(path)
    write_json(os.path.join(folder, PRESET_CARD), card)
    return difference


def export(name, log_dir, out_dir=None, data_dir=None, first=500):
    """Scores a run's best checkpoint and writes it as preset `name`.

    Loads the run's best checkpoint (the epoch of lowest validation NLL),
    scores it on the whole test split and on its first `first` images,
    and writes `out_dir/name/model.keras` (weights only, no optimizer
    state) and `out_dir/name/card.json`.

    Returns:
        The card (a dict).
    """
    from pixel_models.training import use_averaged_weights

    check_name(name)
    folder = RunFolder(log_dir)
    config = run_config(name, folder)
    model, history = _load_best(folder)
    if config.ema is not None:
        # The checkpoint holds the raw weights and their average; the
        # average is what validation chose the epoch by.
        use_averaged_weights(model)
    # Read from the run's records once, for the scoring and the card.
    binarization = run_binarization(folder, config)
    data_dir = data_dir or config.data_dir
    results, splits = _score_test(model, config, data_dir, first, binarization)
    preset = os.path.join(out_dir or os.path.dirname(__file__), name)
    os.makedirs(preset, exist_ok=True)
    model_path = os.path.join(preset, PRESET_MODEL)
    num_classes = splits.num_classes if config.conditional else None
    builder_arguments = _builder_arguments(config, splits, num_classes)
    # The weights scored, not the file again: a run still training may
    # have written a better checkpoint since (an averaged run's: the
    # average, not the raw weights).
    _save_plain_model(model, model_path, config.model, builder_arguments)
    best_row = min(history, key=lambda row: row["val_loss"])
    card = {
        "name": name,
        "family": config.model,
        "builder_arguments": builder_arguments,
        "parameters": model.count_params(),
        "data": card_data(config, _image_counts(splits), binarization),
        "training": card_training(
            config, folder, history, best_row, splits.image_shape
        ),
        "results": results,
        **card_provenance(
            name, command(name, log_dir), recipe_flags(name), model_path
        ),
    }
    write_json(os.path.join(preset, PRESET_CARD), card)
    return card


def _score_test(model, config, data_dir, first, binarization):
    """The card's `results` (the whole test split and its first `first`
    images) and the splits of the first."""
    from pixel_models.training import compile_model, evaluate_nll

    results, whole = {}, None
    for key, limit in (("test", None), (f"test_first_{first}", first)):
        splits = _test_splits(config, data_dir, limit, binarization)
        fresh = _fresh_copy(model)
        compile_model(fresh)
        scored = evaluate_nll(
            fresh, splits.test, splits.image_shape, splits.num_test
        )
        results[key] = _test_result(splits, scored)
        whole = whole or splits
    return results, whole


def _load_best(folder, tries=10):
    """The best checkpoint, loaded, and the history rows it belongs to.

    A run still training writes its best checkpoint a moment before its
    epoch's history row (the checkpoint callback runs before
    `CSVLogger`), so rows read around the load could end one epoch before
    the weights. Both are read again until neither changed across the
    load: the card's images and hours are those of the weights it scores.

    Raises:
        FileNotFoundError: the run has no finished epoch yet.
        RuntimeError: the checkpoint changed during each of `tries` loads.
    """
    from pixel_models.training import load_checkpoint

    for _ in range(tries):
        best, history = folder.best_checkpoint()
        before = _file_stamp(best)
        model = load_checkpoint(best)
        unchanged = _file_stamp(best) == before
        if unchanged and len(folder.history()) == len(history):
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


def _test_splits(config, data_dir, limit, binarization):
    """The run's data splits, with at most `limit` test images."""
    from pixel_models import data

    return data.get_datasets(
        config.dataset,
        data_dir=data_dir,
        batch_size=64,
        validation_size=config.validation_size,
        binarization=scored_binarization(binarization),
        seed=config.seed,
        with_labels=config.conditional,
        max_test=limit,
    )


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


def _builder_arguments(config, splits, num_classes):
    """The card's `builder_arguments`: what rebuilds the model."""
    arguments = {
        "input_shape": list(splits.image_shape),
        "levels": splits.levels,
        "num_layers": config.num_layers,
        "width": config.width,
        "dropout": config.dropout,
        "num_classes": num_classes,
        "unroll": bool(config.unroll),
    }
    output = config.output
    if config.model == "pixelcnn_pp" or output == "logistic_mixture":
        if config.model != "pixelcnn_pp":
            arguments["output"] = output
        arguments["num_mixtures"] = config.num_mixtures or 10
    return arguments


def _save_plain_model(model, path, family, builder_arguments):
    """Saves `model`'s weights to `path` as its family's class, without
    the optimizer (half the size, and a preset is for use)."""
    plain = as_family_class(_fresh_copy(model), family, builder_arguments)
    plain.save(path)


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
            script = RECIPES[args.name][0]
            print(f"examples/{script}.py {' '.join(recipe_flags(args.name))}")
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
