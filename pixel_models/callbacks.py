"""Keras callbacks for training runs that Keras itself does not provide."""

import os
import time

import keras
import numpy as np

from pixel_models.checks import check_int
from pixel_models.runs import partial_path, replacing


class TimeBudget(keras.callbacks.Callback):
    """Stops training once a wall-clock budget is spent.

    Checked after every batch, so a run overshoots by at most one step;
    the epoch in progress ends there (its validation still runs), so
    checkpoints and logs stay consistent. Validation inside `fit` does
    not count against the budget, so families that score slowly are not
    charged for it. Use it to compare model families at an equal
    compute budget.

    Args:
        minutes: the budget, in minutes of training time.

    Example:
    >>> model.fit(ds, epochs=1000, callbacks=[TimeBudget(10)])  # doctest: +SKIP
    """

    def __init__(self, minutes):
        super().__init__()
        if not minutes > 0:
            raise ValueError(
                f"minutes must be positive. Received: minutes={minutes!r}"
            )
        self.minutes = minutes
        self.start = None
        self.paused_at = None
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self.start is not None:
            self.paused_at = time.perf_counter()

    def on_test_end(self, logs=None):
        if self.paused_at is not None:
            self.start += time.perf_counter() - self.paused_at
            self.paused_at = None

    def elapsed_minutes(self):
        """Minutes of training so far, validation excluded."""
        return (time.perf_counter() - self.start) / 60.0

    def on_train_batch_end(self, batch, logs=None):
        if self.elapsed_minutes() >= self.minutes:
            self.stopped_early = True
            self.model.stop_training = True


class RunCounters(keras.callbacks.Callback):
    """Adds `images_seen` and `train_hours` to each epoch's logs.

    Both count from the start of the run, across resumed sessions: the
    epoch index that Keras passes is absolute (BackupAndRestore and
    `initial_epoch` keep it), and the hours of earlier sessions are given
    (`RunFolder.last_logged("train_hours")`). Put this callback before
    `CSVLogger` and TensorBoard so that they record both.

    Args:
        images_per_epoch: images trained in one epoch (steps x batch).
        earlier_hours: hours of training before this session.

    Example:
    >>> counters = RunCounters(100 * 64, earlier_hours=1.5)
    """

    def __init__(self, images_per_epoch, earlier_hours=0.0):
        super().__init__()
        check_int("images_per_epoch", images_per_epoch)
        self.images_per_epoch = images_per_epoch
        self.earlier_hours = float(earlier_hours)
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["images_seen"] = (epoch + 1) * self.images_per_epoch
        elapsed = (time.perf_counter() - self.start) / 3600.0
        logs["train_hours"] = self.earlier_hours + elapsed


class SampleGrid(keras.callbacks.Callback):
    """Writes a grid of samples to TensorBoard every `every` epochs.

    Uses the fast sampler with a fixed seed, so successive grids show how
    the same noise turns into images as training goes on.

    Args:
        log_dir: TensorBoard directory (the grid goes to `log_dir/samples`).
        num_samples: images in the grid.
        every: epochs between grids.
        seed: seed of the sampling noise.
        temperature: sampling temperature.
        condition: for a model conditioned on a small image (a
            Multi-Scale model's second stage), small images to condition
            the grid on, one per sample; their pixels are kept in the
            samples, as `MultiScale.sample` keeps them.

    Example:
    >>> grids = SampleGrid("runs/x/tensorboard")
    >>> model.fit(ds, callbacks=[grids])  # doctest: +SKIP
    """

    def __init__(
        self,
        log_dir,
        num_samples=16,
        every=1,
        seed=0,
        temperature=1.0,
        condition=None,
    ):
        super().__init__()
        check_int("every", every)
        self.condition = None
        if condition is not None:
            # The small images of a model conditioned on one, one each.
            condition = np.asarray(condition)
            num_samples = min(num_samples, len(condition))
            self.condition = condition[:num_samples]
        self.log_dir = log_dir
        self.num_samples = num_samples
        self.every = every
        self.seed = seed
        self.temperature = temperature
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        import tensorflow as tf

        from pixel_models.inputs import model_levels
        from pixel_models.plotting import image_grid
        from pixel_models.sampling import fast_sampler, num_classes, sample

        labels = None
        classes = num_classes(self.model)
        if classes:  # a conditional model: cycle through the classes
            labels = np.arange(self.num_samples) % classes
        if self.condition is None:
            try:
                fast_sampler(self.model)
                method = "fast"
            except ValueError:  # layers without one-pixel steps
                method = "naive"
            images = sample(
                self.model,
                self.num_samples,
                seed=self.seed,
                temperature=self.temperature,
                progress=False,
                labels=labels,
                method=method,
            )
        else:
            images = self._given_small(labels)
        grid = image_grid(images, levels=model_levels(self.model))
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "samples")
            )
        with self._writer.as_default():
            tf.summary.image("samples", grid[None], step=epoch + 1)
        self._writer.flush()

    def _given_small(self, labels):
        """Samples that keep the small images' pixels and draw the rest."""
        from pixel_models.multiscale import sample_given_small

        return sample_given_small(
            self.model,
            self.condition,
            labels=labels,
            seed=self.seed,
            temperature=self.temperature,
            progress=False,
        )


