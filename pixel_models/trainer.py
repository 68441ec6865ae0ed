"""A training run: a `RunConfig` in, a trained and scored model out.

`run_training` builds (or resumes) the model the configuration describes,
trains it with the library's helpers (`pixel_models.training`:
`compile_model`, `make_callbacks`, `repeat_for_fit`, `evaluate_nll`) in
its run folder (`pixel_models.runs.RunFolder`), saves and scores it;
`run_multiscale` does the same for the two stages of a Multi-Scale
model. The training scripts (`pixel_models.cli.train`) and the presets'
recipes (`pixel_models.presets.recipes`) both call it.
"""

import math
import os
import time

import keras

from pixel_models import data, inputs, models, multi_worker, multiscale
from pixel_models.callbacks import TimeBudget, save_atomically
from pixel_models.config import RunConfig
from pixel_models.losses import rest_mask
from pixel_models.runs import (
    BEST,
    MODEL,
    STAGES,
    TENSORBOARD,
    RunFolder,
    check_lr_patience,
)
from pixel_models.training import (
    compile_model,
    cosine_schedule,
    evaluate_nll,
    load_checkpoint,
    machine,
    make_callbacks,
    make_deterministic,
    make_strategy,
    repeat_for_fit,
    set_precision,
    use_averaged_weights,
)


