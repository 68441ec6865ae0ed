"""Multi-Scale models: conditioning on an image, the two-stage likelihood,
sampling, saving and training from the example script."""

import itertools
import json
import os
import sys

import keras
import numpy as np
import pytest
from datafiles import write_mnist

from pixel_models import multiscale
from pixel_models.layers import (
    ConditionMap,
    DiagonalBiLSTM,
    GatedPixelCNNBlock,
    RowLSTM,
)
from pixel_models.losses import RestBitsPerDim, RestNLL, rest_mask
from pixel_models.models import build_model
from pixel_models.sampling import sample, sample_fast, sample_with_logits
from pixel_models.testing import (
    assert_causal,
    assert_config_round_trip,
    assert_reloads_in_fresh_process,
    assert_samples_follow_their_logits,
)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import sample as sample_script  # noqa: E402
import train_mnist  # noqa: E402

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]


def _randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights(
        [scale * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    return model


def _conditioned(family, shape, small_size, levels=3, num_classes=None):
    model = build_model(
        family,
        shape,
        levels,
        num_layers=2,
        width=6,
        num_classes=num_classes,
        condition_shape=(small_size, small_size, shape[2]),
    )
    return _randomize(model)


def _images(shape, levels, n=1, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, levels, (n, *shape)).astype("float32")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("channels", [1, 3])
def test_conditioned_model_is_causal_and_uses_the_small_image(family, channels):
    shape = (4, 4, channels)
    model = _conditioned(family, shape, 2)
    assert [t.name for t in model.inputs] == ["pixels", "small"]
    x = np.random.default_rng(1).uniform(0, 2, (1, *shape)).astype("float32")
    small = _images((2, 2, channels), 3, seed=2)
    small_t = keras.ops.convert_to_tensor(small)
    assert_causal(lambda t: model([t, small_t]), x, color_channels=channels)
    # The small image may be seen anywhere: flipping one of its pixels
    # moves the logits of the first pixel, which sees nothing else.
    other = small.copy()
    other[0, 1, 1] = 2 - other[0, 1, 1]
    first = [
        keras.ops.convert_to_numpy(model([x, s]))[0, 0, 0]
        for s in (small, other)
    ]
    assert np.abs(first[0] - first[1]).max() > 1e-4


def test_class_and_image_conditioning_together():
    model = _conditioned("gated_pixelcnn", (4, 4, 3), 2, num_classes=3)
    assert [t.name for t in model.inputs] == ["pixels", "labels", "small"]
    x = np.random.default_rng(1).uniform(0, 2, (1, 4, 4, 3))
    small = keras.ops.convert_to_tensor(_images((2, 2, 3), 3, seed=2))
    label = keras.ops.convert_to_tensor(np.array([1], "int32"))
    assert_causal(lambda t: model([t, label, small]), x, color_channels=3)


@pytest.mark.parametrize(
    "make",
    [
        lambda c: RowLSTM(6, 3, c, condition_map=True),
        lambda c: DiagonalBiLSTM(6, c, condition_map=True),
        lambda c: GatedPixelCNNBlock(6, 3, c, "B", condition_map=True),
    ],
    ids=["row_lstm", "diagonal_bilstm", "gated"],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_layers_with_a_condition_map_stay_causal(make, channels):
    layer = make(channels)
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 6)).astype("float32")
    m = np.random.default_rng(1).normal(size=(1, 4, 5, 2)).astype("float32")
    m = keras.ops.convert_to_tensor(m)
    gated = isinstance(layer, GatedPixelCNNBlock)
    inputs = (lambda t: [t, t, m]) if gated else (lambda t: [t, m])
    x = keras.ops.convert_to_tensor(x)
    layer(inputs(x))
    # Weights large enough that no dependence rounds away to zero.
    for w in layer.weights:
        w.assign(np.random.default_rng(2).normal(0, 0.5, w.shape))

    def horizontal(t):
        out = layer(inputs(t))
        return out[1] if gated else out

    assert_causal(horizontal, x, color_channels=channels, strict=False)
    with_map = keras.ops.convert_to_numpy(horizontal(x))
    without = keras.ops.convert_to_numpy(
        layer([x, x, 0 * m] if gated else [x, 0 * m])
    )
    without = without[1] if gated else without
    assert np.abs(with_map - without).max() > 1e-3
    assert_config_round_trip(layer)


def test_condition_map_arguments_are_checked():
    x = np.zeros((1, 4, 4, 6), "float32")
    with pytest.raises(ValueError, match="takes \\[x, map\\]"):
        RowLSTM(6, condition_map=True)(x)
    with pytest.raises(ValueError, match="takes one input"):
        RowLSTM(6)([x, x])
    with pytest.raises(ValueError, match="map of the image's size"):
        DiagonalBiLSTM(6, condition_map=True)([x, x[:, :2, :2]])
    with pytest.raises(ValueError, match="map of the image's size"):
        ConditionMap(6)([x, x[:, :2]])
    assert_config_round_trip(ConditionMap(6))
    with pytest.raises(ValueError, match="expects 3 inputs"):
        GatedPixelCNNBlock(6, condition_map=True)([x, x])
    for bad in [(3, 3, 1), (2, 2, 3), (2, 2), "small", (0, 2, 1)]:
        with pytest.raises(ValueError, match="condition_shape must be"):
            build_model(
                "pixelcnn",
                (4, 4, 1),
                2,
                num_layers=1,
                width=2,
                condition_shape=bad,
            )


# On JAX and PyTorch one family (colour, recurrent) stands for the rest:
# each family's one-pixel steps are checked there by test_sampling.py.
@pytest.mark.parametrize(
    "family",
    [
        pytest.param(f, marks=[pytest.mark.every_backend] * (f == "row_lstm"))
        for f in FAMILIES
    ],
)
def test_fast_sampling_given_a_small_image_is_exact(family):
    shape = (4, 4, 3) if family in ("gated_pixelcnn", "row_lstm") else (4, 4, 1)
    model = _conditioned(family, shape, 2, num_classes=2)
    noise = np.random.default_rng(2).random((2, *shape))
    small = _images((2, 2, shape[2]), 3, n=2, seed=3)
    labels = np.array([0, 1])
    x, logits = sample_with_logits(
        model, noise, labels=labels, condition=small, progress=False
    )
    assert_samples_follow_their_logits(
        model, noise, x, logits, labels=labels, condition=small
    )


def test_condition_argument_is_checked():
    model = _conditioned("pixelcnn", (4, 4, 1), 2)
    with pytest.raises(ValueError, match="condition=None"):
        sample(model, 2, progress=False)
    with pytest.raises(ValueError, match="condition must be 2 small images"):
        sample(model, 2, condition=np.zeros((3, 2, 2, 1)), progress=False)
    with pytest.raises(ValueError, match="values in \\[7.0, 7.0\\]"):
        sample(model, 2, condition=np.full((2, 2, 2, 1), 7.0), progress=False)
    one = sample(model, 2, condition=np.ones((2, 2, 1)), seed=0, progress=False)
    both = sample(
        model, 2, condition=np.ones((2, 2, 2, 1)), seed=0, progress=False
    )
    np.testing.assert_array_equal(one, both)
    plain = build_model("pixelcnn", (4, 4, 1), 2, num_layers=1, width=2)
    with pytest.raises(ValueError, match="takes no small image"):
        sample(plain, 1, condition=np.zeros((1, 2, 2, 1)), progress=False)


def test_subsample_keeps_the_top_left_pixel_of_every_block():
    x = np.arange(2 * 6 * 4 * 1).reshape(2, 6, 4, 1)
    small = multiscale.subsample(x, (3, 2))
    np.testing.assert_array_equal(small, x[:, ::2, ::2])
    mask = rest_mask((6, 4), (3, 2))
    assert mask.sum() == 6 * 4 - 3 * 2 and mask[0, 0] == 0 and mask[1, 1]
    with pytest.raises(ValueError, match="divide the image's \\(6, 4\\)"):
        multiscale.subsample(x, 4)


def test_rest_loss_counts_only_the_pixels_not_in_the_small_image():
    levels = 4
    x = _images((4, 4, 1), levels, n=3)
    logits = np.random.default_rng(0).normal(size=(3, 4, 4, 1, levels))
    bad = logits.copy()
    # Confidently wrong at the small image's pixels only.
    wrong = (x[:, ::2, ::2, 0] + 1) % levels
    bad[:, ::2, ::2, 0] = -50.0
    np.put_along_axis(
        bad[:, ::2, ::2, 0], wrong[..., None].astype(int), 50.0, axis=-1
    )
    loss = RestNLL((2, 2))
    np.testing.assert_allclose(
        float(loss(x, logits)), float(loss(x, bad)), rtol=1e-6
    )
    # Its value: the mean over the 12 other sub-pixels of -log softmax.
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    true = np.take_along_axis(log_p, x[..., None].astype(int), -1)[..., 0]
    expected = -(true * rest_mask((4, 4), (2, 2))[None, :, :, None]).sum()
    np.testing.assert_allclose(
        float(loss(x, logits)), expected / (3 * 12), rtol=1e-5
    )
    metric = RestBitsPerDim((2, 2))
    metric.update_state(x, logits)
    np.testing.assert_allclose(
        float(metric.result()), expected / (3 * 12) / np.log(2), rtol=1e-5
    )
    assert RestNLL.from_config(loss.get_config()).small_shape == (2, 2)


def _tiny_pair(family="gated_pixelcnn", seed=0):
    pair = multiscale.build_multiscale(
        family, (4, 4, 1), 2, levels=2, num_layers=2, width=4
    )
    _randomize(pair.small_model, seed)
    _randomize(pair.large_model, seed + 1)
    return pair


def test_two_stage_likelihood_is_a_normalised_distribution():
    """p(x) = p(x_small) p(x_rest | x_small) sums to one over all 2^16
    binary 4x4 images; counting the small pixels twice would not."""
    pair = _tiny_pair()
    every = np.array(list(itertools.product([0, 1], repeat=16)), "float32")
    images = every.reshape(-1, 4, 4, 1)
    terms = pair.log_prob(images, batch_size=8192)
    np.testing.assert_allclose(terms["total"], terms["small"] + terms["rest"])
    np.testing.assert_allclose(np.exp(terms["total"]).sum(), 1.0, atol=1e-4)
    small = multiscale.subsample(images, 2)
    # Small images: 16 of them, each 4096 times; its term normalises too.
    np.testing.assert_allclose(np.exp(terms["small"]).sum(), 4096, rtol=1e-4)
    counted_twice = terms["small"] + pixel_log_prob(pair, images, small)
    assert np.exp(counted_twice).sum() < 0.5


def pixel_log_prob(pair, images, small):
    from pixel_models.evaluation import log_prob

    return log_prob(pair.large_model, images, batch_size=8192, condition=small)


def test_two_stage_terms_match_a_total_computed_by_the_sampler():
    """The sampler's logits (its own code path) give the same terms."""
    pair = _tiny_pair("row_lstm")
    images = _images((4, 4, 1), 2, n=5, seed=4)
    small = multiscale.subsample(images, 2)
    terms = pair.log_prob(images)

    def sampler_log_p(model, x, condition=None):
        every = np.ones(x.shape[:3], bool)
        _, logits = sample_fast(
            model,
            np.zeros(x.shape),
            None,
            1.0,
            None,
            False,
            given=(x, every),
            condition=condition,
        )
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return np.take_along_axis(log_p, x[..., None].astype(int), -1)[..., 0]

    small_term = sampler_log_p(pair.small_model, small).sum(axis=(1, 2, 3))
    rest = sampler_log_p(pair.large_model, images, small)
    rest_term = (rest * rest_mask((4, 4), (2, 2))[None, :, :, None]).sum(
        axis=(1, 2, 3)
    )
    np.testing.assert_allclose(terms["small"], small_term, atol=1e-4)
    np.testing.assert_allclose(terms["rest"], rest_term, atol=1e-4)
    np.testing.assert_allclose(
        terms["total"], small_term + rest_term, atol=1e-4
    )
    nll = pair.nll(images)
    np.testing.assert_allclose(
        nll["nats_per_image"], nll["small_nats"] + nll["rest_nats"]
    )
    np.testing.assert_allclose(
        nll["bits_per_dim"], nll["nats_per_image"] / (16 * np.log(2))
    )


def test_sample_draws_the_small_image_then_keeps_it(tmp_path):
    pair = _tiny_pair("pixelcnn")
    large, small = pair.sample(3, seed=0, progress=False, return_small=True)
    assert large.shape == (3, 4, 4, 1) and small.shape == (3, 2, 2, 1)
    np.testing.assert_array_equal(large[:, ::2, ::2], small)
    again = pair.sample(3, seed=0, progress=False)
    np.testing.assert_array_equal(large, again)
    pair.save(tmp_path / "ms")
    loaded = multiscale.MultiScale.load(tmp_path / "ms")
    np.testing.assert_array_equal(
        loaded.sample(3, seed=0, progress=False), large
    )
    images = _images((4, 4, 1), 2, n=4)
    np.testing.assert_allclose(
        loaded.log_prob(images)["total"],
        pair.log_prob(images)["total"],
        rtol=1e-5,
    )
    with pytest.raises(FileNotFoundError, match="No large.keras"):
        os.remove(tmp_path / "ms" / "large.keras")
        multiscale.MultiScale.load(tmp_path / "ms")


def test_conditioned_model_reloads_in_fresh_process(tmp_path):
    model = _conditioned("diagonal_bilstm", (4, 4, 3), 2, num_classes=2)
    model.compile(optimizer="adam", **multiscale.conditional_loss(model))
    x = _images((4, 4, 3), 3, n=2)
    inputs = [x, np.array([0, 1], "int32"), multiscale.subsample(x, 2)]
    assert_reloads_in_fresh_process(model, inputs, tmp_path / "c.keras")


def test_pair_arguments_are_checked():
    pair = _tiny_pair("pixelcnn")
    pair.compile()
    assert isinstance(pair.large_model.loss, RestNLL)
    assert pair.large_model.loss.small_shape == (2, 2)
    assert not isinstance(pair.small_model.loss, RestNLL)
    with pytest.raises(ValueError, match="must be conditioned on a small"):
        multiscale.MultiScale(pair.small_model, pair.small_model)
    other = build_model("pixelcnn", (3, 3, 1), 2, num_layers=1, width=2)
    with pytest.raises(ValueError, match="images of shape \\(2, 2, 1\\)"):
        multiscale.MultiScale(other, pair.large_model)
    with pytest.raises(ValueError, match="small_size must be"):
        multiscale.build_multiscale("pixelcnn", (4, 4, 1), 0, levels=2)


@pytest.mark.usefixtures("no_downloads")
def test_training_script_trains_both_stages(tmp_path):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=40, num_test=8)
    log_dir = tmp_path / "run"
    flags = [
        "--data-dir", str(tmp_path / "data"),
        "--validation-size", "8",
        "--epochs", "1",
        "--num-layers", "1",
        "--width", "4",
        "--batch-size", "8",
        "--sample-every", "1",
        "--multiscale", "14",
        "--log-dir", str(log_dir),
    ]  # fmt: skip
    results = train_mnist.main(flags)
    assert os.listdir(log_dir / "large" / "tensorboard" / "samples")
    with open(log_dir / "results.json") as f:
        assert json.load(f) == results
    np.testing.assert_allclose(
        results["nats_per_image"], results["small_nats"] + results["rest_nats"]
    )
    pair = multiscale.MultiScale.load(log_dir)
    assert pair.small_shape == (14, 14, 1)
    assert results["parameters"] == pair.count_params()
    from pixel_models.data import get_datasets

    test = get_datasets(
        "binarized_mnist",
        data_dir=str(tmp_path / "data"),
        batch_size=8,
        validation_size=8,
    ).test
    images = np.concatenate([x for x, _ in test.as_numpy_iterator()])
    nll = pair.nll(images)
    np.testing.assert_allclose(
        nll["nats_per_image"], results["nats_per_image"], rtol=1e-4
    )
    np.testing.assert_allclose(
        nll["small_nats"], results["small_nats"], rtol=1e-4
    )
    drawn = sample_script.main(
        [str(log_dir), "--num", "2", "--out", str(tmp_path / "grid.png")]
    )
    assert drawn.shape == (2, 28, 28, 1)
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert (tmp_path / "grid_small.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        train_mnist.main([*flags[:-2], "--resume", "x.keras"])


def test_a_killed_large_stage_trains_on_the_passes_after_its_own(
    tmp_path, monkeypatch
):
    """A Multi-Scale run killed in its large stage: the small stage starts
    anew from pass 0, and the large stage's training images go on from
    its own backup's pass (LOG_DIR/large/backup), not LOG_DIR/backup's,
    so that dynamic binarization draws new images for it."""
    from pixel_models import trainer
    from pixel_models.config import RunConfig
    from pixel_models.runs import BACKUP, BACKUP_RECORD, PLANNED_EPOCHS

    write_mnist(tmp_path / "data" / "mnist.npz", num_train=40, num_test=8)
    large = tmp_path / "run" / "large"
    (large / BACKUP).mkdir(parents=True)
    (large / BACKUP / BACKUP_RECORD).write_text('{"epoch": 3, "batch": 0}')
    (large / PLANNED_EPOCHS).write_text('{"final_epoch": 5}')
    passes = []
    load = trainer._load_splits

    def loaded(config, first_pass):
        passes.append(first_pass)
        return load(config, first_pass)

    class Trained(Exception):
        pass

    def fit_run(model, train, *args, **kwargs):
        if len(passes) == 2:  # the large stage, on its own splits
            raise Trained
        return 0.0

    monkeypatch.setattr(trainer, "_load_splits", loaded)
    monkeypatch.setattr(trainer, "fit_run", fit_run)
    monkeypatch.setattr(
        trainer, "evaluate_nll", lambda *a, **k: {"nats_per_image": 1.0}
    )
    config = RunConfig(
        data_dir=str(tmp_path / "data"),
        validation_size=8,
        epochs=5,
        num_layers=1,
        width=4,
        batch_size=8,
        sample_every=0,
        multiscale=14,
        binarization="dynamic",
        log_dir=str(tmp_path / "run"),
    )
    with pytest.raises(Trained):
        trainer.run_training(config)
    assert passes == [0, 3]
