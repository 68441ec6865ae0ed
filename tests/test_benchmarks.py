"""The comparison report's FLOP counts and its one-command run."""

import json
import math
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from datafiles import write_cifar, write_mnist

from benchmarks.flops import forward_flops, train_flops
from pixel_models.models import build_model

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def profiler_flops(model):
    """TensorFlow's own count of a model's float operations, per image."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((1, *model.input_shape[1:]))
    graph = convert_variables_to_constants_v2(
        tf.function(model).get_concrete_function(spec)
    ).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(
        graph=graph, options=options
    ).total_float_ops


@pytest.mark.parametrize("family", ["pixelcnn", "gated_pixelcnn"])
def test_convolutional_flops_match_tensorflows_count(family):
    # TensorFlow's profiler sees every op of a loop-free graph; it also
    # counts the element-wise work (masks, biases, activations) that the
    # kernel count leaves out, a few per cent here.
    model = build_model(family, (8, 8, 3), 4, num_layers=2, width=6)
    ours, theirs = forward_flops(model), profiler_flops(model)
    assert 0.9 * theirs < ours <= theirs
    assert train_flops(model) == 3 * ours


@pytest.mark.parametrize(
    "family, per_layer",
    [
        # input-to-state (1x3 conv, 2h -> 4h) and state-to-state (3 x h ->
        # 4h) at every pixel, then the 1x1 conv back to 2h.
        ("row_lstm", lambda h, H, W: 2 * H * W * (3 * 2 * h * 4 * h) * 1
         + 2 * H * W * 3 * h * 4 * h + 2 * H * W * h * 2 * h),
        # Both directions: 1x1 input-to-state at every pixel; 2 x h -> 4h
        # state-to-state at every cell of the skewed H x (H + W - 1) map.
        ("diagonal_bilstm", lambda h, H, W: 2 * (2 * H * W * 2 * h * 4 * h
         + 2 * H * (H + W - 1) * 2 * h * 4 * h) + 2 * H * W * h * 2 * h),
    ],
)  # fmt: skip
def test_recurrent_layer_flops_follow_the_scan(family, per_layer):
    # One more layer adds exactly one recurrent layer's work.
    height, width, h = 5, 7, 4
    one, two = (
        forward_flops(
            build_model(family, (height, width, 1), 2, num_layers=n, width=h)
        )
        for n in (1, 2)
    )
    assert two - one == per_layer(h, height, width)


def run_all_command(tmp_path):
    """A tiny run of every part of `run_all` on binarized MNIST: the
    command, the report, its pictures' folder and its figures' file.
    (CIFAR-10 runs through the same code with other data; its table is
    checked from these figures, `test_run_all_renders_a_cifar_table`.)"""
    data = tmp_path / "data"
    write_mnist(data / "mnist.npz", num_train=48, num_test=8)
    out = tmp_path / "BENCHMARKS.md"
    docs, results = tmp_path / "docs", tmp_path / "run_all.json"
    command = [
        sys.executable, "-m", "benchmarks.run_all",
        "--budget-minutes", "0.02", "--data-dir", str(data),
        "--datasets", "binarized_mnist",
        "--families", "pixelcnn", "--multiscale-families", "pixelcnn",
        "--mnist-size", "1x4", "--batch-size", "8",
        "--max-test", "8", "--max-validation", "8", "--num-samples", "2",
        "--naive-steps", "1", "--out", str(out), "--docs-dir", str(docs),
        "--results", str(results), "--work-dir", str(tmp_path / "work"),
    ]  # fmt: skip
    return command, out, docs, results


def check_multiscale_row(report, text):
    """The Multi-Scale row: about the single-scale parameters, two terms
    that add up, and the single-scale row beside it in the same table."""
    (single,) = report["results"]
    (pair,) = report["multiscale"]
    assert (pair["dataset"], pair["multiscale"]) == ("binarized_mnist", 14)
    stages = pair["stages"]
    assert pair["parameters"] == sum(s["parameters"] for s in stages.values())
    assert math.isclose(
        pair["test_nats_per_image"],
        stages["small"]["test_nats"] + stages["large"]["test_nats"],
        rel_tol=1e-9,
    )
    for stage in stages.values():
        assert stage["train_seconds"] >= 0.01 * 60
    assert pair["single_scale_parameters"] == single["parameters"]
    table = text.split("### Multi-Scale")[1]
    assert f"| {pair['parameters']:,} |" in table
    assert f"{pair['test_nats_per_image']:.2f}" in table
    assert f"| {single['parameters']:,} |" in table
    assert abs(pair["parameters"] - single["parameters"]) < (
        0.2 * single["parameters"]
    )


@pytest.fixture(scope="session")
def run_all_report(tmp_path_factory, claim_for_this_worker):
    """`run_all`'s tiny run: (command, report file, docs, figures)."""
    claim_for_this_worker("run_all")
    command, out, docs, results = run_all_command(
        tmp_path_factory.mktemp("run_all")
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    process = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Device: CPU" in process.stdout
    return command, out, docs, results


@pytest.mark.xdist_group("run_all")
def test_run_all_writes_the_report(run_all_report):
    command, out, docs, results = run_all_report
    report = json.loads(results.read_text())
    (r,) = report["results"]
    assert (r["dataset"], r["family"]) == ("binarized_mnist", "pixelcnn")
    roof = report["matmul"]["flops_per_s"]
    assert roof > 1e8
    text = out.read_text()
    assert 0 < r["test_bits_per_dim"] < 9
    assert r["fast_sample_s_per_image"] > 0
    assert r["naive_sample_s_per_image"] > 0
    assert r["curve"] and r["curve"][-1]["images"] == r["train_images"]
    # The budget was spent (one step may overshoot it).
    assert r["train_seconds"] == r["curve"][-1]["seconds"] >= 0.02 * 60
    assert f"| {r['train_images']:,} |" in text
    achieved = r["train_flops_per_image"] * r["train_images_per_s"]
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| PixelCNN") and f"{r['parameters']:,}" in line
    )
    assert f"**{r['test_nats_per_image']:.2f}**" in row
    assert f"{100 * achieved / roof:.1f}%" in row
    assert row.endswith("| 81.30 |")
    assert math.isclose(
        r["test_nats_per_image"],
        r["test_bits_per_dim"] * 28 * 28 * math.log(2),
        rel_tol=1e-6,
    )
    check_multiscale_row(report, text)
    # The report can be re-rendered from its figures alone, unchanged.
    out.unlink()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    process = subprocess.run(
        command + ["--render-only"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert out.read_text() == text
    for name in (
        "nll_vs_time_binarized_mnist.png",
        "samples_binarized_mnist.png",
        "samples_multiscale_binarized_mnist.png",
        "receptive_fields.png",
    ):
        assert (docs / name).stat().st_size > 1000
        assert re.search(rf"\]\(docs/{re.escape(name)}\)", text)


@pytest.mark.xdist_group("run_all")
def test_run_all_renders_a_cifar_table(run_all_report, tmp_path):
    # The run's row, as a CIFAR-10 Gated PixelCNN: bits/dim with three
    # decimals, the paper's figure, CIFAR-10's own paragraph.
    from benchmarks import run_all

    _, _, _, results = run_all_report
    report = json.loads(results.read_text())
    row = dict(report["results"][0], dataset="cifar10")
    row.update(family="gated_pixelcnn", test_bits_per_dim=4.56789)
    report.update(results=[report["results"][0], row], multiscale=[])
    report["datasets"] = ["binarized_mnist", "cifar10"]
    text = run_all.markdown(report, str(tmp_path), str(tmp_path))
    cifar = text.split("## cifar10")[1].split("## ")[0]
    assert "CIFAR-10" in cifar and "bits/dim" in cifar
    (line,) = [x for x in cifar.splitlines() if x.startswith("| Gated")]
    assert "**4.568**" in line and line.endswith("| 3.03 |")
    assert "nll_vs_time_cifar10.png" in cifar


def test_backends_benchmark_writes_its_figures_and_the_readme_table(tmp_path):
    from benchmarks import backends

    readme = tmp_path / "README.md"
    readme.write_text(
        "before\n<!-- backends table: start -->\nold\n"
        "<!-- backends table: end -->\nafter\n"
    )
    out = tmp_path / "backends.json"
    report = backends.main(
        ["--backends", "tensorflow", "--families", "pixelcnn", "row_lstm"]
        + ["--num-layers", "1", "--width", "4", "--batch-size", "4"]
        + ["--num-samples", "2", "--steps", "1", "--out", str(out)]
        + ["--readme", str(readme)]
    )
    with open(out) as f:
        assert json.load(f) == json.loads(json.dumps(report))
    rows = report["results"]
    assert [r["family"] for r in rows] == ["pixelcnn", "row_lstm"]
    for r in rows:
        assert r["train_images_per_s"] == pytest.approx(4 / r["median_step_s"])
        assert r["fast_images_per_s"] == pytest.approx(2 / r["fast_s"])
        assert r["naive_images_per_s"] < r["fast_images_per_s"]
    assert report["matmul_flops"]["tensorflow"] > 1e8
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n")
    assert "old" not in text
    assert re.search(r"\| Row LSTM \| \d+ \(1\.00x\), \d+ s \|", text)
    assert "GFLOP/s" in text


def card_with_curve(images, nats, hours):
    """A card holding a binarized MNIST validation curve (nats/image)."""
    dims = 28 * 28 * math.log(2)
    return {
        "builder_arguments": {"input_shape": [28, 28, 1]},
        "training": {
            "validation_curve": [
                [n, v / dims, h]
                for n, v, h in zip(images, nats, hours, strict=True)
            ]
        },
    }


def test_projection_follows_a_log_linear_curve():
    from benchmarks.preset_table import projection

    # 2 nats per doubling, 100,000 images an hour: 4 nats to go is two
    # more doublings, 1.6 M images, 12 more hours.
    images = [50_000, 100_000, 200_000, 400_000]
    nats = [96.0, 94.0, 92.0, 90.0]
    hours = [n / 100_000 for n in images]
    p = projection(card_with_curve(images, nats, hours), target=86.0)
    assert math.isclose(p["per_doubling"], 2.0, rel_tol=1e-6)
    assert math.isclose(p["images_needed"], 1_600_000, rel_tol=1e-6)
    assert math.isclose(p["hours_more"], 12.0, rel_tol=1e-6)
    # Only the last doubling (at least three epochs) counts, and a worse
    # last epoch is no loss: the fit is of the best NLL so far.
    noisy = projection(
        card_with_curve(
            [10_000, *images], [150.0, *nats[:3], 93.0], [0.1, *hours]
        ),
        target=86.0,
    )
    assert noisy["best"] == 92.0
    # Best so far 94, 92, 92 at 100k, 200k, 400k: a slope of 1 a doubling.
    assert math.isclose(noisy["per_doubling"], 1.0, rel_tol=1e-6)


def test_projection_of_a_reached_or_flat_curve():
    from benchmarks.preset_table import projection

    images, hours = [100_000, 200_000], [1.0, 2.0]
    reached = projection(card_with_curve(images, [85.0, 84.0], hours), 84.5)
    assert reached["hours_more"] == 0
    flat = projection(card_with_curve(images, [85.0, 85.5], hours), 84.5)
    assert flat["per_doubling"] == 0 and flat["hours_more"] is None


def test_heading_measures_a_target_met_on_the_test_set():
    """The targets are test NLLs: one met there shows the kept
    checkpoint's hours, whatever the validation curve projects."""
    from benchmarks.preset_table import heading

    name = "row_lstm_binarized_mnist"  # target 82.5
    images, hours = [100_000, 200_000], [1.0, 2.0]
    card = card_with_curve(images, [84.0, 83.0], hours)
    card["training"]["wall_clock_hours"] = 1.75
    card["results"] = {"test": {"nats_per_image": 82.4}}
    assert heading(name, card).endswith(
        "| - | reached on the test set, in 1.75 h |"
    )
    card["results"]["test"]["nats_per_image"] = 82.6
    row = heading(name, card)
    assert "| 82.60 | 83.00 |" in row and "reached" not in row


def test_time_to_nll_runs_a_budget_and_scores_both_weights(tmp_path):
    from benchmarks import time_to_nll

    data = tmp_path / "data"
    write_mnist(data / "mnist.npz", num_train=64, num_test=8)
    out, picture = tmp_path / "results" / "run.json", tmp_path / "plot.png"
    time_to_nll.main([
        "--family", "pixelcnn", "--num-layers", "1", "--width", "4",
        "--minutes", "0.1", "--batch-size", "8", "--eval-every", "160",
        "--validation-size", "16", "--validation-images", "16",
        "--data-dir", str(data), "--schedule", "cosine", "--ema", "0.999",
        "--name", "tiny", "--out", str(out), "--plot", str(picture),
        "--test-images", "8",
    ])  # fmt: skip
    result = json.loads(out.read_text())
    points = result["points"]
    assert result["validation_images"] == 16
    assert result["matmul_roof_flops_per_s"] > 1e8
    hours = [p["hours"] for p in points]
    assert hours == sorted(hours) and len(points) >= 2
    # The budget stops the run: the last point is past it, the one
    # before was not.
    assert hours[-1] >= 0.1 / 60 > hours[-2]
    assert [p["images_seen"] for p in points] == [
        160 * (i + 1) for i in range(len(points))
    ]
    # The averaged weights are scored apart from the raw ones, and the
    # raw ones are put back (training goes on from them).
    assert any(p["ema_nats"] != p["nats"] for p in points)
    assert points[-1]["nats"] < points[0]["nats"]
    assert result["best_raw_nats"] == min(p["nats"] for p in points)
    assert result["best_ema_nats"] == min(p["ema_nats"] for p in points)
    assert result["best_nats"] == min(
        result["best_raw_nats"], result["best_ema_nats"]
    )
    # The test set too, with each: `fit` leaves the average in the
    # model, and the raw weights' score must not be the average's again.
    # (A slow average, 0.999: this tiny model reaches its optimum within
    # the budget on a fast machine, and a fast average, 0.5, then caught
    # up with it to the last float32 bit.)
    assert result["test_images"] == 8
    assert result["test_ema_bits_per_dim"] != result["test_bits_per_dim"]
    # The cosine schedule has decayed by the end.
    assert points[-1]["learning_rate"] < 0.5e-3
    assert picture.stat().st_size > 1000


def test_time_to_nll_trains_pixelcnn_pp_on_cifar_and_scores_the_test_set(
    tmp_path,
):
    from benchmarks import time_to_nll

    data = tmp_path / "data"
    write_cifar(data / "cifar-10-batches-py", per_batch=4)
    out = tmp_path / "cifar" / "pp.json"
    picture = tmp_path / "cifar.png"
    time_to_nll.main([
        "--dataset", "cifar10", "--family", "pixelcnn_pp",
        "--num-layers", "1", "--width", "4", "--num-mixtures", "2",
        "--minutes", "0.05", "--batch-size", "4", "--eval-every", "8",
        "--validation-size", "4", "--validation-images", "4",
        "--test-images", "3", "--data-dir", str(data), "--ema", "0.5",
        "--out", str(out), "--plot", str(picture),
    ])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["recipe"]["num_mixtures"] == 2
    assert result["dimensions"] == 32 * 32 * 3 and result["test_images"] == 3
    # The test set is scored with both weights (a step or two here: the
    # averaged weights are the raw ones' neighbours).
    bits = result["test_bits_per_dim"]
    assert 0 < bits < 12
    assert result["test_ema_bits_per_dim"] == pytest.approx(bits, abs=0.5)
    assert result["test_nats"] == pytest.approx(bits * 3072 * math.log(2))
    assert result["name"].startswith("cifar10_pixelcnn_pp_1x4")
    assert picture.stat().st_size > 1000


def test_time_to_nll_schedule_warms_up_then_decays():
    import argparse

    from benchmarks import time_to_nll

    args = argparse.Namespace(
        learning_rate=1e-3, schedule="cosine", warmup=0.1, final_fraction=0.02
    )
    rate = time_to_nll.learning_rate_at
    assert rate(0.05, args) == pytest.approx(0.5e-3)
    assert rate(0.1, args) == pytest.approx(1e-3)
    assert rate(0.55, args) == pytest.approx(0.51e-3)
    assert rate(1.0, args) == pytest.approx(0.02e-3)
    assert rate(2.0, args) == pytest.approx(0.02e-3)
    args.schedule = "plateau"
    assert rate(0.5, args) == 1e-3


def test_time_to_nll_plateau_halves_the_rate_on_a_flat_curve():
    import keras

    from benchmarks import time_to_nll

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    callback = time_to_nll.plateau_callback()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, nats in enumerate([90.0, 89.0, 89.5, 89.2, 89.1]):
        callback.on_epoch_end(epoch, {"val_nats": nats})
    # Two points without a better NLL after 89.0: halved once.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5e-3)


def test_time_to_nll_plots_each_result_folder_to_its_own_picture():
    from benchmarks import time_to_nll

    assert time_to_nll.default_plot(time_to_nll.RESULTS) == time_to_nll.PLOT
    other = os.path.join(time_to_nll.ROOT, "results", "time_to_nll_cifar10")
    assert time_to_nll.default_plot(other + os.sep) == os.path.join(
        time_to_nll.ROOT, "docs", "time_to_nll_cifar10.png"
    )


def test_dropout_speed_times_the_stock_call_against_the_fast_one(
    tmp_path, monkeypatch
):
    import keras

    from benchmarks import dropout_speed
    from pixel_models.layers import FastDropout

    stock = keras.layers.Dropout.call
    calls = []

    def counted(self, inputs, training=False):
        calls.append(id(self))
        return stock(self, inputs, training=training)

    built = {}
    build = dropout_speed.build

    def recorded_build(variant, args):
        model, x = build(variant, args)
        built[variant] = model
        return model, x

    monkeypatch.setattr(dropout_speed, "build", recorded_build)
    monkeypatch.setattr(
        dropout_speed, "matmul_roof", lambda: {"flops_per_s": 1e11}
    )
    monkeypatch.setattr(keras.layers.Dropout, "call", counted)
    fast = FastDropout.call
    out = tmp_path / "dropout.json"
    results = dropout_speed.main(
        ["--num-layers", "1", "--width", "4", "--batch-size", "4",
         "--rounds", "1", "--steps", "1", "--warmup", "1",
         "--out", str(out)]
    )  # fmt: skip
    # Only the stock model's dropout layer took the stock call.
    owner = {
        id(layer): variant
        for variant, model in built.items()
        for layer in model.layers
        if isinstance(layer, FastDropout)
    }
    assert len(owner) == 2
    assert {owner[call] for call in calls} == {"stock"}
    assert FastDropout.call is fast
    assert results["none"]["step_over_no_dropout"] == 1.0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"none", "fast", "stock"}
    assert report["float32_matmul_flops"] == 1e11


@pytest.mark.tensorflow_only
def test_first_step_times_both_builds_of_the_optimizer(tmp_path, monkeypatch):
    from benchmarks import first_step

    tiny = {"input_shape": [4, 5, 1], "levels": 2, "num_layers": 1}
    tiny.update(width=4, num_classes=3)
    calls, measured = [], {}

    def in_process(name, argv, what):  # each variant measured once
        calls.append(argv[1:])
        assert argv[0] == "--measure" and what.endswith(f"({argv[2]})")
        if argv[2] not in measured:
            measured[argv[2]] = first_step.measure(
                "gated_pixelcnn", tiny, 4, argv[2], later_steps=1
            )
        return [measured[argv[2]]]

    monkeypatch.setattr(first_step, "run_module", in_process)
    monkeypatch.setattr(
        first_step, "matmul_roof", lambda: {"flops_per_s": 1e11}
    )
    out = tmp_path / "first_step.json"
    results = first_step.main(
        ["--presets", "a", "--rounds", "2", "--out", str(out)]
    )
    # Variants alternate which goes first, round by round.
    assert calls == [
        ["a", "at_compile"], ["a", "in_trace"],
        ["a", "in_trace"], ["a", "at_compile"],
    ]  # fmt: skip
    report = json.loads(out.read_text())
    assert report["results"] == results and set(results) == {"a"}
    for runs in report["runs"].values():
        compiled, traced = runs["at_compile"], runs["in_trace"]
        # Keras's way builds in the trace, and so traces the step twice.
        assert [r["built_before_fit"] for r in compiled] == [True, True]
        assert [r["built_before_fit"] for r in traced] == [False, False]
        assert [r["traces"] for r in compiled + traced] == [1, 1, 2, 2]
        assert len({r["optimizer_variables"] for r in compiled + traced}) == 1
    summary = results["a"]
    assert summary["in_trace_over_at_compile"] == pytest.approx(
        summary["in_trace"]["first_step_s"]
        / summary["at_compile"]["first_step_s"]
    )
    with pytest.raises(ValueError, match="variant must be one of"):
        first_step.measure("pixelcnn", tiny, 4, "eager")
