"""Discrete negative log-likelihood and its units.

Every model here outputs logits of shape `(batch, H, W, C, levels)`: one
`levels`-way softmax per sub-pixel. The NLL of an image is the sum of the
cross-entropies of its `H * W * C` sub-pixels. It is reported in two units:

- nats/image: the sum, in nats (binarized MNIST papers report this);
- bits/dim: the mean over sub-pixels, in bits (CIFAR-10 papers report
  this). Uniform guessing over 256 levels gives 8 bits/dim.
"""

import math

import keras
import numpy as np
from keras import ops

LN2 = math.log(2.0)


def discrete_nll(y_true, logits):
    """Per-sub-pixel negative log-likelihood in nats.

    Args:
        y_true: pixel values in `[0, levels - 1]`, shape `(batch, H, W, C)`
            (floats or integers).
        logits: shape `(batch, H, W, C, levels)`.

    Returns:
        Tensor of shape `(batch, H, W, C)`: `-log p(x_sub-pixel | past)`.

    Example:
    >>> logits = np.zeros((1, 2, 2, 1, 256), "float32")
    >>> x = np.zeros((1, 2, 2, 1), "float32")
    >>> float(ops.mean(discrete_nll(x, logits))) / LN2  # uniform: 8 bits
    8.0
    """
    labels = ops.cast(ops.round(ops.convert_to_tensor(y_true)), "int32")
    logits = ops.cast(logits, "float32")
    # log-sum-exp minus the true level's logit, written out: on
    # TensorFlow's CPU, sparse_categorical_crossentropy (one single-
    # threaded op) took 15% of a PixelCNN's CIFAR-10 training step, and
    # these element-wise ops and sums with their gradient 30% less time.
    # The max is a constant shift, so stopping its gradient is exact.
    peak = ops.stop_gradient(ops.max(logits, axis=-1, keepdims=True))
    log_total = ops.log(ops.sum(ops.exp(logits - peak), axis=-1))
    true_logit = ops.sum(logits * ops.one_hot(labels, logits.shape[-1]), -1)
    return log_total + ops.squeeze(peak, -1) - true_logit


def nats_to_bits_per_dim(nats_per_dim):
    """Converts a mean NLL per sub-pixel from nats to bits."""
    return nats_per_dim / LN2


def nats_per_image(nats_per_dim, image_shape):
    """Converts a mean NLL per sub-pixel to the NLL of a whole image.

    Args:
        nats_per_dim: mean NLL per sub-pixel, in nats.
        image_shape: `(H, W, C)`.
    """
    return nats_per_dim * math.prod(image_shape)


def bits_per_dim_to_nats_per_image(bits_per_dim, image_shape):
    """Converts bits/dim to nats/image for images of `image_shape`."""
    return nats_per_image(bits_per_dim * LN2, image_shape)


