"""The training scripts' runs: flags in, a trained and scored model out.

`run_training` builds (or resumes) the model the flags describe, trains
it with the library's helpers (`pixel_models.training`: `compile_model`,
`make_callbacks`, `repeat_for_fit`, `evaluate_nll`), saves and scores
it; `run_multiscale` does the same for the two stages of a Multi-Scale
model; `run_script` is a script's `main`.
"""

import json
import math
import os
import time

import keras

from pixel_models import data, inputs, models, multi_worker, multiscale
from pixel_models.callbacks import TimeBudget, last_logged, save_atomically
from pixel_models.cli.arguments import in_flag_terms, make_parser
from pixel_models.losses import LN2, rest_mask
from pixel_models.training import (
    LR_PATIENCE,
    compile_model,
    cosine_schedule,
    evaluate_nll,
    load_checkpoint,
    make_callbacks,
    make_deterministic,
    make_strategy,
    record_session,
    repeat_for_fit,
    set_precision,
    use_averaged_weights,
)


def run_training(args, callbacks=()):
    """Builds, trains and evaluates a model as the parsed `args` say.

    Writes TensorBoard logs, checkpoints and the final model to
    `args.log_dir`, prints the test NLL, and stores it in
    `args.log_dir/results.json`. `callbacks` go to each `fit` after the
    run's own: their `on_train_begin` comes once every flag was checked.

    Returns:
        The results dict (test bits/dim, nats/image, images scored,
        seconds of training).
    """
    _check_flags(args)
    # First: some strategies must exist before any other TF op runs.
    strategy = make_strategy(args.strategy)
    set_precision(args.mixed_precision)
    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        make_deterministic()
    splits = _load_splits(args)
    if getattr(args, "quality_every", 0):
        callbacks = [*callbacks, _quality_callback(args, splits)]
    if args.multiscale is not None:
        return run_multiscale(args, splits, strategy, callbacks)
    with strategy.scope():
        if args.resume:
            model = _resumed_model(args, splits)
        else:
            model = _new_model(args, splits)
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
        extra_callbacks=callbacks,
    )
    return _score(model, splits, args, log_dir, strategy, train_seconds)


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
    extra_callbacks=(),
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
        extra_callbacks: more callbacks, after the run's own.

    Returns:
        Seconds of training.
    """
    train, steps_per_epoch = repeat_for_fit(
        train, num_train, args.batch_size, args.steps_per_epoch
    )
    initial_epoch = start_history(log_dir, resume=bool(args.resume))
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    final_epoch = plan_epochs(log_dir, args, initial_epoch, rate)
    callbacks = make_callbacks(
        log_dir,
        patience=args.patience,
        lr_patience=lr_patience(args),
        sample_every=sample_every,
        images_per_epoch=steps_per_epoch * args.batch_size,
        sample_condition=sample_condition,
        averaged=bool(getattr(args, "ema", None)),
        schedule=planned_schedule(log_dir),
    ) + list(extra_callbacks)
    time_budget = time_budget or args.time_budget
    if time_budget:
        callbacks.append(TimeBudget(time_budget))
    start = time.perf_counter()
    if multi_worker.is_multi_worker(strategy):
        history = multi_worker.fit_multi_worker(
            model,
            train,
            strategy=strategy,
            epochs=final_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
        )
    else:
        history = model.fit(
            train,
            validation_data=validation,
            epochs=final_epoch,
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
    if getattr(args, "ema", None):
        # The run is scored, saved and sampled on its average.
        use_averaged_weights(model)
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


def run_multiscale(args, splits, strategy, callbacks=()):
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
    size, shape = args.multiscale, tuple(splits.image_shape)
    small_shape = (size, size, shape[2])
    rest_mask(shape, small_shape)  # checks that S divides the size
    budget = args.time_budget / 2 if args.time_budget else None
    val_small = next(
        iter(multiscale.stage_dataset(splits.validation, "small", size))
    )[1]
    stages, seconds, scores = {}, 0.0, {}
    test, num_test, split_name = scored_split(splits)
    for stage in ("small", "large"):
        large = stage == "large"
        with strategy.scope():
            model = _stage_model(args, splits, stage, small_shape)
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
    pair.save(args.log_dir)
    return _multiscale_results(args, splits, pair, scores, seconds)


PLANNED_EPOCHS = "planned_epochs.json"


def backup_epoch(log_dir):
    """The epochs a run killed part-way had trained (its
    BackupAndRestore backup in `log_dir/backup`), or None where no run
    was killed: the one test of a killed run, as Keras's own (the epoch
    it resumes from is the backup's record)."""
    path = os.path.join(log_dir, "backup", "training_metadata.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return int(json.load(f)["epoch"])


def epochs_trained_before(args):
    """The epochs this session's run trained in earlier sessions: those
    a killed run backed up, or those a run trained on with --resume
    logged; 0 for a new run."""
    killed = backup_epoch(args.log_dir)
    if killed is not None and not args.resume:
        return killed
    history = os.path.join(args.log_dir, "history.csv")
    if args.resume and os.path.exists(history):
        return int(last_logged(history, "epoch")) + 1
    return 0


def plan_epochs(log_dir, args, initial_epoch, learning_rate=None):
    """Where a run goes on from and to, written down before it trains.

    Records the run's last epoch in `log_dir/PLANNED_EPOCHS` (with a
    planned learning-rate schedule, `--schedule cosine`, its first epoch
    and peak `learning_rate` too), and the arguments of a new run in
    `log_dir/run_args.json` (a run trained on with --resume, or resumed
    after it was killed, keeps the first), and says where a run that goes
    on resumes.

    Returns:
        The epoch to train to.
    """
    final_epoch = initial_epoch + args.epochs
    killed_after = None if args.resume else backup_epoch(log_dir)
    schedule = {}
    if killed_after is not None:
        final_epoch = planned_final_epoch(log_dir, killed_after, args)
        schedule = _killed_run_schedule(log_dir, args)
    elif schedule := _unfinished_plan(log_dir, args, initial_epoch):
        final_epoch = schedule["schedule_final_epoch"]
        print(
            f"Going on along the cosine schedule planned from epoch "
            f"{schedule['first_epoch']} to {final_epoch}"
        )
    elif getattr(args, "schedule", None) == "cosine":
        schedule = {
            "schedule": "cosine",
            "first_epoch": initial_epoch,
            "schedule_final_epoch": final_epoch,
            "peak_learning_rate": learning_rate,
        }
    # The schedule a killed or unfinished run was planned on, which the
    # flags need not name (`_check_flags` refuses a named one earlier).
    _check_lr_patience(args, schedule.get("schedule"))
    os.makedirs(log_dir, exist_ok=True)
    record_session(
        log_dir, initial_epoch if killed_after is None else killed_after
    )
    if killed_after is None and not args.resume:
        with open(os.path.join(log_dir, "run_args.json"), "w") as f:
            json.dump(vars(args), f, indent=2)
    # A run killed part-way goes on to this epoch, not to `--epochs`.
    with open(os.path.join(log_dir, PLANNED_EPOCHS), "w") as f:
        json.dump({"final_epoch": final_epoch, **schedule}, f)
    if initial_epoch:
        print(f"Resuming after epoch {initial_epoch} of {log_dir}")
    elif killed_after is not None:
        print(
            f"Resuming {log_dir} after epoch {killed_after} (killed part-"
            f"way), to epoch {final_epoch}"
        )
    return final_epoch


def lr_patience(args):
    """The plateau schedule's patience the flags give (default 2)."""
    patience = getattr(args, "lr_patience", None)
    return LR_PATIENCE if patience is None else patience


def _check_lr_patience(args, schedule):
    """Raises ValueError for --lr-patience on a cosine schedule (which
    would ignore it)."""
    patience = getattr(args, "lr_patience", None)
    if patience is not None and schedule == "cosine":
        raise ValueError(
            "--lr-patience sets when the plateau schedule halves the "
            "learning rate, but this run trains on a cosine schedule "
            "(--schedule cosine, or the one a killed or unfinished run "
            "was planned on), which would ignore it: leave --lr-patience "
            f"out. Received: --lr-patience={patience}"
        )


def _unfinished_plan(log_dir, args, initial_epoch):
    """The cosine schedule a run trained on goes on along, or `{}`.

    A run that ended before its planned last epoch (its time budget
    spent) and is trained on from `log_dir/model.keras` keeps its plan,
    unless `--restart-learning-rate` or `--schedule plateau` begins a new
    one; `--epochs` then does not move the plan's end.
    """
    saved = os.path.join(log_dir, "model.keras")
    if (
        not args.resume
        or getattr(args, "restart_learning_rate", None) is not None
        or getattr(args, "schedule", None) == "plateau"
        or not os.path.exists(saved)
        or not os.path.samefile(args.resume, saved)
    ):
        return {}
    planned = _recorded_plan(log_dir)
    if planned.get("schedule") != "cosine":
        return {}
    if planned["schedule_final_epoch"] <= initial_epoch:
        return {}
    return _schedule_keys(planned)


def _killed_run_schedule(log_dir, args):
    """The schedule a killed run started on, as `PLANNED_EPOCHS` holds it.

    Raises ValueError when `--schedule` names another one.
    """
    planned = _recorded_plan(log_dir)
    started = planned.get("schedule", "plateau")
    wanted = getattr(args, "schedule", None)
    if wanted is not None and wanted != started:
        raise ValueError(
            f"{os.path.join(log_dir, 'backup')} holds a run killed "
            f"part-way that trained with --schedule {started}, so it "
            f"resumes on it: rerun without --schedule {wanted} (or with "
            f"--schedule {started}), then change it once the run has ended."
        )
    return _schedule_keys(planned)


def _recorded_plan(log_dir):
    """The `PLANNED_EPOCHS` record of the run in `log_dir` (`{}`: none)."""
    path = os.path.join(log_dir, PLANNED_EPOCHS)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _schedule_keys(planned):
    """The schedule's part of a `PLANNED_EPOCHS` record."""
    keys = (
        "schedule",
        "first_epoch",
        "schedule_final_epoch",
        "peak_learning_rate",
    )
    return {key: planned[key] for key in keys if key in planned}


def planned_schedule(log_dir):
    """The learning-rate schedule `plan_epochs` recorded for the run in
    `log_dir`: a `cosine_schedule`, or None for ReduceLROnPlateau."""
    planned = _recorded_plan(log_dir)
    if planned.get("schedule") != "cosine":
        return None
    return cosine_schedule(
        planned["peak_learning_rate"],
        planned["first_epoch"],
        planned["schedule_final_epoch"],
    )


def planned_final_epoch(log_dir, killed_after, args):
    """The epoch a run killed after epoch `killed_after` trains to.

    The killed invocation recorded its last epoch in
    `log_dir/PLANNED_EPOCHS` (a run trained on with `--resume` counts its
    `--epochs` from where it went on, so the rerun's `--epochs` alone
    would end it early); a larger `--epochs` goes further. A backup with
    no record (an older run) must have `--epochs` left: resumed at or
    past it, it would train nothing and save its backup as the finished
    model, so it raises ValueError, before anything is written.
    """
    planned = _recorded_plan(log_dir)
    if planned:
        return max(int(planned["final_epoch"]), args.epochs)
    if killed_after >= args.epochs:
        raise ValueError(
            f"{os.path.join(log_dir, 'backup')} holds a run killed after "
            f"{killed_after} epochs, and --epochs {args.epochs} counts "
            f"from the run's start, so resuming it would train nothing. "
            f"Give --epochs the total to reach (more than {killed_after})."
        )
    return args.epochs


def start_history(log_dir, resume):
    """Epochs already trained in `log_dir`, and a clean start if none.

    With `resume` (training a saved model on), the run goes on after the
    last epoch in `log_dir/history.csv`. A run killed part-way resumes
    from `log_dir/backup` (BackupAndRestore) and keeps its history too.
    Any other run in an old `log_dir` starts a new history.

    Returns:
        The index of the first epoch to train.
    """
    history = os.path.join(log_dir, "history.csv")
    if resume:
        if not os.path.exists(history):
            return 0
        return int(last_logged(history, "epoch")) + 1
    if os.path.exists(history) and backup_epoch(log_dir) is None:
        os.remove(history)
    return 0


def check_resumed_model(model, args, splits):
    """Raises ValueError when a `--resume` model does not fit the data."""
    shape = tuple(inputs.image_shape(model))
    if shape != tuple(splits.image_shape):
        raise ValueError(
            f"--resume {args.resume} takes images of shape {shape}, but "
            f"--dataset {args.dataset} has {tuple(splits.image_shape)}."
        )
    levels = inputs.model_levels(model)  # a mixture's, not its outputs'
    if levels != splits.levels:
        raise ValueError(
            f"--resume {args.resume} predicts {levels} levels, but "
            f"--dataset {args.dataset} has {splits.levels}."
        )
    conditional = inputs.num_classes(model) is not None
    if conditional != bool(args.conditional):
        raise ValueError(
            f"--resume {args.resume} is "
            f"{'' if conditional else 'not '}class-conditional, so "
            f"--conditional must {'' if conditional else 'not '}be given."
        )


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


# Test images the --quality-every figures compare samples with.
QUALITY_REFERENCE_IMAGES = 2000


def _quality_callback(args, splits):
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
        log_dir=os.path.join(args.log_dir, "tensorboard"),
        num_samples=args.quality_samples,
        every=args.quality_every,
    )


