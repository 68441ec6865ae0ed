"""Autoregressive sampling: the naive reference and an exact fast sampler.

Every model here has a property the fast sampler relies on: each layer's
output at pixel q depends only on that layer's input at pixels up to q in
raster order. (Masked convolutions look up and left; the Row LSTM state
comes from the row above; the Diagonal BiLSTM forward state from the pixel
above and the one to the left, its shifted backward state from the row
above.) So when pixel p is generated, every layer value before p is final,
and computing each layer at p alone gives the exact logits of p.

Each layer computes its own output at one pixel, in `keras.ops`, next to
its `call` (the protocol: `pixel_models/layers/steps.py`). The fast
sampler walks the model's graph through public Keras API, keeps the last
rows of every map, and runs one compiled function per row: the work a
layer can do for the whole row at once, then a loop over the row's
pixels (`keras.ops.scan` inside `tf.function` on TensorFlow, `jax.jit` on
JAX; PyTorch runs it eagerly). Both samplers draw sub-pixels from the same
seeded uniform noise by inverse CDF with `draw`, so with the same seed
they give the same samples.

Both samplers compute in float32. A model built under a mixed precision
policy (`mixed_bfloat16`, `mixed_float16`) keeps float32 variables but
computes in 16 bits, where a full pass and a one-pixel step round
differently (their sums run in other orders), so the two would draw
different images; they sample from a float32 copy of it instead, with
the same weights (`float32_model`).

The package, by concern: `draw` (inverse-CDF draws, shared by both
samplers), `precision` (the float32 copy), `naive` (the reference),
`contract` (the model's graph, and `OnePixelSampler`: the one-pixel
steps every fast sampler implements, and the compiled row that drives
them), `plan` and `fast` (the fast sampler of every family but one: its
graph split by what varies with the pixels, and its steps),
`shifted_plan` and `shifted` (the same for networks that change
resolution: PixelCNN++), `stepper` (the steps driven one sub-pixel at a
time, for the entropy coder) and `compile` (one way per backend).
Input checks shared with `pixel_models.evaluation` live in
`pixel_models.inputs`; the public
functions (`sample`, `sample_with_logits`, `complete`) are here.
"""

import numpy as np

from pixel_models.checks import check_int
from pixel_models.inputs import (
    check_condition,
    check_images,
    check_labels,
    condition_shape,
    image_shape,
    mixture_levels,
    model_inputs,
    model_levels,
    num_classes,
)
from pixel_models.sampling.contract import model_graph
from pixel_models.sampling.draw import draw
from pixel_models.sampling.fast import fast_sampler, sample_fast
from pixel_models.sampling.naive import sample_naive
from pixel_models.sampling.precision import float32_model

METHODS = ("fast", "naive")


def _check_arguments(model, num_samples, temperature, top_p, method, batch):
    shape = getattr(model, "output_shape", None)
    if mixture_levels(model) is None and not (
        isinstance(shape, tuple) and len(shape) == 5
    ):
        raise ValueError(
            "model must output logits of shape (batch, H, W, C, levels), "
            "as the builders of pixel_models.models do. Received: model "
            f"with output_shape={shape!r}"
        )
    check_int("num_samples", num_samples)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            "temperature must be a number > 0. "
            f"Received: temperature={temperature!r}"
        )
    if top_p is not None and (
        not isinstance(top_p, (int, float)) or not 0 < top_p <= 1
    ):
        raise ValueError(
            "top_p must be None or a number in (0, 1]. "
            f"Received: top_p={top_p!r}"
        )
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {METHODS}. Received: method={method!r}"
        )
    check_int("batch_size", batch, allow_none=True)


def sample_with_logits(
    model,
    noise,
    *,
    labels=None,
    condition=None,
    temperature=1.0,
    top_p=None,
    method="fast",
    progress=True,
):
    """Samples from `model` with the given uniform noise.

    Like `sample`, but takes the noise `(n, H, W, C)` itself and also
    returns the logits each sub-pixel was drawn from.

    Returns:
        `(samples, logits)`: float32 `(n, H, W, C)` pixel values and
        float32 `(n, H, W, C, levels)` logits.
    """
    _check_arguments(model, noise.shape[0], temperature, top_p, method, None)
    labels = check_labels(model, labels, noise.shape[0])
    condition = check_condition(model, condition, noise.shape[0])
    run = sample_fast if method == "fast" else sample_naive
    return run(
        model,
        noise,
        labels,
        temperature,
        top_p,
        progress,
        condition=condition,
    )


