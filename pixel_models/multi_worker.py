"""Synchronous training across hosts with `MultiWorkerMirroredStrategy`.

Keras 3's `model.fit` does not run under `MultiWorkerMirroredStrategy`:
its TensorFlow trainer reduces the first per-replica batch and every
scalar metric along an axis they do not have (TensorFlow issue 72388).
`fit_multi_worker` trains the same compiled model with a custom loop
instead: one `strategy.run` per global batch, gradients all-reduced by
the optimizer, and the usual Keras callbacks driven through
`keras.callbacks.CallbackList`, so TensorBoard, checkpoints, learning
rate schedules, early stopping and `TerminateOnNaN` work as under `fit`.

Every worker runs the same script with its own `TF_CONFIG`; worker 0 is
the chief and writes the run directory.
"""

import math
import os
import sys

import keras
from keras import ops

from pixel_models.checks import check_int
from pixel_models.losses import LN2, RestNLL


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy`."""
    # A strategy of TensorFlow's exists only once TensorFlow is imported.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    )


def worker_log_dir(strategy, log_dir):
    """`log_dir` for the chief, `log_dir/worker-N` for the other workers.

    Each worker keeps its own checkpoints and backup, so no two processes
    write one file, and every worker can resume from its own backup.
    """
    if is_chief(strategy):
        return log_dir
    resolver = strategy.cluster_resolver
    return os.path.join(log_dir, f"{resolver.task_type}-{resolver.task_id}")


def is_chief(strategy):
    """Whether this process writes the run's files (worker 0, or chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and (not has_chief)
    )


def per_image_loss(model, y, logits):
    """The model's compiled loss of each image, `(batch,)`: the mean of
    its per-sub-pixel values (`DiscreteNLL`), or its own per-image value
    (`RestNLL`, which counts only some sub-pixels)."""
    loss = model.loss
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.Loss):
        values = loss.call(y, logits)  # unreduced: one value per image or more
    else:
        values = loss(y, logits)
    return ops.mean(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


def _sums(model, x, y, training):
    """Per-replica loss sum (summed over images) and image count."""
    logits = model(x, training=training)
    per_image = per_image_loss(model, y, logits)
    count = ops.cast(ops.shape(per_image)[0], "float32")
    return ops.sum(per_image), count


def _any_worker(strategy, flag):
    """Whether `flag` is true on any worker (a one-number all-reduce).

    Workers must run the same steps: one that stopped alone (its own
    clock ran out, say) would leave the others waiting forever.
    """
    import tensorflow as tf

    value = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(float(flag))
    )
    return float(strategy.reduce("SUM", value, axis=None)) > 0


def _logs(model, nats_per_dim, prefix=""):
    """The loss and its bits/dim, named as `fit` names them."""
    rest = isinstance(model.loss, RestNLL)
    name = "rest_bits_per_dim" if rest else "bits_per_dim"
    return {
        f"{prefix}loss": nats_per_dim,
        f"{prefix}{name}": nats_per_dim / LN2,
    }


def resumed_epoch(model):
    """The epoch `keras.callbacks.BackupAndRestore` resumes a run at, once
    its `on_train_begin` has restored the backup; 0 without one.

    Keras hands it to `fit` through a private attribute of the model, and
    this is the one place that reads it (`test_distributed` fails if
    Keras moves it).
    """
    return getattr(model, "_initial_epoch", None) or 0


def _eval_step(model, strategy):
    import tensorflow as tf

    def replica_eval(x, y):
        return _sums(model, x, y, training=False)

    @tf.function
    def eval_step(batch):
        total, count = strategy.run(replica_eval, args=batch)
        return (
            strategy.reduce("SUM", total, axis=None),
            strategy.reduce("SUM", count, axis=None),
        )

    return eval_step


def _distribute(strategy, dataset):
    """Splits `dataset`'s global batches across workers and replicas."""
    import tensorflow as tf

    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy.DATA
    options.experimental_distribute.auto_shard_policy = policy
    return strategy.experimental_distribute_dataset(
        dataset.with_options(options)
    )


def _evaluate(eval_step, strategy, dataset):
    total = count = 0.0
    for batch in _distribute(strategy, dataset):
        batch_total, batch_count = eval_step(batch)
        total += float(batch_total)
        count += float(batch_count)
    return total / max(count, 1.0)


def evaluate_multi_worker(model, dataset, *, strategy):
    """Mean NLL of `model` on `dataset` in nats per sub-pixel.

    Every worker must call it with the same `dataset`; each scores its
    shard and the sums are all-reduced, so all get the same figure.
    """
    return _evaluate(_eval_step(model, strategy), strategy, dataset)


def fit_multi_worker(
    model,
    train,
    *,
    strategy,
    epochs,
    steps_per_epoch,
    validation_data=None,
    callbacks=(),
    verbose=1,
    initial_epoch=0,
):
    """Trains a compiled model under `MultiWorkerMirroredStrategy`.

    Args:
        model: a model built and compiled inside `strategy.scope()`
            (`pixel_models.training.compile_model`).
        train: `tf.data.Dataset` of global `(x, x)` batches; it is split
            across workers and replicas.
        strategy: the `tf.distribute.MultiWorkerMirroredStrategy`.
        epochs: number of epochs.
        steps_per_epoch: global batches per epoch (make `train` repeat).
        validation_data: optional data set of `(x, x)` batches, scored at
            the end of each epoch as `val_loss` and `val_bits_per_dim`.
        callbacks: Keras callbacks, called as `model.fit` calls them.
        verbose: 1 for a progress bar, 0 for none.
        initial_epoch: the epoch to start at, as in `fit` (a
            `BackupAndRestore` among the callbacks resumes at its own).

    The loss is the model's compiled loss (`DiscreteNLL`, or `RestNLL`
    for a Multi-Scale second stage, logged with `rest_bits_per_dim`).

    Returns:
        The `keras.callbacks.History` of the run (`loss`, `bits_per_dim`
        and, with validation data, `val_loss`, `val_bits_per_dim`).
    """
    check_int("epochs", epochs, minimum=1)
    check_int("initial_epoch", initial_epoch, minimum=0)
    check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    if model.optimizer is None:
        raise ValueError(
            "model must be compiled before fit_multi_worker; call "
            "pixel_models.training.compile_model(model) inside "
            "strategy.scope()."
        )
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    train_step = _train_step(model, strategy)
    eval_step = _eval_step(model, strategy)

    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=bool(verbose),
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    iterator = iter(_distribute(strategy, train))
    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = max(initial_epoch, resumed_epoch(model))
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        epoch_logs = _train_epoch(
            model,
            strategy,
            train_step,
            iterator,
            steps_per_epoch,
            callback_list,
        )
        if validation_data is not None and math.isfinite(epoch_logs["loss"]):
            # As in `fit`: the epoch's validation runs even when a
            # callback stops training, and callbacks see it as a test.
            callback_list.on_test_begin()
            nats = _evaluate(eval_step, strategy, validation_data)
            callback_list.on_test_end()
            epoch_logs.update(_logs(model, nats, prefix="val_"))
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training or not math.isfinite(epoch_logs["loss"]):
            break
    callback_list.on_train_end()
    return model.history


def _train_step(model, strategy):
    """A `tf.function` that trains on one global batch of an iterator.

    It returns the NLL sum and image count over all replicas.
    """
    import tensorflow as tf

    optimizer = model.optimizer

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            total, count = _sums(model, x, y, training=True)
            context = tf.distribute.get_replica_context()
            global_count = context.all_reduce("SUM", count)
            # The optimizer sums gradients over replicas: dividing each
            # replica's sum by the global count gives the global mean.
            loss = total / global_count
            if model.losses:
                loss += ops.sum(model.losses) / strategy.num_replicas_in_sync
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(
            zip(grads, model.trainable_variables, strict=True)
        )
        return total, count

    @tf.function
    def train_step(iterator):
        total, count = strategy.run(replica_step, args=next(iterator))
        return (
            strategy.reduce("SUM", total, axis=None),
            strategy.reduce("SUM", count, axis=None),
        )

    return train_step


def _train_epoch(
    model, strategy, train_step, iterator, steps_per_epoch, callback_list
):
    """Runs one epoch's steps, stopping early when any worker asks to.

    Returns:
        The epoch's logs: mean `loss` and `bits_per_dim` of its batches.
    """
    total = count = 0.0
    for step in range(steps_per_epoch):
        callback_list.on_train_batch_begin(step)
        batch_total, batch_count = train_step(iterator)
        total += float(batch_total)
        count += float(batch_count)
        logs = _logs(model, total / max(count, 1.0))
        callback_list.on_train_batch_end(step, logs)
        model.stop_training = _any_worker(strategy, model.stop_training)
        if model.stop_training:
            break
    return _logs(model, total / max(count, 1.0))
