"""Training and evaluation helpers, for scripts, the tuner and users.

Everything here is Keras's own machinery put together: `model.fit` with
the stock callbacks (TensorBoard, ModelCheckpoint, ReduceLROnPlateau,
EarlyStopping, TerminateOnNaN, BackupAndRestore), an optimizer with
gradient clipping, and `model.evaluate` for the test NLL. The training
scripts' flags and runs are in `pixel_models.cli`.
"""

import contextlib
import math
import os
import warnings

import keras

from pixel_models import multi_worker
from pixel_models.callbacks import (
    AtomicModelCheckpoint,
    RunCounters,
    SampleGrid,
)
from pixel_models.checks import check_int
from pixel_models.compile_defaults import default_likelihood, make_optimizer
from pixel_models.data import tensorflow_installed
from pixel_models.inputs import mixture_levels
from pixel_models.losses import (
    LN2,
    RestNLL,
    bits_per_dim_to_nats_per_image,
    rest_mask,
)
from pixel_models.runs import BACKUP, BEST, HISTORY, TENSORBOARD, RunFolder

STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("plateau", "cosine")
# Epochs without a better validation NLL before ReduceLROnPlateau halves
# the learning rate (the plateau schedule).
LR_PATIENCE = 2


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
    that says so (`"default"` works on every backend, and where TensorFlow
    is not installed it is a `OneDevice`).
    """
    if name == "default" and not tensorflow_installed():
        return OneDevice()
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


class OneDevice:
    """The `"default"` strategy where TensorFlow is not installed: one
    device, and a `scope()` that changes nothing."""

    def scope(self):
        return contextlib.nullcontext()


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
    """Sets the Keras dtype policy; logits and loss stay float32.

    Warns where `mixed_bfloat16` would run on a CPU without bfloat16
    instructions and no GPU (`slow_bfloat16_warning`).
    """
    if policy not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}. "
            f"Received: precision={policy!r}"
        )
    if policy == "mixed_bfloat16" and tensorflow_installed():
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
        message = slow_bfloat16_warning(policy, cpu_flags(), gpus)
        if message:
            warnings.warn(message, stacklevel=2)
    keras.mixed_precision.set_global_policy(policy)


# The CPU flags of bfloat16 matrix instructions: x86's AVX-512 BF16 and
# AMX tiles, Arm's BF16 extension.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpuinfo_field(*keys, path="/proc/cpuinfo"):
    """The value of the first line of `path` whose key is one of `keys`,
    or None where there is no such line or no such file (not Linux)."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in keys:
                    return value.strip()
    except OSError:
        return None
    return None


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (x86 `flags`, Arm `Features`) from `path`,
    or None where there is no such file (not Linux)."""
    value = cpuinfo_field("flags", "Features", path=path)
    return None if value is None else set(value.split())


def slow_bfloat16_warning(policy, flags, gpus=0):
    """The warning for training under `policy` on a CPU with `flags`
    (`cpu_flags`; None: unknown) and `gpus` GPUs, or None.

    Without bfloat16 instructions TensorFlow emulates bfloat16
    convolutions: a 15 x 32 PixelCNN train step took 12.3 s under
    mixed_bfloat16 on an AVX2-only AMD EPYC core, 1.4 s in float32
    (`benchmarks/results/pixelcnn_15x32_avx2_*.json`).
    """
    if policy != "mixed_bfloat16" or gpus or flags is None:
        return None
    if flags & set(BFLOAT16_CPU_FLAGS):
        return None
    return (
        "mixed_precision='mixed_bfloat16' on a CPU without bfloat16 "
        f"instructions (none of {', '.join(BFLOAT16_CPU_FLAGS)} among its "
        "flags) and no GPU: bfloat16 is emulated here, about 10x slower "
        "than float32. Expected on this machine: "
        "--mixed-precision float32."
    )


def compile_model(
    model,
    learning_rate=1e-3,
    clipnorm=1.0,
    weight_decay=0.0,
    loss=None,
    metrics=None,
    ema_momentum=None,
):
    """Compiles `model` with the discrete NLL loss and `BitsPerDim` (or,
    for a logistic mixture output, `LogisticMixtureNLL` and its bits/dim).

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
    default_loss, default_metrics = default_likelihood(mixture_levels(model))
    model.compile(
        optimizer=make_optimizer(
            learning_rate, clipnorm, weight_decay, ema_momentum
        ),
        loss=loss or default_loss,
        metrics=metrics or default_metrics,
    )
    return model


