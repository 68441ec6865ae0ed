"""Presets: the shipped trained models, their cards, and their recipes."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from datafiles import write_mnist

from benchmarks import preset_table as presets_page
from pixel_models import models, presets, training
from pixel_models.presets import recipes
from pixel_models.runs import RunFolder

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import evaluate  # noqa: E402
import sample  # noqa: E402

# Read before any test unsets it: the real data, where CI has it.
REAL_DATA = os.environ.get("PIXEL_MODELS_DATA_DIR")
SHIPPED = presets.list_presets()
ISSUE_PRESETS = [
    "pixelcnn_binarized_mnist",
    "row_lstm_binarized_mnist",
    "diagonal_bilstm_binarized_mnist",
    "gated_pixelcnn_binarized_mnist",
    "gated_pixelcnn_binarized_mnist_conditional",
]

# Loads a preset in a fresh process, scores the first 500 test images the
# way its card says they were scored, and draws two images from it if it
# is one of SAMPLED (sampling is tested on every family elsewhere; here a
# colour preset and a class-conditional one are sampled as shipped).
CHECK_PRESET = """
import json, sys
import numpy as np
from pixel_models import data, presets
from pixel_models.sampling import num_classes, sample
from pixel_models.training import evaluate_nll

sampled = sys.argv[1].split(",")
for name in sys.argv[2:]:
  card = presets.preset_card(name)
  model = presets.load_preset(name)
  conditional = card["builder_arguments"]["num_classes"] is not None
  splits = data.get_datasets(
      card["data"]["name"],
      batch_size=64,
      validation_size=card["data"]["validation_images"],
      binarization=card["data"].get("binarization") or "stochastic",
      seed=card["data"]["seed"],
      with_labels=conditional,
      max_test=500,
  )
  scored = evaluate_nll(
      model, splits.test, splits.image_shape, splits.num_test, verbose=0
  )
  result = {"name": name, "nats": scored["nats_per_image"],
      "num": splits.num_test}
  if name in sampled:
    labels = np.arange(2) if num_classes(model) else None
    images = sample(model, 2, labels=labels, seed=0, progress=False)
    result.update(shape=list(images.shape), dtype=str(images.dtype),
        max=int(images.max()), min=int(images.min()))
  print(json.dumps(result))
"""
SAMPLED = ["pixelcnn_cifar10", "gated_pixelcnn_binarized_mnist_conditional"]


def test_the_issue_presets_and_a_cifar_one_ship():
    assert set(ISSUE_PRESETS) <= set(SHIPPED) and set(SAMPLED) <= set(SHIPPED)
    assert any("cifar10" in name for name in SHIPPED)
    package = os.path.dirname(presets.__file__)
    total = sum(
        os.path.getsize(os.path.join(package, name, "model.keras"))
        for name in SHIPPED
    )
    assert total <= 30 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_card_describes_its_preset(name):
    card = presets.preset_card(name)
    flags = " ".join(recipes.recipe_flags(name))
    assert card["name"] == name and card["family"] in models.MODEL_FAMILIES
    assert f"--model {card['family']}" in flags
    assert (card["builder_arguments"]["num_classes"] is not None) == (
        "--conditional" in flags
    )
    path = os.path.join(os.path.dirname(presets.__file__), name, "model.keras")
    assert presets.sha256(path) == card["sha256"]
    for key in ("images_seen", "epochs", "wall_clock_hours", "batch_size"):
        assert card["training"][key] > 0
    test = card["results"]["test"]
    assert test["first_images"] == card["data"]["test_images"]
    assert 0 < test["bits_per_dim"] < 8


@pytest.fixture(scope="session")
def fresh_process_results(claim_for_this_worker):
    """Every shipped preset loaded, scored and sampled in one fresh
    process (one start of TensorFlow, not one per preset; kept for the
    session, as the tests that use it may come between others)."""
    claim_for_this_worker("fresh_presets")
    out = subprocess.run(
        [sys.executable, "-c", CHECK_PRESET, ",".join(SAMPLED), *SHIPPED],
        capture_output=True,
        text=True,
        env=dict(os.environ, PIXEL_MODELS_DATA_DIR=REAL_DATA),
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [
        json.loads(line) for line in out.stdout.splitlines() if line[:1] == "{"
    ]
    return {result["name"]: result for result in lines}


@pytest.mark.skipif(not REAL_DATA, reason="needs PIXEL_MODELS_DATA_DIR")
@pytest.mark.xdist_group("fresh_presets")  # one worker: one fresh process
@pytest.mark.parametrize("name", SHIPPED)
def test_preset_scores_its_card_figure_in_a_fresh_process(
    name, fresh_process_results
):
    result = fresh_process_results[name]
    card = presets.preset_card(name)["results"]["test_first_500"]
    assert result["num"] == card["first_images"] == 500
    assert abs(result["nats"] - card["nats_per_image"]) <= 1e-3
    if name not in SAMPLED:
        return
    shape = presets.preset_card(name)["builder_arguments"]["input_shape"]
    levels = presets.preset_card(name)["builder_arguments"]["levels"]
    assert result["shape"] == [2, *shape] and result["dtype"] == "uint8"
    assert 0 <= result["min"] < result["max"] < levels


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    """A preset folder of one tiny model, in place of the package's."""
    model = models.build_pixelcnn((8, 8, 1), levels=2, num_layers=1, filters=4)
    folder = tmp_path / "tiny"
    folder.mkdir()
    model.save(folder / "model.keras")
    card = {
        "name": "tiny",
        "family": "pixelcnn",
        "sha256": presets.sha256(folder / "model.keras"),
    }
    (folder / "card.json").write_text(json.dumps(card))
    monkeypatch.setattr(presets, "PRESETS_DIR", str(tmp_path))
    return model, folder


