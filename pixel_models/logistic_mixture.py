"""The discretized logistic mixture likelihood of PixelCNN++.

Instead of a `levels`-way softmax per sub-pixel, a model with this output
gives, per pixel, a mixture of `num_mixtures` logistic distributions over
the `[-1, 1]` range of a sub-pixel, discretized into `levels` equal bins
(level `v` is the bin centred on `2 v / (levels - 1) - 1`; the first and
the last level take the whole tail beyond them). In colour, the means of
a component move with the pixel's earlier channels through coefficients:
channel `c`'s mean is `mu_c + sum_{j < c} tanh(a_cj) x_j`, so G depends on
R and B on R and G at the same pixel, and every parameter of a pixel may
depend on the earlier pixels only.

The parameters of a pixel, `num_parameters(channels, num_mixtures)` of
them, are laid out as `num_mixtures` consecutive values for each of, in
order: the components' logits; the means of channels `0 .. C-1`; their
log scales; and the `C (C - 1) / 2` coefficients `a_10, a_20, a_21, ...`
(row by row). A model's mixture head gives `(batch, H, W, P)`.

The log-probability of a bin is computed in closed form in log space,
exactly for every bin: `log(sigmoid(a) - sigmoid(b))` for the bin's upper
and lower edges `a > b` (in units of the scale) is
`-softplus(-a) - softplus(b) + log(-expm1(b - a))`, with no cancellation
between the two sigmoids, so a bin of probability 1e-30 gets its exact
log and a finite gradient, where a difference of two CDFs in float32
gives 0 (and would need a density approximation).
"""

import keras
from keras import ops

from pixel_models.checks import check_int
from pixel_models.losses import LN2

# Log scales are floored here (as in PixelCNN++): a narrower component
# puts all its mass in one bin anyway.
MIN_LOG_SCALE = -7.0


def num_coefficients(channels):
    """`C (C - 1) / 2`: one per pair of a channel and an earlier one."""
    return channels * (channels - 1) // 2


def num_parameters(channels, num_mixtures):
    """Parameters per pixel: logits, means, log scales, coefficients.

    Example:
    >>> num_parameters(3, 10)  # PixelCNN++ on colour images
    100
    >>> num_parameters(1, 5)
    15
    """
    check_int("channels", channels)
    check_int("num_mixtures", num_mixtures)
    return num_mixtures * (1 + 2 * channels + num_coefficients(channels))


def infer_num_mixtures(channels, params_size):
    """`num_mixtures` of a head of `params_size` values per pixel, checked."""
    per = 1 + 2 * channels + num_coefficients(channels)
    if params_size <= 0 or params_size % per:
        raise ValueError(
            "A logistic mixture over "
            f"{channels} channel(s) has {per} parameters per component, so "
            "the last axis of its parameters must be a positive multiple of "
            f"{per}. Received: params.shape[-1]={params_size}"
        )
    return params_size // per


def split_parameters(params, channels):
    """`(logits, means, log_scales, coefficients)` of a mixture head.

    Args:
        params: `(..., P)` with `P = num_parameters(channels, K)`.
        channels: `C`.

    Returns:
        logits `(..., K)`, means `(..., C, K)`, log scales `(..., C, K)`
        (floored at `MIN_LOG_SCALE`), coefficients `(..., C(C-1)/2, K)`
        (after `tanh`, in `[-1, 1]`).
    """
    params = ops.cast(params, "float32")
    k = infer_num_mixtures(channels, params.shape[-1])
    lead = tuple(ops.shape(params)[:-1])
    rows = 1 + 2 * channels + num_coefficients(channels)
    grouped = ops.reshape(params, (*lead, rows, k))
    logits = grouped[..., 0, :]
    means = grouped[..., 1 : 1 + channels, :]
    log_scales = ops.maximum(
        grouped[..., 1 + channels : 1 + 2 * channels, :], MIN_LOG_SCALE
    )
    coefficients = ops.tanh(grouped[..., 1 + 2 * channels :, :])
    return logits, means, log_scales, coefficients


def level_to_value(levels, level):
    """Centre of `level`'s bin in `[-1, 1]` (a tensor of levels)."""
    return ops.cast(level, "float32") * (2.0 / (levels - 1)) - 1.0