def run_training(config, callbacks=()):
    """Builds, trains and evaluates a model as `config` says.

    Writes TensorBoard logs, checkpoints and the final model to
    `config.log_dir`, prints the test NLL, and stores it in the folder's
    results. `callbacks` go to each `fit` after the run's own: their
    `on_train_begin` comes once every setting was checked.

    Args:
        config: a `RunConfig` (or a dict of its fields).

    Returns:
        The results dict (test bits/dim, nats/image, images scored,
        seconds of training).
    """
    if not isinstance(config, RunConfig):
        config = RunConfig(**config)
    _check_flags(config)
    # Where each folder's session goes on from, before anything is
    # loaded: a run that cannot resume is refused with nothing written.
    sessions = RunFolder(config.log_dir).stage_sessions(config)
    # First: some strategies must exist before any other TF op runs.
    strategy = make_strategy(config.strategy)
    set_precision(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        make_deterministic()
    # The first folder's: a Multi-Scale run's large stage loads its own.
    first = next(iter(sessions.values()))
    splits = _load_splits(config, first.from_epoch)
    if config.quality_every:
        callbacks = [*callbacks, _quality_callback(config, splits)]
    if config.multiscale is not None:
        return run_multiscale(config, splits, strategy, sessions, callbacks)
    with strategy.scope():
        if config.resume:
            model = _resumed_model(config, splits)
        else:
            model = _new_model(config, splits)
    print(f"Model: {model.name}, {model.count_params():,} parameters")
    log_dir = multi_worker.worker_log_dir(strategy, config.log_dir)
    folder = RunFolder(log_dir)
    train_seconds = fit_run(
        model,
        splits.train,
        splits.num_train,
        splits.validation,
        config,
        folder,
        sessions[None] if log_dir == config.log_dir else folder.session(config),
        strategy,
        sample_every=config.sample_every if log_dir == config.log_dir else 0,
        extra_callbacks=callbacks,
    )
    return _score(model, splits, config, folder, strategy, train_seconds)


def fit_run(
    model,
    train,
    num_train,
    validation,
    config,
    folder,
    session,
    strategy,
    sample_every=1,
    time_budget=None,
    sample_condition=None,
    extra_callbacks=(),
):
    """Trains `model` for one session of the run in `folder` and saves it.

    The session is written down first (`RunFolder.begin`); the run's
    callbacks (`make_callbacks`) write to the folder, which a rerun of the
    same command resumes from; the final model goes to its `MODEL`.

    Args:
        train, validation: batches of one pass; `num_train` images.
        config: the `RunConfig`.
        folder, session: the `RunFolder` and its `Session`.
        time_budget: minutes (default `config.time_budget`).
        sample_condition: small images for the TensorBoard sample grids
            of a model conditioned on one.
        extra_callbacks: more callbacks, after the run's own.

    Returns:
        Seconds of training.
    """
    train, steps_per_epoch = repeat_for_fit(
        train, num_train, config.batch_size, config.steps_per_epoch
    )
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    # Every value checked before the session is written down.
    schedule = _schedule(session.plan(rate))
    time_budget = time_budget or config.time_budget
    budget = [TimeBudget(time_budget)] if time_budget else []
    folder.begin(session, config.to_dict(), rate, machine())
    _announce(folder, session)
    callbacks = make_callbacks(
        folder.log_dir,
        patience=config.patience,
        lr_patience=config.plateau_patience,
        sample_every=sample_every,
        images_per_epoch=steps_per_epoch * config.batch_size,
        sample_condition=sample_condition,
        averaged=config.ema is not None,
        schedule=schedule,
        session=session,
    ) + [*extra_callbacks, *budget]
    start = time.perf_counter()
    fit = dict(
        epochs=session.final_epoch,
        initial_epoch=session.initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=callbacks,
    )
    if multi_worker.is_multi_worker(strategy):
        history = multi_worker.fit_multi_worker(
            model, train, strategy=strategy, **fit
        )
    else:
        # The train split is shuffled by tf.data.
        history = model.fit(train, shuffle=False, **fit)
    train_seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    if model.stop_training and losses and not math.isfinite(losses[-1]):
        _raise_non_finite(losses, folder)
    if config.ema is not None:
        # The run is scored, saved and sampled on its average.
        use_averaged_weights(model)
    save_atomically(model, folder.path(MODEL))
    return train_seconds


def _announce(folder, session):
    if session.kind == "continued" and session.initial_epoch:
        print(
            f"Resuming after epoch {session.initial_epoch} of {folder.log_dir}"
        )
    elif session.kind == "killed":
        print(
            f"Resuming {folder.log_dir} after epoch {session.from_epoch} "
            f"(killed part-way), to epoch {session.final_epoch}"
        )
    kept = session.schedule.get("peak_learning_rate") is not None
    if session.kind == "continued" and session.cosine and kept:
        print(
            "Going on along the cosine schedule planned from epoch "
            f"{session.schedule['first_epoch']} to {session.final_epoch}"
        )


def _schedule(plan):
    """The learning-rate schedule of a `PLANNED_EPOCHS` record: a
    `cosine_schedule`, or None for ReduceLROnPlateau."""
    if plan.get("schedule") != "cosine":
        return None
    return cosine_schedule(
        plan["peak_learning_rate"],
        plan["first_epoch"],
        plan["schedule_final_epoch"],
    )


def _raise_non_finite(losses, folder):
    best = folder.path(BEST)
    exists = os.path.exists(best)
    raise FloatingPointError(
        f"Training stopped: the loss became {losses[-1]} in epoch "
        f"{len(losses)}. The last good checkpoint is kept at {best}"
        f"{'' if exists else ' (none was written yet)'}. "
        "Try a lower --learning-rate or a smaller --clipnorm."
    )


def scored_split(splits):
    """`(dataset, num_images, name)` of the split a run is scored on: the
    test split, or the validation split where there is none (a folder of
    images has no test split unless it holds test/)."""
    if splits.num_test:
        return splits.test, splits.num_test, "test"
    return splits.validation, splits.num_validation, "validation"


def check_multiscale_args(config):
    """Raises ValueError for flags that do not go with `--multiscale`."""
    if config.multiscale < 1:
        raise ValueError(
            "--multiscale must be a positive size S. Received: "
            f"--multiscale={config.multiscale}"
        )
    for flag, bad in (
        ("--resume", config.resume),
        ("--strategy multi_worker", config.strategy == "multi_worker"),
    ):
        if bad:
            raise ValueError(
                f"{flag} is not supported with --multiscale (a killed "
                "run resumes each stage from LOG_DIR/small/backup and "
                "LOG_DIR/large/backup when the same command is run again)."
            )


def run_multiscale(config, splits, strategy, sessions, callbacks=()):
    """Trains the two stages of a Multi-Scale model and scores the pair.

    Stage `small` models the `S x S` subsampled images, stage `large` the
    images given them; each trains in its own `LOG_DIR/small` or
    `LOG_DIR/large` (checkpoints, TensorBoard, backups; `sessions` holds
    each stage folder's `Session`). The test NLL is
    -log p(x_small) - log p(x_rest | x_small), each term from its
    model's `evaluate`, so every pixel counts once.

    Returns:
        The results dict of `run_training`, with `small_nats` and
        `rest_nats`, the two terms.
    """
    size, shape = config.multiscale, tuple(splits.image_shape)
    small_shape = (size, size, shape[2])
    rest_mask(shape, small_shape)  # checks that S divides the size
    budget = config.time_budget / 2 if config.time_budget else None
    val_small = next(
        iter(multiscale.stage_dataset(splits.validation, "small", size))
    )[1]
    stages, seconds, scores = {}, 0.0, {}
    test, num_test, split_name = scored_split(splits)
    for stage in STAGES:
        large = stage == "large"
        if sessions[stage].from_epoch != sessions["small"].from_epoch:
            # Its training passes go on from its own backup's.
            splits = _load_splits(config, sessions[stage].from_epoch)
        with strategy.scope():
            model = _stage_model(config, splits, stage, small_shape)
        print(
            f"Stage {stage}: {model.name}, {model.count_params():,} parameters"
        )
        seconds += fit_run(
            model,
            multiscale.stage_dataset(splits.train, stage, size),
            splits.num_train,
            multiscale.stage_dataset(splits.validation, stage, size),
            config,
            RunFolder(config.log_dir).stage(stage),
            sessions[stage],
            strategy,
            sample_every=config.sample_every,
            time_budget=budget,
            sample_condition=val_small if large else None,
            extra_callbacks=callbacks,
        )
        scored = evaluate_nll(
            model,
            multiscale.stage_dataset(test, stage, size),
            shape if large else small_shape,
            num_test,
            strategy=strategy,
        )
        scores[stage] = scored[
            "rest_nats_per_image" if large else "nats_per_image"
        ]
        stages[stage] = model
    pair = multiscale.MultiScale(stages["small"], stages["large"])
    pair.save(config.log_dir)
    return _multiscale_results(config, splits, pair, scores, seconds)


def check_resumed_model(model, config, splits):
    """Raises ValueError when a `--resume` model does not fit the data."""
    shape = tuple(inputs.image_shape(model))
    if shape != tuple(splits.image_shape):
        raise ValueError(
            f"--resume {config.resume} takes images of shape {shape}, but "
            f"--dataset {config.dataset} has {tuple(splits.image_shape)}."
        )
    levels = inputs.model_levels(model)  # a mixture's, not its outputs'
    if levels != splits.levels:
        raise ValueError(
            f"--resume {config.resume} predicts {levels} levels, but "
            f"--dataset {config.dataset} has {splits.levels}."
        )
    conditional = inputs.num_classes(model) is not None
    if conditional != bool(config.conditional):
        raise ValueError(
            f"--resume {config.resume} is "
            f"{'' if conditional else 'not '}class-conditional, so "
            f"--conditional must {'' if conditional else 'not '}be given."
        )


# Test images the --quality-every figures compare samples with.
QUALITY_REFERENCE_IMAGES = 2000


def _quality_callback(config, splits):
    """`SampleQuality` against the first test (or validation) images."""
    import numpy as np

    from pixel_models.callbacks import SampleQuality

    images, count = [], 0
    for split in (splits.test, splits.validation):
        for batch in split:
            # The targets are the images themselves.
            images.append(np.asarray(batch[1]))
            count += len(images[-1])
            if count >= QUALITY_REFERENCE_IMAGES:
                break
        if images:
            break
    if not images:
        raise ValueError(
            "--quality-every needs test or validation images to compare "
            "samples with; this data set has neither."
        )
    return SampleQuality(
        np.concatenate(images)[:QUALITY_REFERENCE_IMAGES],
        log_dir=RunFolder(config.log_dir).path(TENSORBOARD),
        num_samples=config.quality_samples,
        every=config.quality_every,
    )


def _check_flags(config):
    """Raises ValueError for flags that do not go together."""
    if config.unroll and config.model not in ("row_lstm", "diagonal_bilstm"):
        raise ValueError(
            "--unroll applies to the recurrent models only, so --model must "
            "be 'row_lstm' or 'diagonal_bilstm' with it. Received: "
            f"--model={config.model!r}"
        )
    restart = config.restart_learning_rate
    if restart is not None and not config.resume:
        raise ValueError(
            "--restart-learning-rate sets the learning rate of a resumed "
            "run, so --resume must be given with it. Received: "
            f"--restart-learning-rate={restart}"
        )
    if restart is not None and not restart > 0:
        raise ValueError(
            "--restart-learning-rate must be > 0. Received: "
            f"--restart-learning-rate={restart}"
        )
    if config.resume and config.strategy == "multi_worker":
        raise ValueError(
            "--resume is not supported with --strategy multi_worker (a "
            "killed multi-worker run resumes from LOG_DIR/backup when the "
            "same command is run again)."
        )
    if config.ema is not None and config.strategy == "multi_worker":
        raise ValueError(
            "--ema is not supported with --strategy multi_worker (its "
            "training loop does not swap in the averaged weights to score "
            "them); train on one worker or without --ema."
        )
    check_lr_patience(config.lr_patience, config.schedule)
    if config.multiscale is not None:
        check_multiscale_args(config)


def _load_splits(config, first_pass):
    """The data set the flags name, split, batched, described."""
    image_size = None
    if config.image_size:
        image_size = (config.image_size, config.image_size)
    splits = data.get_datasets(
        config.dataset,
        data_dir=config.data_dir,
        batch_size=config.batch_size,
        validation_size=config.validation_size,
        image_size=image_size,
        binarization=config.binarization,
        seed=config.seed,
        max_train=config.max_train,
        max_test=config.max_test,
        with_labels=config.conditional,
        first_pass=first_pass,
    )
    print(
        f"Data: {config.dataset} {splits.image_shape}, levels={splits.levels}, "
        f"train={splits.num_train}, validation={splits.num_validation}, "
        f"test={splits.num_test}"
    )
    return splits


def _resumed_model(config, splits):
    """The `--resume` model, checked against the data and flags."""
    model = load_checkpoint(config.resume)
    check_resumed_model(model, config, splits)
    keeps_average = getattr(model.optimizer, "use_ema", False)
    if config.ema is not None and model.optimizer and not keeps_average:
        raise ValueError(
            f"--resume {config.resume} was trained without a moving "
            "average of its weights, so --ema cannot be given "
            "(the average would start from the resumed weights); "
            "train without --ema, or start a new run with it."
        )
    if getattr(model, "optimizer", None) is None:
        _compile(model, config)
    if config.restart_learning_rate is not None:
        model.optimizer.learning_rate = config.restart_learning_rate
    return model


def _new_model(config, splits):
    """The model the flags describe, compiled."""
    model = _built_model(
        config, splits, splits.image_shape, **_likelihood_arguments(config)
    )
    _compile(model, config)
    return model


def _built_model(config, splits, shape, **arguments):
    """The flags' family and size for images of `shape` (uncompiled),
    with more of the builder's `arguments`."""
    return models.build_model(
        config.model,
        shape,
        levels=splits.levels,
        num_layers=config.num_layers,
        width=config.width,
        dropout=config.dropout,
        num_classes=splits.num_classes if config.conditional else None,
        **({"unroll": True} if config.unroll else {}),
        **arguments,
    )


def _likelihood_arguments(config):
    """The builder's `output` and `num_mixtures` from the flags."""
    output = config.output
    mixtures = config.num_mixtures
    if config.model == "pixelcnn_pp":  # always a mixture
        return {} if mixtures is None else {"num_mixtures": mixtures}
    if output == "categorical" and mixtures is None:
        return {}
    return {"output": output, "num_mixtures": mixtures}


def _score(model, splits, config, folder, strategy, train_seconds):
    """Scores the trained model, prints and stores the results."""
    final_path = folder.path(MODEL)
    test, num_test, split_name = scored_split(splits)
    results = evaluate_nll(
        model, test, splits.image_shape, num_test, strategy=strategy
    )
    results.update(
        split=split_name,
        model=config.model,
        dataset=config.dataset,
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
    folder.write_results(results)
    return results


def _stage_model(config, splits, stage, small_shape):
    """The model of one Multi-Scale stage, compiled."""
    if _likelihood_arguments(config) or config.model == "pixelcnn_pp":
        raise ValueError(
            "--multiscale trains two categorical models: it takes neither "
            "--output logistic_mixture, --num-mixtures nor --model "
            f"pixelcnn_pp. Received: --model {config.model} --output "
            f"{config.output}"
        )
    large = stage == "large"
    if large:
        shape = tuple(splits.image_shape)
        model = _built_model(config, splits, shape, condition_shape=small_shape)
    else:
        model = _built_model(config, splits, small_shape)
    _compile(
        model, config, **(multiscale.conditional_loss(model) if large else {})
    )
    return model


def _multiscale_results(config, splits, pair, scores, seconds):
    """The Multi-Scale run's results: printed, stored, returned."""
    shape = tuple(splits.image_shape)
    _, num_test, split_name = scored_split(splits)
    size = config.multiscale
    results = multiscale.two_stage_nll(
        scores["small"], scores["large"], shape, num_test
    )
    nats = results["nats_per_image"]
    results.update(
        {
            "split": split_name,
            "model": config.model,
            "multiscale": size,
            "dataset": config.dataset,
            "train_seconds": round(seconds, 1),
            "parameters": pair.count_params(),
            "model_path": config.log_dir,
        }
    )
    print(
        f"NLL on {num_test} {split_name} images: "
        f"{results['bits_per_dim']:.4f} bits/dim, {nats:.2f} nats/image "
        f"= {scores['small']:.2f} (small image) + {scores['large']:.2f} "
        "(the rest given it)"
    )
    RunFolder(config.log_dir).write_results(results)
    return results


def _compile(model, config, **loss):
    """`compile_model` with the flags' optimizer settings."""
    compile_model(
        model,
        config.learning_rate,
        config.clipnorm or None,
        config.weight_decay,
        ema_momentum=config.ema,
        **loss,
    )