def test_load_preset_gives_the_saved_model_compiled(tiny_preset):
    model, _ = tiny_preset
    assert presets.list_presets() == ["tiny"]
    loaded = presets.load_preset("tiny")
    x = np.random.default_rng(0).integers(0, 2, (3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert loaded.optimizer is not None and loaded.loss is not None
    uncompiled = presets.load_preset("tiny", compile=False)
    assert getattr(uncompiled, "optimizer", None) is None


def test_unknown_preset_names_the_known_ones(tiny_preset):
    with pytest.raises(ValueError, match=r"\['tiny'\].*name='nope'"):
        presets.load_preset("nope")
    with pytest.raises(ValueError, match="name='nope'"):
        presets.preset_card("nope")


def test_corrupted_preset_file_is_refused(tiny_preset):
    _, folder = tiny_preset
    with open(folder / "model.keras", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="corrupted.*sha256"):
        presets.load_preset("tiny")


def test_missing_preset_files_are_named(tiny_preset):
    _, folder = tiny_preset
    (folder / "model.keras").unlink()
    with pytest.raises(FileNotFoundError, match="no model file"):
        presets.load_preset("tiny")
    # A recipe whose preset this installation lacks.
    with pytest.raises(FileNotFoundError, match="has no card"):
        presets.load_preset("pixelcnn_binarized_mnist")


def test_sample_and_evaluate_clis_take_a_preset(tiny_preset, tmp_path):
    images = sample.main(
        ["--preset", "tiny", "--num", "2", "--out", str(tmp_path / "g.png")]
    )
    assert images.shape == (2, 8, 8, 1) and (tmp_path / "g.png").exists()
    with pytest.raises(SystemExit):
        sample.main(["model.keras", "--preset", "tiny"])
    with pytest.raises(SystemExit):
        sample.main(["--preset", "nope"])
    with pytest.raises(SystemExit):  # no data set: the card names none
        evaluate.main(["--preset", "tiny", "--data-dir", str(tmp_path)])


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_parses_to_its_family(name):
    args = recipes.parse_recipe(name)
    assert args.model in models.MODEL_FAMILIES
    assert args.model.replace("_", "") in name.replace("_", "")
    assert args.conditional == name.endswith("_conditional")


def test_a_recipe_run_resumes_and_exports_a_preset(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    write_mnist(data_dir / "mnist.npz", num_train=48, num_test=12)
    log_dir = str(tmp_path / "run")
    small = [
        "--num-layers", "1", "--width", "4", "--batch-size", "8",
        "--epochs", "1", "--steps-per-epoch", "2", "--validation-size",
        "16", "--sample-every", "0",
    ]  # fmt: skip
    name = "pixelcnn_binarized_mnist"
    recipes.train(name, log_dir, str(data_dir), extra=small)
    first = keras.models.load_model(os.path.join(log_dir, "model.keras"))
    assert int(first.optimizer.iterations) == 2
    # The same command again trains the saved model on, optimizer and
    # all; here restarted at a new learning rate, on training images
    # binarized afresh each pass.
    restart = ["--restart-learning-rate", "5e-4", "--binarization", "dynamic"]
    recipes.train(name, log_dir, str(data_dir), extra=[*small, *restart])
    second = keras.models.load_model(os.path.join(log_dir, "model.keras"))
    # Flags that are refused leave no record for the card.
    refused = ["--schedule", "cosine", "--lr-patience", "3"]
    with pytest.raises(ValueError, match="--lr-patience"):
        recipes.train(name, log_dir, str(data_dir), extra=[*small, *refused])
    assert [r["flags"] for r in RunFolder(log_dir).added_flags()] == [
        " ".join(small),
        " ".join([*small, *restart]),
    ]
    assert int(second.optimizer.iterations) == 4
    assert float(second.optimizer.learning_rate) == pytest.approx(5e-4)
    history = RunFolder(log_dir).history()
    assert [row["epoch"] for row in history] == [0, 1]
    assert [row["images_seen"] for row in history] == [16, 32]
    assert 0 < history[0]["train_hours"] < history[1]["train_hours"]

    out = tmp_path / "presets"
    # A run still training may write a better checkpoint while export
    # scores this one: the preset holds the weights the card scored.
    best_path = os.path.join(log_dir, "checkpoints", "best.keras")
    scored = keras.models.load_model(best_path).get_weights()
    newer = keras.models.load_model(best_path)
    newer.set_weights([w + 1 for w in scored])
    evaluate_nll = training.evaluate_nll

    def evaluate_while_training(*args, **kwargs):
        newer.save(best_path)
        return evaluate_nll(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate_nll", evaluate_while_training)
    card = recipes.export(name, log_dir, str(out), str(data_dir))
    monkeypatch.setattr(training, "evaluate_nll", evaluate_nll)
    preset = keras.models.load_model(out / name / "model.keras")
    for a, b in zip(preset.get_weights(), scored, strict=True):
        np.testing.assert_array_equal(a, b)
    best = min(history, key=lambda row: row["val_loss"])
    assert card["training"]["images_seen"] == best["images_seen"]
    # Both sessions of the run trained here (the refused one did not).
    sessions = RunFolder(log_dir).sessions()
    assert [s["from_epoch"] for s in sessions] == [0, 1]
    assert card["training"]["machine"] == training.machine()
    assert card["training"]["images_seen_in_run"] == 32
    assert card["builder_arguments"]["num_layers"] == 1
    assert card["builder_arguments"]["width"] == 4
    # The card says which flags each session added, from which epoch.
    assert (
        "from epoch 1 (16 images) trained with"
        in (card["training"]["schedule"])
    )
    assert (
        "--restart-learning-rate 5e-4 --binarization dynamic added"
        in card["training"]["schedule"]
    )
    assert card["data"]["test_images"] == 12
    # Dynamic binarization scores on the fixed draw (as evaluate does
    # below), and the card says how the training images were drawn.
    assert card["data"]["binarization"] == "stochastic"
    assert "drawn afresh in every pass" in card["data"]["notes"]
    assert card["sha256"] == presets.sha256(out / name / "model.keras")
    monkeypatch.setattr(presets, "PRESETS_DIR", str(out))
    assert presets.list_presets() == [name]
    results = evaluate.main(["--preset", name, "--data-dir", str(data_dir)])
    assert results["nats_per_image"] == pytest.approx(
        card["results"]["test"]["nats_per_image"], abs=1e-3
    )

    # The presets page, from the cards alone.
    page = tmp_path / "docs" / "presets.md"
    readme = tmp_path / "README.md"
    start, end = "<!-- presets table: start -->", "<!-- presets table: end -->"
    readme.write_text(f"a\n{start}\nold\n{end}\nb\n")
    presets_page.main(["--out", str(page), "--readme", str(readme)])
    assert readme.read_text().startswith(f"a\n{start}\n| preset")
    assert f"{end}\nb\n" in readme.read_text()
    assert "old" not in readme.read_text()
    text = page.read_text()
    test_nats = card["results"]["test"]["nats_per_image"]
    assert (
        f"| `{name}` | PixelCNN, 1 x h=4 | 714 | **{test_nats:.2f} nats**"
        in text
    )
    assert f"| `{name}` | 83.3 |" in text
    for picture in ("nll_vs_images.png", f"samples_{name}.png"):
        assert (page.parent / "presets" / picture).stat().st_size > 1000
        assert f"(presets/{picture})" in text
    export_while_an_epoch_ends(monkeypatch, name, log_dir, out, data_dir)


def export_while_an_epoch_ends(monkeypatch, name, log_dir, out, data_dir):
    """Exports while the run ends an epoch: it writes a better
    checkpoint and, a moment later, the epoch's history row. The card
    gives the figures of the weights it holds, not the epoch before."""
    best_path = os.path.join(log_dir, "checkpoints", "best.keras")
    newer = keras.models.load_model(best_path)
    newer.set_weights([w + 0.5 for w in newer.get_weights()])
    history_path = os.path.join(log_dir, "history.csv")
    rows = list(csv.DictReader(open(history_path)))
    row = dict(rows[-1], epoch="2", images_seen="48", train_hours="1.0")
    row["val_loss"] = str(min(float(r["val_loss"]) for r in rows) - 0.01)
    load_checkpoint = training.load_checkpoint
    calls = []

    def load_as_the_epoch_ends(path):
        calls.append(path)
        if len(calls) == 1:
            newer.save(best_path)
        model = load_checkpoint(path)
        if len(calls) == 1:
            with open(history_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=list(row)).writerow(row)
        return model

    monkeypatch.setattr(training, "load_checkpoint", load_as_the_epoch_ends)
    card = recipes.export(name, log_dir, str(out), str(data_dir))
    assert card["training"]["images_seen"] == 48
    assert card["training"]["wall_clock_hours"] == 1.0
    assert len(calls) == 2  # the load was tried again
    preset = keras.models.load_model(out / name / "model.keras")
    for a, b in zip(preset.get_weights(), newer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def tiny_run_arguments(tmp_path):
    """A function of extra flags that parses a tiny MNIST run's flags."""
    from pixel_models.cli.arguments import parse_args

    write_mnist(tmp_path / "data" / "mnist.npz", num_train=48, num_test=12)

    def args(*flags):
        return parse_args(
            "test",
            [
                "--data-dir",
                str(tmp_path / "data"),
                "--epochs",
                "1",
                "--num-layers",
                "1",
                "--width",
                "4",
                "--batch-size",
                "16",
                "--validation-size",
                "16",
                "--sample-every",
                "0",
                "--log-dir",
                str(tmp_path / "run"),
                *flags,
            ],  # fmt: skip
            datasets=["binarized_mnist", "mnist"],
            default_dataset="binarized_mnist",
            sizes={"num_layers": 1, "width": 4, "batch_size": 16, "epochs": 1},
        )

    return args


def test_resume_refuses_a_model_of_other_data(tmp_path):
    from pixel_models.trainer import run_training

    args = tiny_run_arguments(tmp_path)
    run_training(args())
    saved = str(tmp_path / "run" / "model.keras")
    with pytest.raises(ValueError, match="--resume .* predicts 2 levels"):
        run_training(args("--dataset", "mnist", "--resume", saved))
    with pytest.raises(ValueError, match="--conditional must not be given"):
        run_training(args("--conditional", "--resume", saved))
    with pytest.raises(ValueError, match="--ema cannot be given"):
        run_training(args("--ema", "0.9", "--resume", saved))
    with pytest.raises(ValueError, match="--resume must be given"):
        run_training(args("--restart-learning-rate", "1e-3"))


def test_a_killed_run_goes_on_to_its_own_last_epoch(tmp_path, monkeypatch):
    """A run trained on with `--resume` and killed part-way resumes to the
    epoch that invocation planned (its `--epochs` counted from where it
    went on), keeping the first run_args.json; a backup with no plan at or
    past `--epochs` would train nothing and save itself as the finished
    model: refused, with what to give, before anything is written."""
    from pixel_models import trainer as train

    args = tiny_run_arguments(tmp_path)
    run = tmp_path / "run"
    train.run_training(args())
    first_args = (run / "run_args.json").read_text()

    class Killed(Exception):
        pass

    class KillAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:  # after the backup of epoch 3 of 4
                raise Killed

    make_callbacks = train.make_callbacks
    monkeypatch.setattr(
        train,
        "make_callbacks",
        lambda *a, **k: [*make_callbacks(*a, **k), KillAfter()],
    )
    saved = str(run / "model.keras")
    with pytest.raises(Killed):
        train.run_training(args("--resume", saved, "--epochs", "3"))
    monkeypatch.setattr(train, "make_callbacks", make_callbacks)
    # Rerun as a killed run is, without --resume: on to epoch 4, not 1.
    train.run_training(args("--epochs", "2"))
    epochs = [int(row["epoch"]) for row in RunFolder(run).history()]
    assert epochs == [0, 1, 2, 3]
    assert not (run / "backup").exists()
    assert (run / "run_args.json").read_text() == first_args

    other = tmp_path / "other"
    (other / "backup").mkdir(parents=True)
    (other / "backup" / "training_metadata.json").write_text(
        json.dumps({"epoch": 3, "batch": 0})
    )
    with pytest.raises(ValueError, match="killed after 3 epochs.*more than 3"):
        train.run_training(args("--epochs", "3", "--log-dir", str(other)))
    assert sorted(p.name for p in other.iterdir()) == ["backup"]


def test_a_cosine_schedule_is_planned_once_and_kept_by_a_killed_run(
    tmp_path, monkeypatch
):
    """`--schedule cosine` sets each epoch's rate along half a cosine from
    the starting rate over `--epochs`. A run killed part-way resumes on
    that plan (its first epoch and peak, not the rerun's), and a rerun
    naming another schedule (or the plateau schedule's --lr-patience) is
    refused before anything is written; a run that ended early and is
    trained on goes on along it to its end."""
    from pixel_models import trainer as train
    from pixel_models.training import cosine_schedule

    args = tiny_run_arguments(tmp_path)
    run = tmp_path / "run"

    class Killed(Exception):
        pass

    class KillAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Killed
            if epoch == 3:  # as a spent time budget ends a run
                self.model.stop_training = True

    make_callbacks = train.make_callbacks
    monkeypatch.setattr(
        train,
        "make_callbacks",
        lambda *a, **k: [*make_callbacks(*a, **k), KillAfter()],
    )
    cosine = ("--schedule", "cosine", "--learning-rate", "0.01")
    with pytest.raises(Killed):
        train.run_training(args(*cosine, "--epochs", "6", "--patience", "9"))
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="--schedule cosine, so it resumes"):
        train.run_training(args("--schedule", "plateau", "--epochs", "6"))
    # The plateau schedule's patience: refused on a cosine, whether the
    # flags name it or the killed run was planned on it.
    for flags in [cosine, ()]:
        with pytest.raises(ValueError, match="leave --lr-patience out"):
            train.run_training(args(*flags, "--lr-patience", "3"))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files
    # Resumed without the flags, at another starting rate: same plan.
    train.run_training(args("--epochs", "6", "--learning-rate", "0.5"))
    monkeypatch.setattr(train, "make_callbacks", make_callbacks)
    saved = str(run / "model.keras")
    train.run_training(args("--resume", saved, *cosine, "--epochs", "9"))
    rates = [row["learning_rate"] for row in RunFolder(run).history()]
    planned = cosine_schedule(0.01, 0, 6)
    assert rates == pytest.approx([planned(epoch) for epoch in range(6)])
    assert rates[0] == pytest.approx(0.01)
    assert rates[3] == pytest.approx(0.005)
    assert rates == sorted(rates, reverse=True)
    # A warm restart of the ended run begins a new plan from its rate.
    restart = args(
        "--resume",
        saved,
        *cosine,
        "--epochs",
        "4",
        "--restart-learning-rate",
        "1",
    )
    session = RunFolder(run).session(restart)
    assert (session.initial_epoch, session.final_epoch) == (6, 10)
    new_plan = train._schedule(session.plan(0.003))
    assert [new_plan(6), new_plan(8)] == pytest.approx([0.003, 0.0015])
    with pytest.raises(ValueError, match="final_epoch must be after"):
        cosine_schedule(0.01, 4, 4)
    with pytest.raises(ValueError, match="peak must be > 0"):
        cosine_schedule(0.0, 0, 4)


def test_a_warm_restart_sets_the_rate_and_keeps_the_best_checkpoint(
    tmp_path,
):
    """`--restart-learning-rate` sets a resumed run's rate, and a resumed
    run's worse epochs do not replace the best checkpoint of its earlier
    ones."""
    import csv

    from pixel_models.trainer import run_training

    args = tiny_run_arguments(tmp_path)
    run_training(args())
    history = tmp_path / "run" / "history.csv"
    best = tmp_path / "run" / "checkpoints" / "best.keras"
    # As if an earlier epoch had scored better than any epoch will now.
    rows = list(csv.DictReader(history.open()))
    rows[0]["val_loss"] = "1e-9"
    with history.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = best.read_bytes()
    saved = str(tmp_path / "run" / "model.keras")
    resumed = args("--resume", saved, "--restart-learning-rate", "0.0123")
    run_training(resumed)
    rows = list(csv.DictReader(history.open()))
    assert len(rows) == 2
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.0123)
    assert best.read_bytes() == before


def test_recipe_training_flags_go_to_train_only(tmp_path, capsys):
    name = "gated_pixelcnn_binarized_mnist"
    with pytest.raises(SystemExit):
        recipes.main(["export", name, "--lr-patience", "3"])
    assert "go with 'train' only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="holds no finished run"):
        recipes.train(
            name, str(tmp_path), extra=["--restart-learning-rate", "1e-4"]
        )


def test_a_mixture_model_resumes_on_its_levels_not_its_outputs():
    """A PixelCNN++ file predicts mixture parameters (not one logit per
    level): resuming it checks the levels it models."""
    import argparse

    from pixel_models.trainer import check_resumed_model

    model = models.build_model(
        "pixelcnn_pp", (8, 8, 1), 256, num_layers=1, width=4, num_mixtures=2
    )
    assert model.outputs[0].shape[-1] != 256
    args = argparse.Namespace(
        resume="pp.keras", dataset="mnist", conditional=False
    )
    check_resumed_model(
        model, args, argparse.Namespace(image_shape=(8, 8, 1), levels=256)
    )
    with pytest.raises(ValueError, match="--resume pp.keras predicts 256"):
        check_resumed_model(
            model, args, argparse.Namespace(image_shape=(8, 8, 1), levels=2)
        )


def test_an_averaged_run_is_scored_and_exported_on_its_average(tmp_path):
    from pixel_models import data
    from pixel_models.training import load_checkpoint, use_averaged_weights

    data_dir = tmp_path / "data"
    write_mnist(data_dir / "mnist.npz", num_train=48, num_test=12)
    log_dir = str(tmp_path / "run")
    name = "pixelcnn_binarized_mnist"
    results = recipes.train(name, log_dir, str(data_dir), extra=[
        "--num-layers", "1", "--width", "4", "--batch-size", "8",
        "--epochs", "2", "--steps-per-epoch", "3", "--validation-size",
        "16", "--sample-every", "0", "--ema", "0.5",
    ])  # fmt: skip
    # The final model is the average (taking it out again changes
    # nothing), and the run's test figure is that model's.
    final = load_checkpoint(os.path.join(log_dir, "model.keras"))
    saved = final.get_weights()
    for a, b in zip(
        saved, use_averaged_weights(final).get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    best = os.path.join(log_dir, "checkpoints", "best.keras")
    raw = load_checkpoint(best)
    average = use_averaged_weights(load_checkpoint(best))
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(raw.get_weights(), average.get_weights(), strict=True)
    )
    # Validation scored the average: the best row's loss is the average's.
    history = RunFolder(log_dir).history()
    splits = data.get_datasets(
        "binarized_mnist", data_dir=str(data_dir), batch_size=8,
        validation_size=16,
    )  # fmt: skip
    final_test = final.evaluate(splits.test, verbose=0, return_dict=True)
    assert results["bits_per_dim"] == pytest.approx(
        final_test["bits_per_dim"], rel=1e-5
    )
    scored = average.evaluate(splits.validation, verbose=0, return_dict=True)
    assert scored["loss"] == pytest.approx(
        min(row["val_loss"] for row in history), rel=1e-5
    )
    card = recipes.export(name, log_dir, str(tmp_path / "out"), str(data_dir))
    preset = keras.models.load_model(tmp_path / "out" / name / "model.keras")
    for a, b in zip(preset.get_weights(), average.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "averaged" in card["training"]["optimizer"]
    with pytest.raises(ValueError, match="keeps no moving average"):
        use_averaged_weights(raw.__class__.from_config(raw.get_config()))
