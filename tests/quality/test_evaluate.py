"""sample_quality, Reference, the model method and the callback."""

import glob
import os

import keras
import numpy as np
import pytest
from test_features import tiny_classifier

from pixel_models import quality
from pixel_models.callbacks import SampleQuality
from pixel_models.models import PixelCNN

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def extractor():
    return quality.ClassifierFeatures(tiny_classifier(SHAPE))


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 2, (n, *SHAPE), "uint8")


def tiny_model(num_classes=None):
    keras.utils.set_random_seed(0)
    return PixelCNN(
        SHAPE, levels=2, num_layers=2, filters=4, num_classes=num_classes
    )


def test_reference_against_itself_is_the_floor(extractor):
    real = images(60, 0)
    reference = quality.Reference(
        real, 2, extractor, train_images=images(80, 1)
    )
    same = reference.compare(real)
    assert same["frechet_distance"] == pytest.approx(0, abs=1e-6)
    assert same["precision"] == same["recall"] == 1.0
    assert same["histogram_tv"] == 0 and same["mean_image_l2"] == 0
    assert same["memorisation_ratio"] == pytest.approx(1.0)
    # All-ink images are far from random ones, in every figure.
    ink = np.ones((60, *SHAPE), "uint8")
    far = reference.compare(ink)
    assert far["frechet_distance"] > 0.1 and far["kid"] > 0
    assert far["histogram_tv"] == pytest.approx(1 - real.mean())
    assert far["artifact_rate"]["saturated"] == 1.0
    with pytest.raises(ValueError, match="samples must have"):
        reference.compare(np.zeros((3, 8, 9, 1), "uint8"))


def test_sample_quality_of_a_model(extractor):
    model = tiny_model()
    real = images(40, 0)
    result = quality.sample_quality(
        model,
        real,
        num_samples=24,
        features=extractor,
        train_images=images(50, 1),
        progress=False,
    )
    for key in ("frechet_distance", "kid", "inception_score", "precision"):
        assert np.isfinite(result[key]), key
    assert result["num_samples"] == 24 and result["kid_subset_size"] == 24
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert "class_match" not in result
    # The method is the function, with the same defaults and seed.
    again = model.sample_quality(
        real,
        num_samples=24,
        features=extractor,
        progress=False,
        train_images=images(50, 1),
    )
    assert again == result


def test_sample_quality_of_a_conditional_model(extractor):
    model = tiny_model(num_classes=3)
    result = model.sample_quality(
        images(30, 0), num_samples=12, features=extractor, progress=False
    )
    # The untrained tiny classifier puts some samples in the asked class.
    assert 0 <= result["class_match"] <= 1
    assert "memorisation_ratio" not in result


def test_extractor_for_names_the_choices():
    with pytest.raises(ValueError, match="features must be one of"):
        quality.extractor_for("vgg", (28, 28, 1))
    with pytest.raises(ValueError, match=r"\(28, 28, 1\) or \(32, 32, 3\)"):
        quality.extractor_for("classifier", (8, 8, 1))


def test_sample_quality_callback_logs_kid(extractor, tmp_path):
    model = tiny_model()
    model.compile()
    callback = SampleQuality(
        images(30, 0),
        log_dir=str(tmp_path),
        num_samples=16,
        every=2,
        features=extractor,
    )
    x = images(32, 2)
    history = model.fit(
        x, x, epochs=2, batch_size=16, verbose=0, callbacks=[callback]
    )
    # Measured after epoch 2 only, into the logs and TensorBoard.
    assert len(history.history["kid"]) == 1
    assert np.isfinite(history.history["frechet_distance"][0])
    events = glob.glob(os.path.join(tmp_path, "quality", "events.*"))
    assert events
    import tensorflow as tf

    logged = {}
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            logged[value.tag] = (
                event.step,
                float(tf.make_ndarray(value.tensor)),
            )
    assert logged["kid"] == (2, pytest.approx(history.history["kid"][0]))


def test_sample_quality_example_prints_the_table(tmp_path, capsys):
    import sys

    from datafiles import write_mnist

    sys.path.insert(
        0, os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    )
    import sample_quality as example

    write_mnist(tmp_path / "mnist.npz", num_train=30, num_test=20)
    keras.utils.set_random_seed(0)
    model = PixelCNN((28, 28, 1), levels=2, num_layers=1, filters=2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    out = tmp_path / "quality.json"
    result = example.main(
        [path, "--num", "12", "--data-dir", str(tmp_path), "--json", str(out)]
    )
    printed = capsys.readouterr().out
    assert "binarized_mnist's 20 test images" in printed
    assert f"| Frechet distance | {result['frechet_distance']:.3f} |" in printed
    assert "| memorisation ratio |" in printed
    import json

    assert json.loads(out.read_text())["kid"] == pytest.approx(result["kid"])
    with pytest.raises(SystemExit):
        example.main(["--preset", "no_such_preset"])
