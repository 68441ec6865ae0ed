"""The classifiers whose features measure sample quality offline.

InceptionV3's ImageNet features are what published FID and IS figures
use, but their weights must be downloaded, and MNIST digits are far from
ImageNet. The project therefore trains its own classifiers (one for
MNIST, binarized or 8-bit, one for CIFAR-10) and ships them as presets
(`pixel_models/quality/presets/NAME/`): their penultimate layer gives a
Frechet and kernel distance, their softmax an Inception-Score-like figure.

A classifier takes images as floats in [0, 1] (`level / (levels - 1)`),
so that one model reads binarized and 8-bit digits alike. Its layer
named `FEATURES_LAYER` is the feature vector; its output the class
probabilities.
"""

import keras

FEATURES_LAYER = "features"


def _conv_bn(x, filters, name):
    x = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_mnist_classifier(width=32, feature_size=128, dropout=0.3):
    """A small convolutional network for 28 x 28 digits.

    Two stages of two 3 x 3 convolutions (`width`, then `2 * width`
    filters), each stage max-pooled, then a dense layer of
    `feature_size` units (the features) and a 10-way softmax.

    Args:
        width: filters of the first stage.
        feature_size: units of the feature layer.
        dropout: dropout rate before the softmax layer (training only).

    Returns:
        A `keras.Model` from `(28, 28, 1)` floats in [0, 1] to
        `(10,)` class probabilities.

    Example:
    >>> model = build_mnist_classifier(width=4, feature_size=8)
    >>> model.output_shape
    (None, 10)
    """
    _check_positive(width=width, feature_size=feature_size)
    inputs = keras.Input((28, 28, 1), name="images")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(inputs)
    for stage, filters in enumerate((width, 2 * width)):
        x = _conv_bn(x, filters, f"stage{stage}a")
        x = _conv_bn(x, filters, f"stage{stage}b")
        x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(feature_size, name="dense")(x)
    x = keras.layers.BatchNormalization(name="dense_bn")(x)
    features = keras.layers.ReLU(name=FEATURES_LAYER)(x)
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="mnist_classifier")


def build_cifar10_classifier(width=32):
    """A residual network for 32 x 32 colour images.

    The shape of the fast CIFAR-10 residual networks of the DAWNBench
    entries: a stem of `width` filters; three stages of `2, 4, 8 *
    width` filters, each a convolution and a max-pool, the first and last
    followed by a residual block of two convolutions; global max pooling
    (the `8 * width` features) and a 10-way softmax.

    Args:
        width: filters of the stem.

    Returns:
        A `keras.Model` from `(32, 32, 3)` floats in [0, 1] to `(10,)`
        class probabilities.

    Example:
    >>> model = build_cifar10_classifier(width=4)
    >>> model.output_shape
    (None, 10)
    """
    _check_positive(width=width)
    inputs = keras.Input((32, 32, 3), name="images")
    x = keras.layers.Rescaling(4.0, offset=-2.0, name="centre")(inputs)
    x = _conv_bn(x, width, "stem")
    for stage, multiple in enumerate((2, 4, 8)):
        x = _conv_bn(x, multiple * width, f"stage{stage}")
        x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        if stage != 1:
            y = _conv_bn(x, multiple * width, f"stage{stage}_res_a")
            y = _conv_bn(y, multiple * width, f"stage{stage}_res_b")
            x = keras.layers.Add(name=f"stage{stage}_add")([x, y])
    features = keras.layers.GlobalMaxPooling2D(name=FEATURES_LAYER)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(
        features
    )
    return keras.Model(inputs, outputs, name="cifar10_classifier")


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} must be a positive integer. Received: {name}={value!r}"
            )
