"""Per-image likelihoods: log p(x) of each image under a model.

`model.evaluate` gives the mean NLL of a data set; scoring single images
(ranking them, flagging unlikely or out-of-distribution ones) needs the
log-likelihood of each. An autoregressive model gives it exactly, from one
forward pass: log p(x) = sum over sub-pixels of log p(x_i | x_<i).
"""

import math

import keras
import numpy as np

from pixel_models.checks import check_int
from pixel_models.inputs import (
    check_condition,
    check_images,
    check_labels,
    image_shape,
    mixture_levels,
    model_inputs,
)
from pixel_models.logistic_mixture import sub_pixel_log_probs


def log_prob(model, images, labels=None, batch_size=64, condition=None):
    """Log-likelihood of each image under `model`, in nats.

    Args:
        model: a model from `pixel_models.models` (or loaded from a file).
        images: `(n, H, W, C)` integer pixel values in `[0, levels - 1]`.
        labels: for a class-conditional model, the class of every image
            (`(n,)` integers) or one class for all; None otherwise.
        batch_size: images per forward pass.
        condition: for a model conditioned on a small image (built with
            `condition_shape`), the small image of every image, `(n, s,
            s, C)`, or one for all; None otherwise. Every sub-pixel is
            counted: for the honest likelihood of a two-stage model, see
            `pixel_models.multiscale`.

    Returns:
        float64 NumPy array `(n,)`: log p(x) (log p(x | y) for a
        conditional model) in nats; `-log_prob(...).mean()` is the data
        set's NLL in nats/image.

    Example:
    >>> model = build_pixelcnn((8, 8, 1), levels=2, num_layers=1, filters=4)
    >>> log_prob(model, np.zeros((2, 8, 8, 1))).shape  # doctest: +SKIP
    (2,)
    """
    return (
        log_prob_map(model, images, labels, batch_size, condition)
        .reshape(len(images), -1)
        .sum(axis=-1)
    )


def log_prob_map(model, images, labels=None, batch_size=64, condition=None):
    """Log-likelihood of every sub-pixel, `log p(x_i | x_<i)`, in nats.

    Arguments as `log_prob`.

    Returns:
        float64 NumPy array `(n, H, W, C)`.
    """
    check_int("batch_size", batch_size)
    x = check_images(model, images)
    labels = check_labels(model, labels, len(x))
    condition = check_condition(model, condition, len(x))
    out = []
    for start in range(0, len(x), batch_size):
        part = slice(start, start + batch_size)
        batch = x[part]
        inputs = model_inputs(
            batch,
            None if labels is None else labels[part],
            None if condition is None else condition[part],
        )
        if mixture_levels(model):
            # A mixture head's parameters: its exact chain rule over the
            # channels of each pixel (`sub_pixel_log_probs`), on batches of
            # one size (a short last one padded), so that a backend that
            # compiles each op per shape compiles it once.
            params = np.asarray(model.predict_on_batch(inputs))
            pad = [(0, batch_size - len(batch))] + [(0, 0)] * 3
            terms = sub_pixel_log_probs(
                np.pad(batch, pad), np.pad(params, pad), model.levels
            )
            terms = keras.ops.convert_to_numpy(terms)[: len(batch)]
            out.append(terms.astype("float64"))
            continue
        logits = np.asarray(model.predict_on_batch(inputs), "float64")
        # log softmax in float64: the logit of the true value minus the
        # log-sum-exp of all of them.
        top = logits.max(axis=-1, keepdims=True)
        norm = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))
        index = batch.astype("int64")[..., None]
        true = np.take_along_axis(logits, index, axis=-1)[..., 0]
        out.append(true - norm)
    return np.concatenate(out)


def bits_per_dim(model, images, labels=None, batch_size=64, condition=None):
    """NLL of each image in bits per sub-pixel (see `log_prob`).

    Returns:
        float64 NumPy array `(n,)`: -log2 p(x) / (H * W * C).
    """
    nats = -log_prob(model, images, labels, batch_size, condition)
    dims = math.prod(image_shape(model))
    return nats / (dims * math.log(2.0))


__all__ = ["bits_per_dim", "check_images", "log_prob", "log_prob_map"]
