"""A preset's card: what was trained, on what, for how long, by whom.

`recipes.export` writes `card.json` from these sections, read from the
run folder (`pixel_models.runs.RunFolder`) and the run's `RunConfig`.
"""

import datetime

from pixel_models.presets.table import RECIPES


def card_data(config, counts, binarization):
    """The card's `data` section: the data set and its splits."""
    binarized = config.dataset == "binarized_mnist"
    return {
        "name": config.dataset,
        "binarization": (
            scored_binarization(binarization) if binarized else None
        ),
        "binarization_seed": config.seed if binarized else None,
        "seed": config.seed,
        **counts,
        "notes": data_note(config.dataset, binarization),
    }


def card_training(config, folder, history, best_row, image_shape):
    """The card's `training` section: how long, where, and how it went.

    Args:
        config: the run's `RunConfig` (its first session's).
        folder: its `RunFolder`.
        history: the history rows the kept checkpoint belongs to.
        best_row: the kept epoch's row.
        image_shape: `(H, W, C)`.
    """
    from pixel_models.losses import bits_per_dim_to_nats_per_image

    averaged = config.ema is not None

    last = history[-1]
    return {
        "images_seen": int(best_row["images_seen"]),
        "epochs": int(best_row["epoch"]) + 1,
        "images_seen_in_run": int(last["images_seen"]),
        "epochs_in_run": int(last["epoch"]) + 1,
        "wall_clock_hours": round(best_row["train_hours"], 3),
        "wall_clock_hours_in_run": round(last["train_hours"], 3),
        # Which machine trained which epochs up to the kept one.
        "machine": folder.trained_on(
            [r for r in history if r["epoch"] <= best_row["epoch"]]
        ),
        "batch_size": config.batch_size,
        "optimizer": f"Adam, learning rate {config.learning_rate}, "
        f"gradient clipnorm {config.clipnorm}"
        + (
            f"; weights averaged (EMA, momentum {config.ema}), the "
            "preset holds the average"
            if averaged
            else ""
        ),
        "schedule": _schedule_text(config)
        + "".join(
            f"; from epoch {record['from_epoch']} "
            f"({record['images_seen']:,} images) trained with "
            f"{record['flags']} added"
            for record in folder.added_flags()
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


def _schedule_text(config):
    """How the first invocation of a run set its learning rate."""
    if config.schedule == "cosine":
        rate = (
            f"learning rate along half a cosine from {config.learning_rate} "
            f"towards zero over {config.epochs} epochs (planned for the "
            "run's length)"
        )
    else:
        rate = (
            f"learning rate halved after {config.plateau_patience} "
            "epochs without a better validation NLL (ReduceLROnPlateau)"
        )
    return (
        f"{rate}; stopped after {config.patience} epochs without one "
        "(EarlyStopping); the epoch of lowest validation NLL is kept"
    )


def card_provenance(name, command, flags, model_path):
    """The card's closing entries: paper figure, recipe, versions, hash."""
    import keras

    import pixel_models
    from pixel_models.presets import sha256

    return {
        "paper_nats_per_image": PAPER_NATS.get(name),
        "command": command,
        "recipe": f"examples/{RECIPES[name][0]}.py {' '.join(flags)}",
        "package_version": pixel_models.__version__,
        "keras_version": keras.__version__,
        "exported": datetime.date.today().isoformat(),
        "sha256": sha256(model_path),
    }


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


def scored_binarization(binarization):
    """How the validation and test images of a run trained on
    `binarization` were binarized: as the training images, except that
    dynamic binarization scores on the fixed draw."""
    return "stochastic" if binarization == "dynamic" else binarization