def conditioned_means(means, coefficients, values):
    """Each channel's mean moved by the pixel's earlier channels.

    Args:
        means: `(..., C, K)`.
        coefficients: `(..., C(C-1)/2, K)`, row by row.
        values: `(..., C)`, the pixel's values in `[-1, 1]` (only the
            channels before each are read).

    Returns:
        `(..., C, K)`.
    """
    channels = means.shape[-2]
    out = [means[..., 0, :]]
    index = 0
    for c in range(1, channels):
        mean = means[..., c, :]
        for j in range(c):
            mean = mean + coefficients[..., index, :] * values[..., j, None]
            index += 1
        out.append(mean)
    return ops.stack(out, axis=-2)


def _log_bin_probability(x, mean, log_scale, levels):
    """log P(level of centre `x`) under a discretized logistic."""
    half = 1.0 / (levels - 1)
    inv_scale = ops.exp(-log_scale)
    upper = (x - mean + half) * inv_scale
    lower = (x - mean - half) * inv_scale
    # log(sigmoid(upper) - sigmoid(lower)), exactly (module docstring):
    # upper - lower = 2 half / scale > 0.
    width = (2.0 * half) * inv_scale
    interior = (
        -ops.softplus(-upper)
        - ops.softplus(lower)
        + ops.log(-ops.expm1(-width))
    )
    first = -ops.softplus(-upper)  # log sigmoid(upper): the left tail
    last = -ops.softplus(lower)  # log (1 - sigmoid(lower)): the right tail
    # Every branch is finite, so the unused ones add nothing to the
    # gradient (no 0 * inf).
    return ops.where(
        x < -1.0 + half, first, ops.where(x > 1.0 - half, last, interior)
    )


def _log_joint(y_true, params, levels):
    """Log mixture weight plus the log bins of channels 0..c, for each
    component and each c: `(..., C, K)`."""
    check_int("levels", levels, minimum=2)
    y_true = ops.convert_to_tensor(y_true)
    channels = y_true.shape[-1]
    logits, means, log_scales, coefficients = split_parameters(params, channels)
    x = level_to_value(levels, ops.round(ops.cast(y_true, "float32")))
    means = conditioned_means(means, coefficients, x)
    log_bins = _log_bin_probability(x[..., None], means, log_scales, levels)
    weights = ops.log_softmax(logits, axis=-1)[..., None, :]
    return ops.cumsum(log_bins, axis=-2) + weights


def sub_pixel_log_probs(y_true, params, levels):
    """`log p(x_c | x_0 .. x_(c-1), earlier pixels)` of every sub-pixel.

    A mixture does not factor by channel, but its chain rule is exact:
    `log p(x_0 .. x_c)` is the log-sum over components of the weights
    and the first c + 1 channels' bins, and each channel's term is the
    difference of two of them. They add up to the pixel's log p.

    Returns:
        `(batch, H, W, C)` in nats.
    """
    prefix = ops.logsumexp(_log_joint(y_true, params, levels), axis=-1)
    first = prefix[..., :1]
    return ops.concatenate([first, prefix[..., 1:] - prefix[..., :-1]], -1)


def channel_log_probs(params, pixel, channel, levels):
    """`log p(x_c = v | x_0 .. x_(c-1), earlier pixels)` for every level.

    The discrete distribution of one channel given the pixel's earlier
    channels: the components weighted by how well they explain those
    channels, each moved by them through its coefficients. The samplers
    draw channel by channel from it (inverse CDF of the shared noise, as
    for a categorical output), which draws exactly from the discretized
    mixture.

    Args:
        params: `(..., P)`, a pixel's mixture parameters.
        pixel: `(..., C)`, the pixel's levels (channels from `channel` on
            are not read).
        channel: c, an int.
        levels: the number of levels.

    Returns:
        `(..., levels)`, normalised log-probabilities in nats.
    """
    pixel = ops.convert_to_tensor(pixel)
    channels = pixel.shape[-1]
    logits, means, log_scales, coefficients = split_parameters(params, channels)
    x = level_to_value(levels, pixel)
    means = conditioned_means(means, coefficients, x)
    weights = ops.log_softmax(logits, axis=-1)
    for j in range(channel):
        weights = weights + _log_bin_probability(
            x[..., j, None], means[..., j, :], log_scales[..., j, :], levels
        )
    centres = level_to_value(levels, ops.arange(levels))[:, None]
    log_bins = _log_bin_probability(
        centres,
        means[..., None, channel, :],
        log_scales[..., None, channel, :],
        levels,
    )
    joint = ops.logsumexp(log_bins + weights[..., None, :], axis=-1)
    return joint - ops.logsumexp(joint, axis=-1, keepdims=True)


