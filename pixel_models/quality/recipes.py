"""Trains and exports the classifier presets of `pixel_models.quality`.

One command trains a classifier, resuming a run that was killed (Keras's
`BackupAndRestore` in `LOG_DIR/backup`), evaluates it on the test set and
writes the preset (`model.keras` and `card.json` with its accuracies,
data, hours, machine and sha256) beside this file:

    python -m pixel_models.quality.recipes mnist_classifier --epochs 6
    python -m pixel_models.quality.recipes cifar10_classifier --epochs 16

The MNIST classifier trains on 8-bit digits and, for half of the images
of every batch, on binary digits drawn afresh (each pixel 1 with
probability `pixel / 255`), so that it reads the samples of models of
either kind. The CIFAR-10 one trains with random crops (4 pixels of
reflected padding) and horizontal flips, SGD with Nesterov momentum and
a one-cycle learning rate (linear warm-up, then linear decay to zero), as
the fast CIFAR-10 training recipes of DAWNBench do.
"""

import argparse
import json
import os
import time

import numpy as np

from pixel_models.quality import classifiers, features
from pixel_models.quality.store import ClassifierPreset
from pixel_models.runs import BACKUP, HISTORY, RunFolder
from pixel_models.training import machine

RECIPES = {
    "mnist_classifier": {
        "dataset": "mnist",
        "build": classifiers.build_mnist_classifier,
        "builder_arguments": {"width": 32, "feature_size": 128},
        "batch_size": 128,
        "epochs": 6,
        "optimizer": "adam",
        "learning_rate": 3e-3,
        "weight_decay": 0.0,
        "label_smoothing": 0.0,
    },
    "cifar10_classifier": {
        "dataset": "cifar10",
        "build": classifiers.build_cifar10_classifier,
        "builder_arguments": {"width": 24},
        "batch_size": 256,
        "epochs": 16,
        "optimizer": "sgd",
        "learning_rate": 0.2,
        "weight_decay": 5e-4,
        "label_smoothing": 0.2,
    },
}
# The first images of CIFAR-10's test batch hold the official pixels
# (the rest of the shared copy was decoded from JPEG files).
CIFAR10_EXACT_TEST_IMAGES = 1017


def _load(dataset, data_dir):
    from pixel_models import data

    if dataset == "mnist":
        return data.load_mnist(data_dir)
    return data.load_cifar10(data_dir)


class OneCycle:
    """Linear warm-up over `warmup` of the steps, then linear decay to 0."""

    def __init__(self, peak, total_steps, warmup=0.15):
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = max(1, int(warmup * total_steps))

    def schedule(self):
        import keras

        up = self.warmup_steps
        down = max(1, self.total_steps - up)
        peak = self.peak

        # A registered LearningRateSchedule would be the Keras way; this
        # one only lives while the run trains (the preset is saved without
        # its optimizer), so a plain subclass suffices.
        class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):
                from keras import ops

                step = ops.cast(step, "float32")
                rising = peak * step / up
                falling = peak * ops.maximum(0.0, 1.0 - (step - up) / down)
                return ops.where(step < up, rising, falling)

            def get_config(self):
                return {}

        return _Schedule()


def _optimizer(recipe, total_steps):
    import keras

    rate = OneCycle(recipe["learning_rate"], total_steps).schedule()
    if recipe["optimizer"] == "sgd":
        return keras.optimizers.SGD(
            rate,
            momentum=0.9,
            nesterov=True,
            weight_decay=recipe["weight_decay"],
        )
    return keras.optimizers.Adam(rate)