def save_atomically(model, path):
    """Saves `model` to `path` so that a crash never leaves half a file
    (`runs.replacing`: written beside it, then renamed over it)."""
    with replacing(path) as partial:
        model.save(partial)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that never leaves half a file.

    Keras writes the checkpoint to `NAME.partial.keras`; at the end of the
    epoch it is renamed over `NAME.keras` in one atomic step. A run killed
    while saving keeps the previous checkpoint intact. Takes the arguments
    of `ModelCheckpoint` (epoch-end saving, a path without placeholders).

    Example:
    >>> cb = AtomicModelCheckpoint("runs/x/model.keras", save_best_only=True)
    """

    def __init__(self, filepath, **kwargs):
        self.final_path = os.fspath(filepath)
        super().__init__(partial_path(self.final_path), **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if os.path.exists(self.filepath):
            os.replace(self.filepath, self.final_path)


class SampleQuality(keras.callbacks.Callback):
    """Logs the kernel (and Frechet) distance of samples every `every`
    epochs.

    Draws `num_samples` images with a fixed seed and compares them with
    `reference_images` in the features of `features`
    (`pixel_models.quality.Reference.distances`): KID (unbiased, so fair
    at a few hundred samples) and the Frechet distance (biased upwards at
    small counts: compare it only between runs of the same
    `num_samples`). The figures go to TensorBoard (`log_dir/quality`)
    and into the logs of the epochs they are measured after, so
    `History` keeps them. The extractor and the reference's features are
    made when training begins, so a missing classifier preset or
    reference images of the wrong levels fail at once, not hours later.

    Args:
        reference_images: real images (integer levels) of the model's
            shape, e.g. a few thousand test images.
        log_dir: TensorBoard directory, or None to log to the epoch's logs
            alone.
        num_samples: samples drawn each time (at least 2).
        every: epochs between measurements.
        features: `"classifier"`, `"inception"` or a `FeatureExtractor`.
        seed: seed of the sampling noise.
        temperature: sampling temperature.

    Example:
    >>> x_test = np.zeros((100, 28, 28, 1), "uint8")
    >>> quality = SampleQuality(x_test, "runs/x/tensorboard", every=5)
    >>> model.fit(ds, callbacks=[quality])  # doctest: +SKIP
    """

    def __init__(
        self,
        reference_images,
        log_dir=None,
        num_samples=500,
        every=5,
        features="classifier",
        seed=0,
        temperature=1.0,
    ):
        super().__init__()
        check_int("every", every)
        check_int("num_samples", num_samples, minimum=2)
        self.reference_images = np.asarray(reference_images)
        self.log_dir = log_dir
        self.num_samples = num_samples
        self.every = every
        self.features = features
        self.seed = seed
        self.temperature = temperature
        self.reference = None
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.reference is not None:
            return
        from pixel_models import quality
        from pixel_models.inputs import image_shape, model_levels

        self.reference = quality.Reference(
            self.reference_images,
            model_levels(self.model),
            quality.extractor_for(self.features, image_shape(self.model)),
        )

    def measure(self):
        """The figures of the model as it is now, a dict."""
        from pixel_models.quality import balanced_labels
        from pixel_models.sampling import sample

        self.on_train_begin()
        images = sample(
            self.model,
            self.num_samples,
            seed=self.seed,
            temperature=self.temperature,
            progress=False,
            labels=balanced_labels(self.model, self.num_samples),
        )
        figures = self.reference.distances(images)
        return {k: figures[k] for k in ("kid", "frechet_distance")}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        figures = self.measure()
        if logs is not None:
            logs.update(figures)
        if self.log_dir is None:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "quality")
            )
        with self._writer.as_default():
            for name, value in figures.items():
                tf.summary.scalar(name, value, step=epoch + 1)
        self._writer.flush()