def sample(
    model,
    num_samples,
    *,
    temperature=1.0,
    top_p=None,
    seed=None,
    method="fast",
    batch_size=None,
    progress=True,
    labels=None,
    condition=None,
):
    """Generates images from an autoregressive model.

    Args:
        model: a model from `pixel_models.models` (or one loaded with
            `keras.models.load_model`).
        num_samples: number of images.
        temperature: softmax temperature (> 0); < 1 sharpens.
        top_p: nucleus sampling: draw only from the smallest set of values
            whose probability reaches `top_p` (None: all values).
        seed: seed of the uniform noise; equal seeds give equal samples,
            whatever the method and batch size.
        method: `"fast"` (cached, one pixel's worth of work per step) or
            `"naive"` (the reference: a full forward pass per sub-pixel).
        batch_size: images generated at once (default: all).
        progress: show a progress bar.
        labels: for a class-conditional model, the class of every image
            (`(num_samples,)` integers) or one class for all.
        condition: for a model conditioned on a small image (built with
            `condition_shape`), the small image of every sample
            (`(num_samples, s, s, C)`) or one for all.

    Returns:
        uint8 NumPy array `(num_samples, H, W, C)`.

    Example:
    >>> model = build_pixelcnn((8, 8, 1), levels=2, num_layers=1, filters=4)
    >>> sample(model, 4, seed=0, progress=False).shape  # doctest: +SKIP
    (4, 8, 8, 1)
    """
    _check_arguments(model, num_samples, temperature, top_p, method, batch_size)
    labels = check_labels(model, labels, num_samples)
    condition = check_condition(model, condition, num_samples)
    shape = (num_samples, *model.inputs[0].shape[1:])
    noise = np.random.default_rng(seed).random(shape)
    batch_size = batch_size or num_samples
    out = []
    for start in range(0, num_samples, batch_size):
        stop = start + batch_size
        batch = None if labels is None else labels[start:stop]
        small = None if condition is None else condition[start:stop]
        run = sample_fast if method == "fast" else sample_naive
        extra = {"keep_logits": False} if method == "fast" else {}
        x, _ = run(
            model,
            noise[start:stop],
            batch,
            temperature,
            top_p,
            progress,
            condition=small,
            **extra,
        )
        out.append(x)
    return np.concatenate(out).astype("uint8")


def _known_mask(known, n, height, width):
    """`known` as a boolean `(n, H, W)` mask of the given pixels."""
    if isinstance(known, (bool, np.bool_)) or (
        not isinstance(known, (int, np.integer)) and np.ndim(known) == 0
    ):
        raise ValueError(
            "known must be an int (the number of top rows given) or a "
            f"boolean mask of shape ({height}, {width}) or ({n}, {height}, "
            f"{width}). Received: known={known!r}"
        )
    if isinstance(known, (int, np.integer)):
        if not 0 <= known <= height:
            raise ValueError(
                f"known must be a number of rows in [0, {height}]. "
                f"Received: known={known}"
            )
        mask = np.zeros((n, height, width), bool)
        mask[:, :known] = True
        return mask
    mask = np.asarray(known)
    if mask.dtype != bool or mask.shape not in (
        (height, width),
        (n, height, width),
    ):
        raise ValueError(
            f"known must be a boolean mask of shape ({height}, {width}) or "
            f"({n}, {height}, {width}), or an int. Received: known of "
            f"shape {mask.shape} and dtype {mask.dtype}"
        )
    return np.broadcast_to(mask, (n, height, width))


def complete(
    model,
    images,
    known,
    *,
    labels=None,
    condition=None,
    num_completions=1,
    temperature=1.0,
    top_p=None,
    seed=None,
    progress=True,
):
    """Completes partly known images (the PixelRNN paper's Figure 1).

    The given pixels are kept; every other one is drawn in raster order
    from the model, given all the pixels before it (given or drawn). An
    autoregressive model conditions only on the past: with a mask that is
    not a raster prefix (say, a hole in the middle), a drawn pixel does
    not see the given pixels after it in raster order, so the completion
    need not agree with them; the given pixels are kept all the same.

    Args:
        model: a model from `pixel_models.models` (or loaded from a file).
        images: `(n, H, W, C)` integer pixel values in `[0, levels - 1]`;
            only the given pixels are read.
        known: an int k (the top k rows are given), or a boolean mask of
            the given pixels, `(H, W)` for all images or `(n, H, W)`.
        labels: for a class-conditional model, the class of every image
            or one for all; None otherwise.
        condition: for a model conditioned on a small image, the small
            image of every image or one for all; None otherwise.
        num_completions: completions of each image.
        temperature: softmax temperature (> 0).
        top_p: nucleus sampling (see `sample`).
        seed: seed of the noise; the same seed gives the same completions.
        progress: show a progress bar.

    Returns:
        uint8 NumPy array `(n, num_completions, H, W, C)`.

    Example:
    >>> model = build_pixelcnn((8, 8, 1), levels=2, num_layers=1, filters=4)
    >>> top = np.zeros((2, 8, 8, 1), "uint8")
    >>> complete(model, top, 4, num_completions=3).shape  # doctest: +SKIP
    (2, 3, 8, 8, 1)
    """
    check_int("num_completions", num_completions)
    x = check_images(model, images)
    n, height, width, _ = x.shape
    _check_arguments(model, n, temperature, top_p, "fast", None)
    mask = _known_mask(known, n, height, width)
    labels = check_labels(model, labels, n)
    condition = check_condition(model, condition, n)
    k = num_completions
    x = np.repeat(x, k, axis=0)
    mask = np.repeat(mask, k, axis=0)
    if labels is not None:
        labels = np.repeat(labels, k)
    if condition is not None:
        condition = np.repeat(condition, k, axis=0)
    noise = np.random.default_rng(seed).random(x.shape)
    out, _ = sample_fast(
        model,
        noise,
        labels,
        temperature,
        top_p,
        progress,
        given=(x, mask),
        keep_logits=False,
        condition=condition,
    )
    return out.astype("uint8").reshape(n, k, *x.shape[1:])


__all__ = [
    "sample_fast",
    "sample_naive",
    "METHODS",
    "check_condition",
    "complete",
    "condition_shape",
    "draw",
    "fast_sampler",
    "float32_model",
    "image_shape",
    "model_graph",
    "model_inputs",
    "model_levels",
    "num_classes",
    "sample",
    "sample_with_logits",
]
