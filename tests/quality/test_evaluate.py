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
    # Samples that are the test images sit as far from the training set
    # as the test images do.
    assert same["memorisation_ratio"] == pytest.approx(1.0)
    assert "memorisation_ratio" not in reference.compare(
        real, memorisation=False
    )
    # All-ink images are far from random ones, in every figure.
    ink = np.ones((60, *SHAPE), "uint8")
    far = reference.compare(ink)
    assert far["frechet_distance"] > 0.1 and far["kid"] > 0
    assert far["histogram_tv"] == pytest.approx(1 - real.mean())
    assert far["artifact_rate"]["saturated"] == 1.0
    with pytest.raises(ValueError, match="samples must have"):
        reference.compare(np.zeros((3, 8, 9, 1), "uint8"))


@pytest.mark.every_backend
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
    # The method is the function (same seed, same figures).
    again = model.sample_quality(
        real,
        num_samples=24,
        features=extractor,
        progress=False,
        train_images=images(50, 1),
    )
    assert again == result


class FirstPixelClasses(quality.FeatureExtractor):
    """Features: the image; class: its first sub-pixel (0 or 1)."""

    data_classes = True

    def outputs(self, unit_images):
        flat = unit_images.reshape(len(unit_images), -1)
        first = flat[:, 0].astype("int64")
        return flat, np.eye(3)[first]


@pytest.mark.every_backend
def test_sample_quality_of_a_conditional_model(monkeypatch):
    from pixel_models import sampling

    model = tiny_model(num_classes=3)
    asked = []
    draw = sampling.sample

    def spy(model, num_samples, labels=None, **kwargs):
        asked.append(labels)
        return draw(model, num_samples, labels=labels, **kwargs)

    monkeypatch.setattr(sampling, "sample", spy)
    result = model.sample_quality(
        images(30, 0),
        num_samples=12,
        features=FirstPixelClasses(),
        progress=False,
    )
    # Every class asked for equally often, and class_match counts the
    # samples whose (stub) class is the asked one.
    np.testing.assert_array_equal(asked[0], np.arange(12) % 3)
    samples = draw(model, 12, labels=asked[0], seed=0, progress=False)
    expected = np.mean(samples[:, 0, 0, 0] == asked[0])
    assert result["class_match"] == expected
    assert "memorisation_ratio" not in result
    # ImageNet's classes are not the data's: no class_match with them.
    monkeypatch.setattr(FirstPixelClasses, "data_classes", False)
    result = model.sample_quality(
        images(30, 0),
        num_samples=12,
        features=FirstPixelClasses(),
        progress=False,
    )
    assert "class_match" not in result


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
    assert callback.reference is None
    x = images(32, 2)
    history = model.fit(
        x, x, epochs=2, batch_size=16, verbose=0, callbacks=[callback]
    )
    # Built when training began; measured after epoch 2 only, into the
    # logs and TensorBoard.
    assert callback.reference.extractor is extractor
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


def test_the_report_writes_its_page_results_and_readme_table(tmp_path):
    import json

    from datafiles import write_mnist

    from benchmarks import sample_quality as report

    write_mnist(tmp_path / "mnist.npz", num_train=64, num_test=24)
    readme = tmp_path / "README.md"
    start = "<!-- classifier presets: start -->"
    end = "<!-- classifier presets: end -->"
    readme.write_text(f"a\n{start}\nold\n{end}\nb\n")
    result = report.main(
        ["--num", "6", "--num-variants", "6", "--weak-steps", "1"]
        + ["--presets", "--data-dir", str(tmp_path)]
        + ["--out", str(tmp_path / "docs"), "--readme", str(readme)]
        + ["--results", str(tmp_path / "results")]
    )
    (row,) = result["rows"]
    assert row["name"] == "weak model (1 steps)" and row["num_samples"] == 6
    assert [r["num_samples"] for r in result["variants"]] == [6, 6, 6]
    assert "memorisation_ratio" not in result["floor"]
    assert "memorisation_ratio" in row
    page = (tmp_path / "docs" / "sample_quality.md").read_text()
    assert page.startswith("# Sample quality")
    assert f"| {row['name']} | " in page
    assert f"| {row['frechet_distance']:.3f} |" in page
    folder = tmp_path / "docs" / "sample_quality"
    for picture in ("nll_vs_quality", "temperatures", "samples"):
        path = folder / f"binarized_mnist_{picture}.png"
        assert path.stat().st_size > 1000
    assert "| `mnist_classifier` |" in readme.read_text()
    assert "old" not in readme.read_text()
    saved = tmp_path / "results" / "sample_quality_binarized_mnist.json"
    assert json.loads(saved.read_text())["rows"][0]["kid"] == row["kid"]