@keras.saving.register_keras_serializable(package="pixel_models")
class DiscreteNLL(keras.losses.Loss):
    """Mean NLL per sub-pixel, in nats: the training loss of every model.

    Use `nats_to_bits_per_dim` on its value for bits/dim, or the
    `BitsPerDim` metric to have `model.fit` log bits/dim directly.

    Args:
        name: loss name.
        reduction: Keras loss reduction; the default averages over the
            batch and every sub-pixel.

    Example:
    >>> model.compile(optimizer="adam", loss=DiscreteNLL(),
    ...               metrics=[BitsPerDim()])  # doctest: +SKIP
    """

    def __init__(self, name="discrete_nll", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        return discrete_nll(y_true, y_pred)


@keras.saving.register_keras_serializable(package="pixel_models")
class BitsPerDim(keras.metrics.Mean):
    """Mean NLL per sub-pixel in bits, logged as `bits_per_dim`.

    Args:
        name: metric name (`val_` is prefixed for validation data).
        dtype: metric dtype.

    Example:
    >>> m = BitsPerDim()
    >>> m.update_state(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1, 256)))
    >>> round(float(m.result()), 4)
    8.0
    """

    def __init__(self, name="bits_per_dim", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        nll = discrete_nll(y_true, y_pred)
        # One value per image, so every image weighs the same.
        per_image = ops.mean(ops.reshape(nll, (ops.shape(nll)[0], -1)), -1)
        return super().update_state(per_image / LN2, sample_weight)


def subsample_factors(image_shape, small_shape):
    """`(H // s_h, W // s_w)`, checked: the small image keeps every
    factor-th row and column of the image."""
    height, width = image_shape[:2]
    s_h, s_w = small_shape[:2]
    if (
        not (0 < s_h <= height and 0 < s_w <= width)
        or height % s_h
        or (width % s_w)
    ):
        raise ValueError(
            "small_shape must have sizes that divide the image's "
            f"({height}, {width}). Received: small_shape={tuple(small_shape)}"
        )
    return height // s_h, width // s_w


def rest_mask(image_shape, small_shape):
    """`(H, W)` float32: 1 at the pixels that are not in the small image.

    The small image of a Multi-Scale model holds pixel `(f_h i, f_w j)` of
    the image (every factor-th row and column from the top-left corner;
    `pixel_models.multiscale.subsample`).
    """
    f_h, f_w = subsample_factors(image_shape, small_shape)
    mask = np.ones(tuple(image_shape[:2]), "float32")
    mask[::f_h, ::f_w] = 0.0
    return mask


def _rest_nll(y_true, logits, small_shape):
    """Per image: the mean NLL over the sub-pixels not in the small image,
    in nats, `(batch,)`."""
    nll = discrete_nll(y_true, logits)
    mask = rest_mask(nll.shape[1:3], small_shape)
    count = float(mask.sum() * nll.shape[-1])
    masked = nll * ops.convert_to_tensor(mask[None, :, :, None])
    return ops.sum(ops.reshape(masked, (ops.shape(nll)[0], -1)), -1) / count


@keras.saving.register_keras_serializable(package="pixel_models")
class RestNLL(keras.losses.Loss):
    """Mean NLL of the sub-pixels not in the small image, in nats.

    The loss of a Multi-Scale model's second stage, which models the
    image given its subsampled small image: the small image's pixels are
    given, so they are not counted (PixelRNN paper, Sec. 3.6), and
    -log p(x) = -log p(x_small) - log p(x_rest | x_small) counts every
    pixel once.

    Args:
        small_shape: `(s_h, s_w)` or `(s_h, s_w, C)`, the small image's.
        name: loss name.
        reduction: Keras loss reduction over the batch.

    Example:
    >>> loss = RestNLL((2, 2))
    >>> x = np.zeros((1, 4, 4, 1), "float32")
    >>> round(float(loss(x, np.zeros((1, 4, 4, 1, 2)))), 4)  # log 2
    0.6931
    """

    def __init__(
        self, small_shape, name="rest_nll", reduction="sum_over_batch_size"
    ):
        super().__init__(name=name, reduction=reduction)
        self.small_shape = tuple(int(s) for s in small_shape[:2])

    def call(self, y_true, y_pred):
        return _rest_nll(y_true, y_pred, self.small_shape)

    def get_config(self):
        return {**super().get_config(), "small_shape": self.small_shape}


@keras.saving.register_keras_serializable(package="pixel_models")
class RestBitsPerDim(keras.metrics.Mean):
    """Mean NLL per sub-pixel not in the small image, in bits.

    The second stage's `BitsPerDim` (see `RestNLL`), logged as
    `rest_bits_per_dim`: it is not the bits/dim of the whole image.

    Args:
        small_shape: `(s_h, s_w)` or `(s_h, s_w, C)`.
        name: metric name.
        dtype: metric dtype.
    """

    def __init__(self, small_shape, name="rest_bits_per_dim", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.small_shape = tuple(int(s) for s in small_shape[:2])

    def update_state(self, y_true, y_pred, sample_weight=None):
        per_image = _rest_nll(y_true, y_pred, self.small_shape) / LN2
        return super().update_state(per_image, sample_weight)

    def get_config(self):
        return {**super().get_config(), "small_shape": self.small_shape}
