"""Feature extractors for the sample-quality statistics.

Every extractor plays one role, named by `FeatureExtractor`: it turns a
batch of images, as the data loaders and samplers give them (integer
levels `0 .. levels - 1`, uint8 or float, `(n, H, W)` or `(n, H, W, C)`),
into NumPy feature vectors (`features`) and class probabilities
(`probabilities`). `InceptionFeatures` is InceptionV3 on ImageNet, the
network of published FID and IS figures; `ClassifierFeatures` a
classifier trained by the project, shipped as a preset, for offline use.
"""

import os

import numpy as np

from pixel_models.quality.classifiers import FEATURES_LAYER
from pixel_models.quality.store import ClassifierPreset

INCEPTION_SIZE = 299
# Where Keras keeps InceptionV3's ImageNet weights once downloaded.
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"


def to_unit_interval(images, levels=None):
    """Integer-level images as float32 in [0, 1], channels last.

    Args:
        images: `(n, H, W)` or `(n, H, W, C)`, integer values `0 ..
            levels - 1` (uint8 or float).
        levels: the number of pixel values; None infers 2 where every
            value is 0 or 1, else 256.

    Returns:
        float32 `(n, H, W, C)`: `level / (levels - 1)`.

    Raises:
        ValueError: images of another rank, values that are not integers
            in `0 .. levels - 1`, or `levels` below 2.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            "images must be a non-empty (n, H, W) or (n, H, W, C) array. "
            f"Received: images.shape={images.shape}"
        )
    if levels is None:
        levels = 2 if np.all((images == 0) | (images == 1)) else 256
    if not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ValueError(
            f"levels must be an integer >= 2. Received: levels={levels!r}"
        )
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > levels - 1 or np.any(images != np.round(images)):
        raise ValueError(
            f"images must hold integer levels in [0, {levels - 1}] "
            f"(levels={levels}). Received values in [{low}, {high}]"
            + ("" if np.all(images == np.round(images)) else ", not integers")
        )
    return images.astype("float32") / np.float32(levels - 1)


class FeatureExtractor:
    """The contract of a feature extractor: features and probabilities.

    Subclasses implement `outputs(unit_images)`, which takes a batch as
    float32 in [0, 1] and returns `(features, probabilities)` as NumPy
    arrays; `features`, `probabilities` and `features_and_probabilities`
    check, scale and batch the images for it.

    Attributes:
        image_shape: the `(H, W, C)` the extractor takes, or None for any.
        feature_size: the length of a feature vector.
        num_classes: the length of a probability vector.
        data_classes: True where the classes are those of the data the
            images come from (a classifier trained on it), so that a
            class-conditional model's labels can be checked against them.
    """

    image_shape = None
    feature_size = None
    num_classes = None
    data_classes = False

    def features(self, images, levels=None, batch_size=100, progress=False):
        """The feature vectors of `images`, float64 `(n, feature_size)`."""
        return self.features_and_probabilities(
            images, levels, batch_size, progress
        )[0]

    def probabilities(
        self, images, levels=None, batch_size=100, progress=False
    ):
        """The class probabilities, float64 `(n, num_classes)`."""
        return self.features_and_probabilities(
            images, levels, batch_size, progress
        )[1]

    def features_and_probabilities(
        self, images, levels=None, batch_size=100, progress=False
    ):
        """Both at once, in one pass over `images`.

        Args:
            images: integer-level images (see `to_unit_interval`).
            levels: their number of values (None: 2 or 256, inferred).
            batch_size: images a forward pass.
            progress: show a Keras progress bar.

        Returns:
            `(features, probabilities)`, float64 NumPy arrays.
        """
        import keras

        unit = to_unit_interval(images, levels)
        if self.image_shape is not None and (
            tuple(unit.shape[1:]) != tuple(self.image_shape)
        ):
            expected = ", ".join(map(str, self.image_shape))
            raise ValueError(
                f"images must be of shape (n, {expected}) for this "
                f"extractor. Received: images.shape={np.shape(images)}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                "batch_size must be a positive integer. Received: "
                f"batch_size={batch_size!r}"
            )
        bar = keras.utils.Progbar(len(unit)) if progress else None
        feats, probs = [], []
        for start in range(0, len(unit), batch_size):
            f, p = self.outputs(unit[start : start + batch_size])
            feats.append(np.asarray(f, "float64"))
            probs.append(np.asarray(p, "float64"))
            if bar is not None:
                bar.update(min(start + batch_size, len(unit)))
        return np.concatenate(feats), np.concatenate(probs)

    def outputs(self, unit_images):
        raise NotImplementedError


class ClassifierFeatures(FeatureExtractor):
    """A classifier's penultimate features and its softmax.

    Args:
        model: a `keras.Model` from images in [0, 1] to class
            probabilities, with a layer named `"features"` (the models of
            `pixel_models.quality.classifiers`).

    Example:
    >>> from pixel_models.quality import classifiers
    >>> net = classifiers.build_mnist_classifier(width=4, feature_size=8)
    >>> extractor = ClassifierFeatures(net)
    >>> extractor.features(np.zeros((2, 28, 28), "uint8"), levels=2).shape
    (2, 8)
    """

    data_classes = True

    def __init__(self, model):
        import keras

        try:
            layer = model.get_layer(FEATURES_LAYER)
        except ValueError:
            raise ValueError(
                f"model must have a layer named {FEATURES_LAYER!r} (its "
                "features). Received: a model with layers "
                f"{[lay.name for lay in model.layers]}"
            ) from None
        self.model = model
        self._both = keras.Model(model.input, [layer.output, model.output])
        self.image_shape = tuple(model.input_shape[1:])
        self.feature_size = int(layer.output.shape[-1])
        self.num_classes = int(model.output_shape[-1])
        self.card = None

    @classmethod
    def from_preset(cls, name):
        """The classifier preset `name` (`list_classifier_presets()`).

        The model file's sha256 is checked against its card, and it is
        loaded with `safe_mode=True`; the card is kept as `.card`.

        Raises:
            ValueError: an unknown name, or a corrupted model file.
            FileNotFoundError: the preset is not installed.
        """
        preset = ClassifierPreset(name)
        extractor = cls(preset.load_model())
        extractor.card = preset.card()
        return extractor

    def outputs(self, unit_images):
        from keras import ops

        outputs = self._both.predict_on_batch(unit_images)
        return tuple(ops.convert_to_numpy(o) for o in outputs)


class InceptionFeatures(FeatureExtractor):
    """InceptionV3's 2048 pool features and its ImageNet probabilities.

    Images are resized to 299 x 299 bilinearly, grey ones repeated to
    three channels, and scaled to [-1, 1] as InceptionV3 expects. These
    are Keras's ImageNet weights, not the 2015 Inception graph that the
    reference FID code (TTUR, pytorch-fid, clean-fid) loads, so figures
    land near published ones but are not the same computation: compare
    models with each other here, and with papers only loosely.

    Args:
        weights: `"imagenet"` (Keras downloads them once into its cache,
            `~/.keras/models/`) or None for random weights (tests), or the
            path of a weights file.

    Raises:
        OSError: the ImageNet weights cannot be had (the message says
            which file to place where).
    """

    image_shape = None
    feature_size = 2048
    num_classes = 1000

    def __init__(self, weights="imagenet"):
        import keras

        try:
            net = keras.applications.InceptionV3(weights=weights)
        except Exception as err:
            if weights != "imagenet":
                raise
            cache = os.path.join(
                os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")),
                "models",
                INCEPTION_WEIGHTS_FILE,
            )
            raise OSError(
                "InceptionV3's ImageNet weights could not be loaded "
                f"({type(err).__name__}: {err}). On a machine without "
                f"internet, place {INCEPTION_WEIGHTS_FILE} (the file Keras "
                f"downloads for keras.applications.InceptionV3) at {cache}, "
                "or pass weights=PATH; use features='classifier' for the "
                "project's offline classifiers."
            ) from err
        self.model = net
        self._both = keras.Model(
            net.input, [net.get_layer("avg_pool").output, net.output]
        )

    def outputs(self, unit_images):
        from keras import ops

        x = unit_images
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        x = ops.image.resize(
            x, (INCEPTION_SIZE, INCEPTION_SIZE), interpolation="bilinear"
        )
        outputs = self._both.predict_on_batch(x * 2.0 - 1.0)
        return tuple(ops.convert_to_numpy(o) for o in outputs)
