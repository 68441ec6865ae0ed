"""Training and evaluation shared by the example scripts and the tuner.

Everything here is Keras's own machinery put together: `model.fit` with
the stock callbacks (TensorBoard, ModelCheckpoint, ReduceLROnPlateau,
EarlyStopping, TerminateOnNaN, BackupAndRestore), an optimizer with
gradient clipping, and `model.evaluate` for the test NLL.
"""

import argparse
import json
import math
import os
import re
import time

import keras

from pixel_models import data, models, multi_worker
from pixel_models.callbacks import (
    AtomicModelCheckpoint,
    RunCounters,
    SampleGrid,
    TimeBudget,
    save_atomically,
)
from pixel_models.checks import check_int
from pixel_models.losses import (
    LN2,
    BitsPerDim,
    DiscreteNLL,
    bits_per_dim_to_nats_per_image,
)

# MNIST digits and CIFAR-10 classes alike.
NUM_CLASSES = 10


STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def make_strategy(name="default"):
    """A `tf.distribute` strategy by name.

    - `"default"`: one device;
    - `"mirrored"`: every local GPU (or the logical CPUs), synchronous;
    - `"multi_worker"`: every GPU of every host listed in `TF_CONFIG`,
      synchronous; train with `pixel_models.multi_worker.fit_multi_worker`
      (Keras 3's `fit` does not run under this strategy).

    Build and compile the model inside `strategy.scope()`; `model.fit`
    then splits each global batch across the replicas.

    `"mirrored"` and `"multi_worker"` are `tf.distribute` and run on the
    TensorFlow backend only; on JAX or PyTorch they raise a `ValueError`
    that says so (`"default"` works on every backend).
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    backend = keras.backend.backend()
    if name in STRATEGIES and backend != "tensorflow":
        raise ValueError(
            f"--strategy {name} uses tf.distribute, which runs on the "
            "TensorFlow backend only: set KERAS_BACKEND=tensorflow, or use "
            f"--strategy default. Received: strategy={name!r} on backend "
            f"{backend!r}"
        )
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}"
    )


def make_deterministic():
    """Makes the backend's ops deterministic: the same seed then gives the
    same losses, at some cost in speed.

    TensorFlow: `enable_op_determinism`; PyTorch:
    `use_deterministic_algorithms`; JAX's CPU ops already are.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
    # tf.data shuffles and maps on every backend, so TF's ops count too.
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def set_precision(policy="float32"):
    """Sets the Keras dtype policy; logits and loss stay float32."""
    if policy not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}. "
            f"Received: precision={policy!r}"
        )
    keras.mixed_precision.set_global_policy(policy)


def compile_model(
    model,
    learning_rate=1e-3,
    clipnorm=1.0,
    weight_decay=0.0,
    loss=None,
    metrics=None,
    ema_momentum=None,
):
    """Compiles `model` with the discrete NLL loss and `BitsPerDim`.

    Args:
        model: a model from `pixel_models.models`.
        learning_rate: Adam(W) learning rate.
        clipnorm: clip each gradient to this norm (None for no clipping).
        weight_decay: decoupled weight decay (AdamW) when > 0.
        loss, metrics: instead of `DiscreteNLL()` and `[BitsPerDim()]`
            (a Multi-Scale model's second stage counts only the pixels
            not in its small image: `multiscale.conditional_loss`).
        ema_momentum: keep an exponential moving average of the weights
            with this momentum (the optimizer's `use_ema`; Polyak
            averaging, scored with `keras.callbacks.SwapEMAWeights`);
            None for none.

    Returns:
        The same model, compiled.
    """
    if ema_momentum is not None and not 0 < ema_momentum < 1:
        raise ValueError(
            "ema_momentum must be in (0, 1), or None for no averaging. "
            f"Received: ema_momentum={ema_momentum!r}"
        )
    averaging = {}
    if ema_momentum is not None:
        averaging = {"use_ema": True, "ema_momentum": ema_momentum}
    if weight_decay:
        optimizer = keras.optimizers.AdamW(
            learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            **averaging,
        )
    else:
        optimizer = keras.optimizers.Adam(
            learning_rate, clipnorm=clipnorm, **averaging
        )
    model.compile(
        optimizer=optimizer,
        loss=loss or DiscreteNLL(),
        metrics=metrics or [BitsPerDim()],
    )
    return model