def all_channel_log_probs(params, pixels, levels):
    """`channel_log_probs` of every channel of given pixels, stacked:
    `(..., C, levels)`, the per-sub-pixel distributions a categorical
    model's logits would give (what the samplers return as logits)."""
    pixels = ops.convert_to_tensor(pixels)
    return ops.stack(
        [
            channel_log_probs(params, pixels, c, levels)
            for c in range(pixels.shape[-1])
        ],
        axis=-2,
    )


def logistic_mixture_nll(y_true, params, levels):
    """Per-pixel negative log-likelihood in nats.

    Args:
        y_true: pixel levels in `[0, levels - 1]`, `(batch, H, W, C)`.
        params: the mixture head, `(batch, H, W, P)`.
        levels: the number of levels of a sub-pixel (>= 2).

    Returns:
        `(batch, H, W)`: `-log p(pixel | earlier pixels)`, every channel
        of the pixel together (a mixture does not factor by channel).

    Example:
    >>> import numpy as np
    >>> x = np.zeros((1, 1, 1, 1), "float32")  # level 0 of 2
    >>> params = np.zeros((1, 1, 1, 3), "float32")  # mean 0, scale 1
    >>> round(float(logistic_mixture_nll(x, params, 2)[0, 0, 0]), 4)
    0.6931
    """
    log_joint = _log_joint(y_true, params, levels)[..., -1, :]
    return -ops.logsumexp(log_joint, axis=-1)


def _per_image_nats_per_dim(y_true, params, levels):
    nll = logistic_mixture_nll(y_true, params, levels)
    channels = ops.shape(y_true)[-1]
    per_image = ops.mean(ops.reshape(nll, (ops.shape(nll)[0], -1)), -1)
    return per_image / ops.cast(channels, "float32")


@keras.saving.register_keras_serializable(package="pixel_models")
class LogisticMixtureNLL(keras.losses.Loss):
    """Mean NLL per sub-pixel, in nats, of a logistic mixture head.

    The same unit as `DiscreteNLL`: each pixel's NLL (all its channels
    together) divided by its channel count, averaged over the batch.

    Args:
        levels: the number of levels of a sub-pixel (>= 2).
        name: loss name.
        reduction: Keras loss reduction over the batch.

    Example:
    >>> model.compile(  # doctest: +SKIP
    ...     optimizer="adam",
    ...     loss=LogisticMixtureNLL(256),
    ...     metrics=[LogisticMixtureBitsPerDim(256)],
    ... )
    """

    def __init__(
        self,
        levels,
        name="logistic_mixture_nll",
        reduction="sum_over_batch_size",
    ):
        check_int("levels", levels, minimum=2)
        super().__init__(name=name, reduction=reduction)
        self.levels = int(levels)

    def call(self, y_true, y_pred):
        return _per_image_nats_per_dim(y_true, y_pred, self.levels)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


@keras.saving.register_keras_serializable(package="pixel_models")
class LogisticMixtureBitsPerDim(keras.metrics.Mean):
    """Mean NLL per sub-pixel in bits of a logistic mixture head, logged
    as `bits_per_dim` (the name the categorical models log it under).

    Args:
        levels: the number of levels of a sub-pixel (>= 2).
        name: metric name.
        dtype: metric dtype.
    """

    def __init__(self, levels, name="bits_per_dim", dtype=None):
        check_int("levels", levels, minimum=2)
        super().__init__(name=name, dtype=dtype)
        self.levels = int(levels)

    def update_state(self, y_true, y_pred, sample_weight=None):
        per_image = _per_image_nats_per_dim(y_true, y_pred, self.levels)
        return super().update_state(per_image / LN2, sample_weight)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}
