"""The feature extractors and classifier presets of pixel_models.quality."""

import glob
import os
import shutil

import keras
import numpy as np
import pytest

from pixel_models import quality
from pixel_models.quality import classifiers, features, recipes, store


def tiny_classifier(shape=(8, 8, 1), feature_size=6, classes=3, seed=0):
    """A classifier of the contract's shape: a `features` layer, a softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(feature_size, activation="tanh", name="features")(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_to_unit_interval_scales_levels_and_adds_channels():
    binary = np.array([[[0, 1], [1, 0]]], "uint8")
    assert features.to_unit_interval(binary).shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(
        features.to_unit_interval(binary)[..., 0], binary.astype("float32")
    )
    eight_bit = np.array([[[0, 51], [255, 102]]], "float32")
    np.testing.assert_allclose(
        features.to_unit_interval(eight_bit)[..., 0], eight_bit / 255
    )
    # Explicit levels override the inference (a 4-level image of 0 and 1).
    np.testing.assert_allclose(
        features.to_unit_interval(binary, levels=4)[..., 0], binary / 3
    )


@pytest.mark.parametrize(
    "images, levels, match",
    [
        (np.full((1, 2, 2), 2), 2, "levels"),
        (np.full((1, 2, 2), 0.5), None, "not integers"),
        (np.zeros((2, 2)), None, "images must be"),
        (np.zeros((1, 2, 2)), 1, "levels must be"),
    ],
)
def test_to_unit_interval_rejects_bad_images(images, levels, match):
    with pytest.raises(ValueError, match=match):
        features.to_unit_interval(images, levels)


@pytest.mark.every_backend
def test_classifier_features_are_the_feature_layer_and_softmax():
    model = tiny_classifier()
    extractor = quality.ClassifierFeatures(model)
    images = np.random.default_rng(0).integers(0, 2, (7, 8, 8))
    feats, probs = extractor.features_and_probabilities(
        images, levels=2, batch_size=3
    )
    assert feats.shape == (7, 6) and probs.shape == (7, 3)
    assert feats.dtype == probs.dtype == np.float64
    direct = keras.Model(model.inputs, model.get_layer("features").output)
    x = images[..., None].astype("float32")
    np.testing.assert_allclose(
        feats, keras.ops.convert_to_numpy(direct(x)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        extractor.probabilities(images, levels=2, batch_size=100),
        probs,
        rtol=1e-5,
        atol=1e-6,
    )


def test_classifier_features_check_the_model_and_images():
    inputs = keras.Input((8, 8, 1))
    plain = keras.Model(inputs, keras.layers.Flatten()(inputs))
    with pytest.raises(ValueError, match="layer named 'features'"):
        quality.ClassifierFeatures(plain)
    extractor = quality.ClassifierFeatures(tiny_classifier())
    with pytest.raises(ValueError, match=r"\(n, 8, 8, 1\)"):
        extractor.features(np.zeros((2, 9, 8, 1), "uint8"))
    with pytest.raises(ValueError, match="batch_size"):
        extractor.features(np.zeros((2, 8, 8, 1), "uint8"), batch_size=0)


@pytest.mark.every_backend
def test_inception_features_shapes_with_random_weights():
    # Grey images take the same path after their channel is repeated
    # (test_inception_features_resize_bilinearly_to_299).
    extractor = _inception()
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), "uint8")
    feats, probs = extractor.features_and_probabilities(images, levels=256)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1000)
    assert np.all(feats >= 0)  # the pool of ReLU outputs
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-4)


_INCEPTION = []


def _inception():
    # One random-weight InceptionV3 for the module (building it is slow).
    if not _INCEPTION:
        _INCEPTION.append(quality.InceptionFeatures(weights=None))
    return _INCEPTION[0]


def test_inception_features_resize_bilinearly_to_299():
    seen = []
    extractor = _inception()
    original = extractor._both

    class Spy:
        def predict_on_batch(self, x):
            seen.append(keras.ops.convert_to_numpy(x))
            return original.predict_on_batch(x)

    extractor._both = Spy()
    try:
        image = np.zeros((1, 2, 2, 1), "uint8")
        image[0, :, 1] = 255
        extractor.features(image, levels=256)
    finally:
        extractor._both = original
    (x,) = seen
    assert x.shape == (1, 299, 299, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey repeated
    row = x[0, 150, :, 0]
    # Scaled to [-1, 1]; bilinear: a ramp between the two pixel values.
    assert row[0] == pytest.approx(-1) and row[-1] == pytest.approx(1)
    assert np.all(np.diff(row) >= 0) and 0 < np.sum((row > -1) & (row < 1))


def test_inception_features_name_the_weights_file_when_offline(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(OSError, match=features.INCEPTION_WEIGHTS_FILE):
        quality.InceptionFeatures()


def test_classifier_builders():
    mnist = classifiers.build_mnist_classifier(width=4, feature_size=8)
    cifar = classifiers.build_cifar10_classifier(width=4)
    assert mnist.output_shape == cifar.output_shape == (None, 10)
    assert mnist.get_layer("features").output.shape[-1] == 8
    assert cifar.get_layer("features").output.shape[-1] == 32
    with pytest.raises(ValueError, match="width must be a positive integer"):
        classifiers.build_cifar10_classifier(width=0)


def test_one_cycle_rises_then_falls_to_zero():
    schedule = recipes.OneCycle(0.2, total_steps=100, warmup=0.2).schedule()
    rates = [float(schedule(step)) for step in (0, 10, 20, 60, 100, 120)]
    np.testing.assert_allclose(rates, [0, 0.1, 0.2, 0.1, 0, 0], atol=1e-6)


# The targets of the classifier presets' test accuracies. CIFAR-10's is
# on the 1,017 test images with the official pixels (the rest of the
# shared copy was decoded from JPEG files; the card gives both).
TARGETS = {
    "mnist_classifier": {"mnist": 0.993, "binarized_mnist": 0.993},
    "cifar10_classifier": {"cifar10_exact_1017": 0.88},
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_classifier_presets_load_and_meet_their_targets(name):
    extractor = quality.ClassifierFeatures.from_preset(name)
    card = extractor.card
    for data, target in TARGETS[name].items():
        assert card["test_accuracy"][data] >= target, (data, card)
    assert extractor.feature_size == card["feature_size"]
    assert extractor.num_classes == 10
    shape = (3, *extractor.image_shape)
    probs = extractor.probabilities(np.zeros(shape, "uint8"), levels=2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_classifier_preset_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="'cifar10_classifier', 'mnist_"):
        quality.ClassifierFeatures.from_preset("mnist_clasifier")
    copy = tmp_path / "mnist_classifier"
    shutil.copytree(store.ClassifierPreset("mnist_classifier").folder, copy)
    monkeypatch.setattr(store, "PRESETS_DIR", str(tmp_path))
    assert quality.list_classifier_presets() == ["mnist_classifier"]
    with open(copy / store.MODEL_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="corrupted or was replaced"):
        quality.ClassifierFeatures.from_preset("mnist_classifier")
    os.remove(copy / store.MODEL_FILE)
    with pytest.raises(FileNotFoundError, match="no model file"):
        quality.ClassifierFeatures.from_preset("mnist_classifier")
    os.remove(copy / store.CARD_FILE)
    with pytest.raises(FileNotFoundError, match="recipes mnist_classifier"):
        quality.ClassifierFeatures.from_preset("mnist_classifier")
    assert quality.list_classifier_presets() == []


def test_classifier_preset_writes_an_uncompiled_model_and_its_sha(tmp_path):
    model = classifiers.build_mnist_classifier(width=2, feature_size=4)
    # Compiled with the recipe's own schedule, which is not serializable.
    model.compile(
        optimizer=recipes._optimizer(recipes.RECIPES["mnist_classifier"], 10),
        loss="categorical_crossentropy",
    )
    preset = store.ClassifierPreset("mnist_classifier", root=str(tmp_path))
    card = preset.write(model, {"name": "mnist_classifier", "x": 1})
    assert preset.card() == card and card["x"] == 1
    loaded = preset.load_model()
    x = np.random.default_rng(0).random((2, 28, 28, 1), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-6,
    )
    assert not glob.glob(str(tmp_path / "mnist_classifier" / "*partial*"))