def make_callbacks(
    log_dir,
    *,
    patience=5,
    lr_patience=2,
    backup=True,
    sample_every=1,
    images_per_epoch=None,
    sample_condition=None,
    averaged=False,
):
    """The standard callbacks of a training run, all writing to `log_dir`.

    - TensorBoard to `log_dir/tensorboard` (loss, bits/dim, learning rate);
    - CSVLogger of every epoch to `log_dir/history.csv`, appended to when
      a run resumes (with `images_seen` and `train_hours` from the start
      of the run when `images_per_epoch` is given);
    - ModelCheckpoint of the best model (by `val_loss`) to
      `log_dir/checkpoints/best.keras`, written atomically;
    - ReduceLROnPlateau and EarlyStopping on `val_loss`;
    - TerminateOnNaN;
    - BackupAndRestore to `log_dir/backup`, so a killed run resumes.

    Args:
        log_dir: run directory.
        patience: epochs without improvement before stopping.
        lr_patience: epochs without improvement before halving the LR.
        backup: include BackupAndRestore.
        sample_every: epochs between sample grids in TensorBoard (0: none).
        images_per_epoch: images trained in one epoch, for the run's
            counters (`RunCounters`); None leaves them out.
        sample_condition: small images to condition the sample grids on,
            for a model that takes one.
        averaged: the optimizer keeps a moving average of the weights
            (`compile_model(ema_momentum=...)`): validation scores the
            averaged weights (`SwapEMAWeights`), so the best checkpoint is
            the epoch of the best average (its file holds the raw weights
            and the average, `averaged_model` takes the average out), and
            the model `fit` leaves is the last average, not the best raw
            weights.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    os.makedirs(os.path.join(log_dir, "checkpoints"), exist_ok=True)
    history_path = os.path.join(log_dir, "history.csv")
    callbacks = []
    if images_per_epoch:
        # First, so that every later callback sees the counters.
        callbacks.append(RunCounters(images_per_epoch, history_path))
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        AtomicModelCheckpoint(
            os.path.join(log_dir, "checkpoints", "best.keras"),
            monitor="val_loss",
            save_best_only=True,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=lr_patience, verbose=1
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=patience,
            restore_best_weights=not averaged,
        ),
        # After ReduceLROnPlateau, which adds the learning rate to the logs.
        keras.callbacks.CSVLogger(history_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(log_dir, "tensorboard")),
    ]
    if averaged:
        callbacks.insert(0, keras.callbacks.SwapEMAWeights())
    if sample_every:
        callbacks.append(
            SampleGrid(
                os.path.join(log_dir, "tensorboard"),
                every=sample_every,
                condition=sample_condition,
            )
        )
    if backup:
        callbacks.append(
            keras.callbacks.BackupAndRestore(os.path.join(log_dir, "backup"))
        )
    return callbacks


def repeat_for_fit(dataset, num_images, batch_size, steps_per_epoch=None):
    """`dataset` repeated, and the steps of an epoch (default: one pass).

    Keras 3 makes a new iterator at each epoch of a finite data set, and
    that stalled training between epochs here: 8 s for a one-layer
    PixelCNN on MNIST, 56 s for seven layers of h = 16, against 81 s for
    the epoch itself. A repeated data set with a fixed number of steps
    keeps one iterator for the whole run, with no stall.

    Args:
        dataset: batches of one pass (`DatasetSplits.train`).
        num_images: images in one pass.
        batch_size: images per batch.
        steps_per_epoch: batches per epoch; None for one pass.

    Returns:
        `(repeated dataset, steps_per_epoch)` for `model.fit`.
    """
    check_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    if not steps_per_epoch:
        steps_per_epoch = max(1, math.ceil(num_images / batch_size))
    return dataset.repeat(), steps_per_epoch


def evaluate_nll(
    model, dataset, image_shape, num_images=None, verbose=1, strategy=None
):
    """Test NLL of `model` on `dataset`, in bits/dim and nats/image.

    Args:
        model: a compiled model (`compile_model`).
        dataset: `(x, x)` batches from `pixel_models.data`.
        image_shape: `(H, W, C)`.
        num_images: how many images the data set holds (reported as is).
        verbose: Keras progress bar setting.
        strategy: the `MultiWorkerMirroredStrategy` the model was built
            under, if any (Keras 3's `evaluate` does not run under it).

    Returns:
        Dict with `bits_per_dim`, `nats_per_image` and `num_images`.
    """
    if multi_worker.is_multi_worker(strategy):
        nats = multi_worker.evaluate_multi_worker(
            model, dataset, strategy=strategy
        )
        bpd = nats / LN2
    else:
        results = model.evaluate(dataset, verbose=verbose, return_dict=True)
        bpd = float(results["bits_per_dim"])
    return {
        "bits_per_dim": bpd,
        "nats_per_image": bits_per_dim_to_nats_per_image(bpd, image_shape),
        "num_images": num_images,
    }


def add_training_arguments(parser, *, datasets, default_dataset, sizes):
    """Adds the flags shared by the training scripts to `parser`.

    Args:
        parser: an `argparse.ArgumentParser`.
        datasets: data set names offered by `--dataset`.
        default_dataset: the default `--dataset`.
        sizes: dict of defaults for `--num-layers`, `--width`,
            `--batch-size`, `--epochs`.
    """
    parser.add_argument(
        "--model",
        default="pixelcnn",
        choices=sorted(models.MODEL_FAMILIES),
        help="model family",
    )
    parser.add_argument(
        "--dataset",
        default=default_dataset,
        help=f"one of {', '.join(datasets)}, or a folder of images",
    )
    parser.add_argument(
        "--num-layers",
        type=int,
        default=sizes["num_layers"],
        help="residual blocks / recurrent layers",
    )
    parser.add_argument(
        "--width",
        type=int,
        default=sizes["width"],
        help="h: filters of a PixelCNN block / units of a recurrent layer",
    )
    parser.add_argument(
        "--dropout", type=float, default=0.0, help="dropout rate in blocks"
    )
    parser.add_argument(
        "--unroll",
        action="store_true",
        help="Row LSTM / Diagonal BiLSTM: unroll the keras.ops scans "
        "(minutes of tracing before the first step). On TensorFlow on a "
        "CPU in float32 the layers run fused scans instead, faster still "
        "(fused='auto', docs/performance.md), and this has no effect",
    )
    parser.add_argument(
        "--conditional",
        action="store_true",
        help="train a class-conditional model on the data set's labels",
    )
    parser.add_argument(
        "--multiscale",
        type=int,
        default=None,
        metavar="S",
        help="train a Multi-Scale model: an S x S model of the subsampled "
        "images, then a model of the images given them (each stage gets "
        "--epochs and half of --time-budget); LOG_DIR holds small.keras "
        "and large.keras",
    )
    parser.add_argument(
        "--epochs", type=int, default=sizes["epochs"], help="epochs to train"
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="train steps per epoch (default: one pass over the data)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=sizes["batch_size"],
        help="images per step",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's"
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="decoupled weight decay (AdamW when > 0)",
    )
    parser.add_argument(
        "--clipnorm", type=float, default=1.0, help="0: no clipping"
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="MOMENTUM",
        help="keep an exponential moving average of the weights (Polyak "
        "averaging, e.g. 0.999): validation, the best checkpoint's choice "
        "and the final model use the averaged weights",
    )
    parser.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="tf.distribute strategy; --batch-size is the global batch",
    )
    parser.add_argument(
        "--mixed-precision",
        default="float32",
        choices=PRECISIONS,
        help="Keras dtype policy (logits and loss stay float32)",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic ops: same --seed, same losses (slower)",
    )
    parser.add_argument(
        "--validation-size",
        type=int,
        default=None,
        help="training images held out for validation (default: 5000, or "
        "a tenth of a folder of images)",
    )
    parser.add_argument(
        "--max-train", type=int, default=None, help="use at most N train images"
    )
    parser.add_argument(
        "--max-test", type=int, default=None, help="score at most N test images"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square images made from a folder data set",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"local data folder (default: ${data.DATA_DIR_ENV})",
    )
    parser.add_argument(
        "--log-dir",
        default="runs/latest",
        help="run folder: TensorBoard logs, checkpoints, model.keras",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="MODEL",
        help="continue training this .keras file (weights and optimizer "
        "state; its architecture and learning rate replace the model "
        "flags) for --epochs more epochs; epochs and counters go on from "
        "LOG_DIR/history.csv. A killed run needs no flag: rerun the same "
        "command and it resumes from LOG_DIR/backup",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, the shuffle and the binarization",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without a better validation NLL before stopping",
    )
    parser.add_argument(
        "--sample-every",
        type=int,
        default=1,
        help="epochs between sample grids in TensorBoard (0: none)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="stop after this many minutes of training, validation not "
        "counted (equal-budget runs)",
    )
    return parser


def run_training(args):
    """Builds, trains and evaluates a model as the parsed `args` say.

    Writes TensorBoard logs, checkpoints and the final model to
    `args.log_dir`, prints the test NLL, and stores it in
    `args.log_dir/results.json`.

    Returns:
        The results dict (test bits/dim, nats/image, images scored,
        seconds of training).
    """
    if args.unroll and args.model not in ("row_lstm", "diagonal_bilstm"):
        raise ValueError(
            "--unroll applies to the recurrent models only, so --model must "
            "be 'row_lstm' or 'diagonal_bilstm' with it. Received: "
            f"--model={args.model!r}"
        )
    if args.resume and args.strategy == "multi_worker":
        raise ValueError(
            "--resume is not supported with --strategy multi_worker (a "
            "killed multi-worker run resumes from LOG_DIR/backup when the "
            "same command is run again)."
        )
    if args.ema is not None and args.strategy == "multi_worker":
        raise ValueError(
            "--ema is not supported with --strategy multi_worker (its "
            "training loop does not swap in the averaged weights to score "
            "them); train on one worker or without --ema."
        )
    if args.multiscale is not None:
        check_multiscale_args(args)
    # First: some strategies must exist before any other TF op runs.
    strategy = make_strategy(args.strategy)
    set_precision(args.mixed_precision)
    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        make_deterministic()
    image_size = None
    if args.image_size:
        image_size = (args.image_size, args.image_size)
    splits = data.get_datasets(
        args.dataset,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        validation_size=args.validation_size,
        image_size=image_size,
        seed=args.seed,
        max_train=args.max_train,
        max_test=args.max_test,
        with_labels=args.conditional,
    )
    print(
        f"Data: {args.dataset} {splits.image_shape}, levels={splits.levels}, "
        f"train={splits.num_train}, validation={splits.num_validation}, "
        f"test={splits.num_test}"
    )
    if args.multiscale is not None:
        return run_multiscale(args, splits, strategy)
    with strategy.scope():
        if args.resume:
            model = load_checkpoint(args.resume)
            check_resumed_model(model, args, splits)
            keeps_average = getattr(model.optimizer, "use_ema", False)
            if args.ema is not None and model.optimizer and not keeps_average:
                raise ValueError(
                    f"--resume {args.resume} was trained without a moving "
                    "average of its weights, so --ema cannot be given "
                    "(the average would start from the resumed weights); "
                    "train without --ema, or start a new run with it."
                )
            if getattr(model, "optimizer", None) is None:
                compile_model(
                    model,
                    args.learning_rate,
                    args.clipnorm or None,
                    args.weight_decay,
                    ema_momentum=args.ema,
                )
        else:
            model = models.build_model(
                args.model,
                splits.image_shape,
                levels=splits.levels,
                num_layers=args.num_layers,
                width=args.width,
                dropout=args.dropout,
                num_classes=NUM_CLASSES if args.conditional else None,
                **({"unroll": True} if args.unroll else {}),
            )
            compile_model(
                model,
                args.learning_rate,
                args.clipnorm or None,
                args.weight_decay,
                ema_momentum=args.ema,
            )
    print(f"Model: {model.name}, {model.count_params():,} parameters")
    log_dir = multi_worker.worker_log_dir(strategy, args.log_dir)
    train_seconds = fit_run(
        model,
        splits.train,
        splits.num_train,
        splits.validation,
        args,
        log_dir,
        strategy,
        sample_every=args.sample_every if log_dir == args.log_dir else 0,
    )
    final_path = os.path.join(log_dir, "model.keras")
    test, num_test, split_name = scored_split(splits)
    results = evaluate_nll(
        model, test, splits.image_shape, num_test, strategy=strategy
    )
    results.update(
        split=split_name,
        model=args.model,
        dataset=args.dataset,
        train_seconds=round(train_seconds, 1),
        parameters=model.count_params(),
        model_path=final_path,
    )
    line = (
        f"NLL on {results['num_images']} {split_name} images: "
        f"{results['bits_per_dim']:.4f} bits/dim"
    )
    if splits.levels == 2 or math.prod(splits.image_shape) <= 28 * 28:
        line += f", {results['nats_per_image']:.2f} nats/image"
    print(line)
    with open(os.path.join(log_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def fit_run(
    model,
    train,
    num_train,
    validation,
    args,
    log_dir,
    strategy,
    sample_every=1,
    time_budget=None,
    sample_condition=None,
):
    """Trains `model` as the parsed `args` say and saves it.

    The run's callbacks (`make_callbacks`) write to `log_dir`, which a
    rerun of the same command resumes from; the final model goes to
    `log_dir/model.keras`.

    Args:
        train, validation: batches of one pass; `num_train` images.
        time_budget: minutes (default `args.time_budget`).
        sample_condition: small images for the TensorBoard sample grids
            of a model conditioned on one.

    Returns:
        Seconds of training.
    """
    train, steps_per_epoch = repeat_for_fit(
        train, num_train, args.batch_size, args.steps_per_epoch
    )
    initial_epoch = start_history(log_dir, resume=bool(args.resume))
    if not args.resume:
        # What built and trained this run (a resumed run keeps the first).
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "run_args.json"), "w") as f:
            json.dump(vars(args), f, indent=2)
    if initial_epoch:
        print(f"Resuming after epoch {initial_epoch} of {log_dir}")
    callbacks = make_callbacks(
        log_dir,
        patience=args.patience,
        sample_every=sample_every,
        images_per_epoch=steps_per_epoch * args.batch_size,
        sample_condition=sample_condition,
        averaged=bool(getattr(args, "ema", None)),
    )
    time_budget = time_budget or args.time_budget
    if time_budget:
        callbacks.append(TimeBudget(time_budget))
    start = time.perf_counter()
    if multi_worker.is_multi_worker(strategy):
        history = multi_worker.fit_multi_worker(
            model,
            train,
            strategy=strategy,
            epochs=args.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation,
            callbacks=callbacks,
        )
    else:
        history = model.fit(
            train,
            validation_data=validation,
            epochs=initial_epoch + args.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # the train split is shuffled by tf.data
        )
    train_seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    if model.stop_training and losses and not math.isfinite(losses[-1]):
        best = os.path.join(log_dir, "checkpoints", "best.keras")
        raise FloatingPointError(
            f"Training stopped: the loss became {losses[-1]} in epoch "
            f"{len(losses)}. The last good checkpoint is kept at {best}"
            f"{'' if os.path.exists(best) else ' (none was written yet)'}. "
            "Try a lower --learning-rate or a smaller --clipnorm."
        )
    save_atomically(model, os.path.join(log_dir, "model.keras"))
    return train_seconds


def scored_split(splits):
    """`(dataset, num_images, name)` of the split a run is scored on: the
    test split, or the validation split where there is none (a folder of
    images has no test split unless it holds test/)."""
    if splits.num_test:
        return splits.test, splits.num_test, "test"
    return splits.validation, splits.num_validation, "validation"


def check_multiscale_args(args):
    """Raises ValueError for flags that do not go with `--multiscale`."""
    if args.multiscale < 1:
        raise ValueError(
            "--multiscale must be a positive size S. Received: "
            f"--multiscale={args.multiscale}"
        )
    for flag, bad in (
        ("--resume", args.resume),
        ("--strategy multi_worker", args.strategy == "multi_worker"),
    ):
        if bad:
            raise ValueError(
                f"{flag} is not supported with --multiscale (a killed "
                "run resumes each stage from LOG_DIR/small/backup and "
                "LOG_DIR/large/backup when the same command is run again)."
            )


def run_multiscale(args, splits, strategy):
    """Trains the two stages of a Multi-Scale model and scores the pair.

    Stage `small` models the `S x S` subsampled images, stage `large` the
    images given them; each trains in its own `LOG_DIR/small` or
    `LOG_DIR/large` (checkpoints, TensorBoard, backups). The test NLL is
    -log p(x_small) - log p(x_rest | x_small), each term from its
    model's `evaluate`, so every pixel counts once.

    Returns:
        The results dict of `run_training`, with `small_nats` and
        `rest_nats`, the two terms.
    """
    from pixel_models import multiscale
    from pixel_models.losses import rest_mask

    size, shape = args.multiscale, tuple(splits.image_shape)
    small_shape = (size, size, shape[2])
    rest = rest_mask(shape, small_shape)  # checks that S divides the size
    classes = NUM_CLASSES if args.conditional else None
    budget = args.time_budget / 2 if args.time_budget else None
    val_small = next(
        iter(multiscale.stage_dataset(splits.validation, "small", size))
    )[1]
    stages, seconds, scores = {}, 0.0, {}
    test, num_test, split_name = scored_split(splits)
    for stage in ("small", "large"):
        large = stage == "large"
        with strategy.scope():
            model = models.build_model(
                args.model,
                shape if large else small_shape,
                levels=splits.levels,
                num_layers=args.num_layers,
                width=args.width,
                dropout=args.dropout,
                num_classes=classes,
                **({"condition_shape": small_shape} if large else {}),
                **({"unroll": True} if args.unroll else {}),
            )
            compile_model(
                model,
                args.learning_rate,
                args.clipnorm or None,
                args.weight_decay,
                ema_momentum=args.ema,
                **(multiscale.conditional_loss(model) if large else {}),
            )
        print(
            f"Stage {stage}: {model.name}, {model.count_params():,} parameters"
        )
        seconds += fit_run(
            model,
            multiscale.stage_dataset(splits.train, stage, size),
            splits.num_train,
            multiscale.stage_dataset(splits.validation, stage, size),
            args,
            os.path.join(args.log_dir, stage),
            strategy,
            sample_every=args.sample_every,
            time_budget=budget,
            sample_condition=val_small if large else None,
        )
        bpd = model.evaluate(
            multiscale.stage_dataset(test, stage, size),
            verbose=1,
            return_dict=True,
        )["bits_per_dim"]
        dims = (rest.sum() if large else size * size) * shape[2]
        scores[stage] = float(bpd) * LN2 * float(dims)
        stages[stage] = model
    pair = multiscale.MultiScale(stages["small"], stages["large"])
    pair.save(args.log_dir)
    nats = scores["small"] + scores["large"]
    results = {
        "bits_per_dim": nats / (math.prod(shape) * LN2),
        "nats_per_image": nats,
        "small_nats": scores["small"],
        "rest_nats": scores["large"],
        "num_images": num_test,
        "split": split_name,
        "model": args.model,
        "multiscale": size,
        "dataset": args.dataset,
        "train_seconds": round(seconds, 1),
        "parameters": pair.count_params(),
        "model_path": args.log_dir,
    }
    print(
        f"NLL on {num_test} {split_name} images: "
        f"{results['bits_per_dim']:.4f} bits/dim, {nats:.2f} nats/image "
        f"= {scores['small']:.2f} (small image) + {scores['large']:.2f} "
        "(the rest given it)"
    )
    with open(os.path.join(args.log_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def start_history(log_dir, resume):
    """Epochs already trained in `log_dir`, and a clean start if none.

    With `resume` (training a saved model on), the run goes on after the
    last epoch in `log_dir/history.csv`. A run killed part-way resumes
    from `log_dir/backup` (BackupAndRestore) and keeps its history too.
    Any other run in an old `log_dir` starts a new history.

    Returns:
        The index of the first epoch to train.
    """
    from pixel_models.callbacks import last_logged

    history = os.path.join(log_dir, "history.csv")
    backup = os.path.join(log_dir, "backup")
    if resume:
        if not os.path.exists(history):
            return 0
        return int(last_logged(history, "epoch")) + 1
    if os.path.exists(history) and not (
        os.path.isdir(backup) and os.listdir(backup)
    ):
        os.remove(history)
    return 0


def check_resumed_model(model, args, splits):
    """Raises ValueError when a `--resume` model does not fit the data."""
    shape = tuple(model.inputs[0].shape[1:])
    if shape != tuple(splits.image_shape):
        raise ValueError(
            f"--resume {args.resume} takes images of shape {shape}, but "
            f"--dataset {args.dataset} has {tuple(splits.image_shape)}."
        )
    levels = model.outputs[0].shape[-1]
    if levels != splits.levels:
        raise ValueError(
            f"--resume {args.resume} predicts {levels} levels, but "
            f"--dataset {args.dataset} has {splits.levels}."
        )
    conditional = len(model.inputs) > 1
    if conditional != bool(args.conditional):
        raise ValueError(
            f"--resume {args.resume} is "
            f"{'' if conditional else 'not '}class-conditional, so "
            f"--conditional must {'' if conditional else 'not '}be given."
        )


def use_averaged_weights(model):
    """Puts the optimizer's moving average into `model`'s weights.

    For a model compiled with `compile_model(ema_momentum=...)` and
    trained (or loaded from a checkpoint with its optimizer state). The
    model's raw weights are replaced; training it further goes on from
    the average.

    Returns:
        The same model.
    """
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False):
        raise ValueError(
            "The model's optimizer keeps no moving average of the weights: "
            "compile it with compile_model(model, ema_momentum=...) (the "
            "--ema flag) and train it first."
        )
    if not optimizer.variables:
        raise ValueError(
            "The model's optimizer has no state yet (never trained, or "
            "loaded without its optimizer): there is no average to use."
        )
    optimizer.finalize_variable_values(model.trainable_variables)
    return model


def load_checkpoint(path):
    """Loads a `.keras` model file, with clear errors for bad files.

    Args:
        path: path of a `.keras` file written by `model.save`.

    Returns:
        The `keras.Model` (compiled if it was saved compiled).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable `.keras` model (truncated,
            corrupt, or another format).
    """
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No model file at {path!r}: pass the path of a .keras file "
            "written by training (e.g. LOG_DIR/model.keras)."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a valid .keras model file (a .keras file is a "
            "zip archive; this one is truncated, corrupt or of another "
            "format)."
        )
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:
        raise ValueError(
            f"Could not load the model in {path!r}: {error}"
        ) from error


def load_model_or_preset(path=None, preset=None):
    """Loads a `.keras` file or a shipped preset: exactly one of the two.

    Args:
        path: path of a `.keras` file (see `load_checkpoint`).
        preset: name of a preset (see `pixel_models.presets`).

    Returns:
        The `keras.Model`.

    Raises:
        ValueError: both or neither given, or a bad file or preset.
        FileNotFoundError: a missing file.
    """
    if (path is None) == (preset is None):
        raise ValueError(
            "Give either a model file or --preset NAME, not "
            f"{'both' if path else 'neither'}. Received: model={path!r}, "
            f"preset={preset!r}"
        )
    if preset is not None:
        from pixel_models.presets import load_preset

        return load_preset(preset, compile=False)
    return load_checkpoint(path)


class _ShowDefaults(argparse.HelpFormatter):
    """Help that ends with each flag's default, unless it says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        hidden = action.default is None or action.default is False
        if "default" in text or hidden or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def make_parser(description, **kwargs):
    """The parser of a training script (`add_training_arguments`)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=_ShowDefaults
    )
    return add_training_arguments(parser, **kwargs)


def parse_args(description, argv, **kwargs):
    """Builds the parser of a training script and parses `argv`."""
    return make_parser(description, **kwargs).parse_args(argv)


# Library argument names and the training scripts' flags for them, so
# that an error met while setting up a run names the flag the user typed.
FLAG_NAMES = {
    "validation_size": "--validation-size",
    "max_train": "--max-train",
    "max_test": "--max-test",
    "batch_size": "--batch-size",
    "image_size": "--image-size",
    "steps_per_epoch": "--steps-per-epoch",
    "data_dir": "--data-dir",
    "name": "--dataset",
    "ema_momentum": "--ema",
}


def in_flag_terms(message):
    """`message` with library argument names turned into flag names."""
    pattern = r"\b(" + "|".join(FLAG_NAMES) + r")\b(?==| must| is)"
    return re.sub(pattern, lambda m: FLAG_NAMES[m.group(1)], message)


def run_script(description, argv, **kwargs):
    """Parses a training script's flags and runs it.

    A user's mistake (a bad flag value, a missing folder or file) ends
    the script with a one-line `error:` naming the flag, as `argparse`
    does, and exit status 2, not a traceback.

    Returns:
        The results dict of `run_training`.
    """
    parser = make_parser(description, **kwargs)
    args = parser.parse_args(argv)
    try:
        return run_training(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(in_flag_terms(str(error)))