def _check_flags(args):
    """Raises ValueError for flags that do not go together."""
    if args.unroll and args.model not in ("row_lstm", "diagonal_bilstm"):
        raise ValueError(
            "--unroll applies to the recurrent models only, so --model must "
            "be 'row_lstm' or 'diagonal_bilstm' with it. Received: "
            f"--model={args.model!r}"
        )
    restart = getattr(args, "restart_learning_rate", None)
    if restart is not None and not args.resume:
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
    _check_lr_patience(args, getattr(args, "schedule", None))
    if args.multiscale is not None:
        check_multiscale_args(args)


def _load_splits(args):
    """The data set the flags name, split, batched, described."""
    image_size = None
    if args.image_size:
        image_size = (args.image_size, args.image_size)
    splits = data.get_datasets(
        args.dataset,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        validation_size=args.validation_size,
        image_size=image_size,
        binarization=args.binarization,
        seed=args.seed,
        max_train=args.max_train,
        max_test=args.max_test,
        with_labels=args.conditional,
        first_pass=epochs_trained_before(args),
    )
    print(
        f"Data: {args.dataset} {splits.image_shape}, levels={splits.levels}, "
        f"train={splits.num_train}, validation={splits.num_validation}, "
        f"test={splits.num_test}"
    )
    return splits