def test_accuracies(model, dataset, data_dir, batch_size=500):
    """The classifier's test accuracies, as the card reports them.

    MNIST: on the 8-bit test digits and on the project's fixed stochastic
    binarization of them (seed 0). CIFAR-10: on the whole test batch and
    on its first 1,017 images, the ones with the official pixels.
    """
    from pixel_models import data

    def accuracy(x, y, levels):
        p = features.ClassifierFeatures(model).probabilities(
            x, levels=levels, batch_size=batch_size
        )
        return float(np.mean(np.argmax(p, axis=-1) == y))

    if dataset == "mnist":
        _, (x_test, y_test) = data.load_mnist(data_dir)
        _, (b_test, _) = data.load_binarized_mnist(data_dir)
        return {
            "mnist": accuracy(x_test, y_test, 256),
            "binarized_mnist": accuracy(b_test, y_test, 2),
        }
    _, (x_test, y_test) = data.load_cifar10(data_dir)
    n = CIFAR10_EXACT_TEST_IMAGES
    return {
        "cifar10": accuracy(x_test, y_test, 256),
        "cifar10_exact_1017": accuracy(x_test[:n], y_test[:n], 256),
    }


def train(
    name, data_dir=None, epochs=None, log_dir=None, out_dir=None, threads=None
):
    """Trains classifier preset `name`, then writes its model and card.

    Args:
        name: a key of `RECIPES`.
        data_dir: the data directory (`$PIXEL_MODELS_DATA_DIR` if None).
        epochs: overrides the recipe's epochs.
        log_dir: where the run keeps its backup and history
            (`runs/classifiers/NAME` if None).
        out_dir: the folder of the presets (`pixel_models/quality/presets`
            if None).
        threads: the TensorFlow threads it was given, for the card.

    Returns:
        The card, a dict.
    """
    import keras

    from pixel_models import data

    if name not in RECIPES:
        raise ValueError(
            f"name must be one of {sorted(RECIPES)}. Received: name={name!r}"
        )
    recipe = RECIPES[name]
    epochs = epochs or recipe["epochs"]
    log_dir = log_dir or os.path.join("runs", "classifiers", name)
    os.makedirs(log_dir, exist_ok=True)
    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = _load(recipe["dataset"], data_dir)
    train_data = data.classifier_dataset(
        x_train, y_train, recipe["dataset"], recipe["batch_size"]
    )
    steps = len(x_train) // recipe["batch_size"]
    model = recipe["build"](**recipe["builder_arguments"])
    model.compile(
        optimizer=_optimizer(recipe, steps * epochs),
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=recipe["label_smoothing"]
        ),
        metrics=["accuracy"],
    )
    started = time.time()
    model.fit(
        train_data,
        epochs=epochs,
        callbacks=[
            keras.callbacks.BackupAndRestore(RunFolder(log_dir).path(BACKUP)),
            keras.callbacks.CSVLogger(
                RunFolder(log_dir).path(HISTORY), append=True
            ),
        ],
        verbose=2,
    )
    hours = (time.time() - started) / 3600
    accuracies = test_accuracies(model, recipe["dataset"], data_dir)
    card = {
        "name": name,
        "dataset": recipe["dataset"],
        "builder": recipe["build"].__name__,
        "builder_arguments": recipe["builder_arguments"],
        "parameters": int(model.count_params()),
        "feature_size": int(
            model.get_layer(classifiers.FEATURES_LAYER).output.shape[-1]
        ),
        "test_accuracy": accuracies,
        "training": {
            "epochs": epochs,
            "batch_size": recipe["batch_size"],
            "train_images": int(len(x_train)),
            "optimizer": recipe["optimizer"],
            "peak_learning_rate": recipe["learning_rate"],
            "weight_decay": recipe["weight_decay"],
            "label_smoothing": recipe["label_smoothing"],
            # The session that ended the run (a run resumed from its
            # backup counts from the resume).
            "wall_clock_hours": round(hours, 3),
            "machine": machine(),
            "threads": threads,
        },
        "command": f"python -m pixel_models.quality.recipes {name} "
        f"--epochs {epochs}",
    }
    return ClassifierPreset(name, out_dir).write(model, card)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    card = train(
        args.name, args.data_dir, args.epochs, args.log_dir, None, args.threads
    )
    print(json.dumps(card["test_accuracy"], indent=2))


if __name__ == "__main__":
    main()