def test_the_presets_table_reads_the_reports_headline(tmp_path):
    import json

    from benchmarks import preset_table

    results = {"test": {"nats_per_image": 80.5, "bits_per_dim": 0.148}}
    card = {"data": {"name": "binarized_mnist"}, "results": results}
    assert preset_table.quality_cell("a", card, str(tmp_path)) == "-"
    rows = [{"name": "a", "frechet_distance": 1.234, "kid": 0.0021}]
    rows[0]["nll"] = 80.5  # the weights the card scored
    for dataset in ("binarized_mnist", "cifar10"):
        path = tmp_path / f"sample_quality_{dataset}.json"
        path.write_text(json.dumps({"rows": rows}))
    assert preset_table.quality_cell("a", card, str(tmp_path)) == "FD 1.23"
    assert preset_table.quality_cell("b", card, str(tmp_path)) == "-"
    # Re-exported since the report: its figure is of other weights.
    scored = {"nats_per_image": 80.4, "bits_per_dim": 0.147}
    later = {**card, "results": {"test": scored}}
    assert preset_table.quality_cell("a", later, str(tmp_path)) == "-"
    card = {"data": {"name": "cifar10"}, "results": results}
    rows[0]["nll"] = 0.148  # bits/dim, on CIFAR-10
    path.write_text(json.dumps({"rows": rows}))
    assert preset_table.quality_cell("a", card, str(tmp_path)) == "KID 2.1"


def test_training_scripts_log_sample_quality(tmp_path):
    import sys

    import tensorflow as tf
    from datafiles import write_mnist

    sys.path.insert(
        0, os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    )
    import train_mnist

    write_mnist(tmp_path / "data" / "mnist.npz", num_train=48, num_test=16)
    log_dir = tmp_path / "run"
    train_mnist.main(
        ["--data-dir", str(tmp_path / "data"), "--validation-size", "16"]
        + ["--epochs", "1", "--num-layers", "1", "--width", "2"]
        + ["--batch-size", "16", "--sample-every", "0"]
        + ["--quality-every", "1", "--quality-samples", "8"]
        + ["--log-dir", str(log_dir)]
    )
    (events,) = glob.glob(str(log_dir / "tensorboard" / "quality" / "ev*"))
    tags = {
        value.tag
        for event in tf.compat.v1.train.summary_iterator(events)
        for value in event.summary.value
    }
    assert tags == {"kid", "frechet_distance"}


def test_the_report_keeps_a_presets_samples_in_its_cache(tmp_path):
    from benchmarks import sample_quality as report
    from pixel_models import presets

    name = "pixelcnn_cifar10"
    model = presets.load_preset(name, compile=False)
    first = report.draw(name, model, 2, 0.9, None, 2, str(tmp_path))
    again = report.draw(name, model, 2, 0.9, None, 2, str(tmp_path))
    assert first[3] is False and again[3] is True
    np.testing.assert_array_equal(first[0], again[0])
    assert again[2] == pytest.approx(first[2])
    # Other settings, or a model that is not a preset, are not read back.
    other = report.draw(name, model, 2, 0.8, None, 2, str(tmp_path))
    assert other[3] is False
    weak = report.draw("weak", model, 2, 0.9, None, 2, str(tmp_path))
    assert weak[3] is False and len(list(tmp_path.iterdir())) == 2