def _resumed_model(args, splits):
    """The `--resume` model, checked against the data and flags."""
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
        _compile(model, args)
    if getattr(args, "restart_learning_rate", None) is not None:
        model.optimizer.learning_rate = args.restart_learning_rate
    return model


def _new_model(args, splits):
    """The model the flags describe, compiled."""
    model = models.build_model(
        args.model,
        splits.image_shape,
        levels=splits.levels,
        num_layers=args.num_layers,
        width=args.width,
        dropout=args.dropout,
        num_classes=splits.num_classes if args.conditional else None,
        **({"unroll": True} if args.unroll else {}),
        **_likelihood_arguments(args),
    )
    _compile(model, args)
    return model


def _likelihood_arguments(args):
    """The builder's `output` and `num_mixtures` from the flags."""
    output = getattr(args, "output", "categorical")
    mixtures = getattr(args, "num_mixtures", None)
    if args.model == "pixelcnn_pp":  # always a mixture
        return {} if mixtures is None else {"num_mixtures": mixtures}
    if output == "categorical" and mixtures is None:
        return {}
    return {"output": output, "num_mixtures": mixtures}


def _score(model, splits, args, log_dir, strategy, train_seconds):
    """Scores the trained model, prints and stores the results."""
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


def _stage_model(args, splits, stage, small_shape):
    """The model of one Multi-Scale stage, compiled."""
    if _likelihood_arguments(args) or args.model == "pixelcnn_pp":
        raise ValueError(
            "--multiscale trains two categorical models: it takes neither "
            "--output logistic_mixture, --num-mixtures nor --model "
            f"pixelcnn_pp. Received: --model {args.model} --output "
            f"{args.output}"
        )
    large = stage == "large"
    shape = tuple(splits.image_shape)
    classes = splits.num_classes if args.conditional else None
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
    _compile(
        model, args, **(multiscale.conditional_loss(model) if large else {})
    )
    return model


def _multiscale_results(args, splits, pair, scores, seconds):
    """The Multi-Scale run's results: printed, stored, returned."""
    shape = tuple(splits.image_shape)
    _, num_test, split_name = scored_split(splits)
    size = args.multiscale
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


def _compile(model, args, **loss):
    """`compile_model` with the flags' optimizer settings."""
    compile_model(
        model,
        args.learning_rate,
        args.clipnorm or None,
        args.weight_decay,
        ema_momentum=args.ema,
        **loss,
    )