def make_callbacks(
    log_dir,
    *,
    patience=5,
    lr_patience=LR_PATIENCE,
    backup=True,
    sample_every=1,
    images_per_epoch=None,
    sample_condition=None,
    averaged=False,
    schedule=None,
    session=None,
):
    """The standard callbacks of a training run, all writing to its run
    folder `log_dir` (the files are `pixel_models.runs`'s constants):

    - TensorBoard to `TENSORBOARD` (loss, bits/dim, learning rate), and
      sample grids, where TensorFlow is installed;
    - CSVLogger of every epoch to `HISTORY`, appended to when a run
      resumes (with `images_seen` and `train_hours` from the start of the
      run when `images_per_epoch` is given);
    - ModelCheckpoint of the best model (by `val_loss`) to `BEST`,
      written atomically, and only over a better one: a resumed run
      measures its epochs against the best one in its history;
    - ReduceLROnPlateau (or a planned `schedule`) and EarlyStopping on
      `val_loss`;
    - TerminateOnNaN;
    - BackupAndRestore to `BACKUP`, so a killed run resumes.

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
            and the average; `use_averaged_weights` takes the average
            out), and early stopping leaves the last weights in place
            rather than restoring the best raw ones.
        schedule: a function `(epoch, learning_rate) -> learning_rate`
            (`cosine_schedule`, say) that sets each epoch's rate
            (`LearningRateScheduler`) in place of ReduceLROnPlateau.
        session: the run's `runs.Session`, whose earlier hours and best
            validation loss the counters and the checkpoint start from;
            None reads them from the folder's history.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    folder = RunFolder(log_dir)
    os.makedirs(os.path.dirname(folder.path(BEST)), exist_ok=True)
    history_path = folder.path(HISTORY)
    callbacks = []
    if images_per_epoch:
        # First, so that every later callback sees the counters.
        hours = (
            folder.last_logged("train_hours")
            if session is None
            else session.earlier_hours
        )
        callbacks.append(RunCounters(images_per_epoch, hours))
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        AtomicModelCheckpoint(
            folder.path(BEST),
            monitor="val_loss",
            save_best_only=True,
            # A resumed run keeps the best of its earlier epochs.
            initial_value_threshold=(
                folder.best_logged("val_loss")
                if session is None
                else session.best_val_loss
            ),
        ),
        (
            keras.callbacks.LearningRateScheduler(schedule)
            if schedule
            else keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=lr_patience, verbose=1
            )
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=patience,
            restore_best_weights=not averaged,
        ),
        # After the schedule, which adds the learning rate to the logs.
        keras.callbacks.CSVLogger(history_path, append=True),
    ]
    # TensorBoard's files (logs, sample grids) are written by TensorFlow:
    # a machine without it (JAX or PyTorch alone) keeps the other records.
    tensorboard = folder.path(TENSORBOARD)
    board = tensorflow_installed()
    if board:
        callbacks.append(keras.callbacks.TensorBoard(tensorboard))
    if averaged:
        callbacks.insert(0, keras.callbacks.SwapEMAWeights())
    if sample_every and board:
        callbacks.append(
            SampleGrid(
                tensorboard, every=sample_every, condition=sample_condition
            )
        )
    if backup:
        callbacks.append(keras.callbacks.BackupAndRestore(folder.path(BACKUP)))
    return callbacks


def cosine_schedule(peak, first_epoch, final_epoch):
    """A learning rate planned for a run's length: a half cosine.

    The rate starts at `peak` in epoch `first_epoch` and falls along half
    a cosine towards zero at `final_epoch` (the epoch after the last), so
    a run anneals over the epochs it has rather than halving on plateaus.

    Returns:
        A function `(epoch, learning_rate=None) -> rate` for
        `keras.callbacks.LearningRateScheduler`.
    """
    if not peak > 0:
        raise ValueError(f"peak must be > 0. Received: peak={peak}")
    if not final_epoch > first_epoch:
        raise ValueError(
            "final_epoch must be after first_epoch. Received: "
            f"first_epoch={first_epoch}, final_epoch={final_epoch}"
        )
    span = final_epoch - first_epoch

    def rate(epoch, learning_rate=None):
        done = min(max(epoch - first_epoch, 0), span) / span
        return float(peak * 0.5 * (1.0 + math.cos(math.pi * done)))

    return rate


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
        Dict with `bits_per_dim`, `nats_per_image` and `num_images`; for
        a Multi-Scale second stage (compiled with `RestNLL`), which
        scores only the sub-pixels not in its small image,
        `rest_bits_per_dim` and `rest_nats_per_image` (-log p(rest |
        small image)) instead.
    """
    rest = isinstance(getattr(model, "loss", None), RestNLL)
    if multi_worker.is_multi_worker(strategy):
        nats = multi_worker.evaluate_multi_worker(
            model, dataset, strategy=strategy
        )
        bpd = nats / LN2
    else:
        results = model.evaluate(dataset, verbose=verbose, return_dict=True)
        bpd = float(results["rest_bits_per_dim" if rest else "bits_per_dim"])
    if not rest:
        return {
            "bits_per_dim": bpd,
            "nats_per_image": bits_per_dim_to_nats_per_image(bpd, image_shape),
            "num_images": num_images,
        }
    dims = rest_mask(image_shape, model.loss.small_shape).sum() * image_shape[2]
    return {
        "rest_bits_per_dim": bpd,
        "rest_nats_per_image": bpd * LN2 * float(dims),
        "num_images": num_images,
    }


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


def machine():
    """A line that says what machine this is: CPU, cores, GPUs."""
    import platform

    cpu = cpuinfo_field("model name")
    if cpu is None:
        cpu = platform.processor() or platform.machine()
    line = f"{cpu}, {os.cpu_count()} cores"
    if not tensorflow_installed():  # the GPUs are TensorFlow's to count
        return line
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{line}, " + (f"{gpus} GPU{'s' * (gpus > 1)}" if gpus else "no GPU")


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
