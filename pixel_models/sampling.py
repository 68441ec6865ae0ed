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
"""

import weakref

import keras
import numpy as np
from keras import ops

from pixel_models.checks import check_int
from pixel_models.inputs import (
    check_condition,
    check_images,
    check_labels,
    condition_shape,
    image_shape,
    model_inputs,
    model_levels,
    num_classes,
)
from pixel_models.layers.steps import (
    PixelInput,
    is_stock_step,
    scan,
    stock_pixel_step,
)

METHODS = ("fast", "naive")


def _check_arguments(model, num_samples, temperature, top_p, method, batch):
    shape = getattr(model, "output_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 5):
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


def draw(logits, noise, temperature=1.0, top_p=None):
    """Draws values from logits by inverse CDF of the given uniform noise.

    In `keras.ops` (float32), so that it runs inside the compiled sampler;
    the naive sampler uses it too.

    Args:
        logits: `(n, levels)`.
        noise: `(n,)` uniform numbers in [0, 1).
        temperature: divides the logits.
        top_p: keep the smallest set of most likely values whose
            probability reaches `top_p` (nucleus sampling), renormalised;
            ties go to the lower value.

    Returns:
        int32 tensor `(n,)` of values in `[0, levels - 1]`.
    """
    p = ops.softmax(ops.cast(logits, "float32") / temperature, axis=-1)
    levels = p.shape[-1]
    if top_p is not None and top_p < 1:
        # The mass of the values that come before each value in a stable
        # sort by decreasing probability; keep a value while that mass
        # is still short of top_p. (Pairwise rather than a sort and a
        # scatter: the same ops on every backend.)
        index = ops.arange(levels)
        p_k, p_m = p[:, :, None], p[:, None, :]
        before = ops.logical_or(
            ops.greater(p_m, p_k),
            ops.logical_and(
                ops.equal(p_m, p_k), index[None, None, :] < index[None, :, None]
            ),
        )
        mass = ops.sum(ops.where(before, p_m, 0.0), axis=-1)
        # Float32 sums: a mass within rounding of top_p has reached it.
        p = ops.where(mass < top_p - 1e-6, p, 0.0)
        p = p / ops.sum(p, axis=-1, keepdims=True)
    cdf = _cumsum(p)
    noise = ops.cast(noise, "float32")[:, None]
    values = ops.sum(ops.cast(cdf <= noise, "int32"), axis=-1)
    return ops.minimum(values, levels - 1)


def _cumsum(p):
    """`cumsum(p, axis=-1)` of `(n, L)` in blocks of about sqrt(L), as two
    small matrix products: on TensorFlow's CPU a cumsum over 256 values
    cost 3.6x as much, and it ran at every sub-pixel."""
    n, levels = p.shape
    block = int(np.ceil(np.sqrt(levels)))
    if block < 4:
        return ops.cumsum(p, axis=-1)
    p = ops.pad(p, ((0, 0), (0, block * block - levels)))
    upper = np.triu(np.ones((block, block), "float32"))
    inner = ops.matmul(ops.reshape(p, (-1, block, block)), upper)
    offsets = ops.matmul(
        inner[:, :, -1], upper - np.eye(block, dtype="float32")
    )
    cdf = ops.reshape(inner + offsets[:, :, None], (-1, block * block))
    return cdf[:, :levels]


def _progbar(total, progress):
    return keras.utils.Progbar(total, verbose=1 if progress else 0)


_FLOAT32_COPIES = weakref.WeakKeyDictionary()


def _computes_in_float32(model):
    return all(
        layer.compute_dtype == "float32" for layer in (model, *model.layers)
    )


def float32_model(model):
    """`model` computing in float32: itself, or a float32 copy of it.

    The copy is made once per model and takes the model's current
    weights at every call, so a model trained further between two calls
    samples with its new weights.
    """
    if _computes_in_float32(model):
        return model
    copy = _FLOAT32_COPIES.get(model)
    if copy is None:
        policy = keras.config.dtype_policy()
        # Layers that make their sublayers take the global policy.
        keras.config.set_dtype_policy("float32")
        try:
            copy = keras.models.clone_model(
                model,
                clone_function=lambda layer: layer.__class__.from_config(
                    {**layer.get_config(), "dtype": "float32"}
                ),
            )
        finally:
            keras.config.set_dtype_policy(policy)
        _FLOAT32_COPIES[model] = copy
    copy.set_weights(model.get_weights())
    return copy


def _naive(
    model,
    noise,
    labels,
    temperature,
    top_p,
    progress,
    given=None,
    condition=None,
):
    """One full forward pass per sub-pixel. Returns (samples, logits)."""
    model = float32_model(model)
    n, height, width, channels = noise.shape
    levels = model.output_shape[-1]
    x = np.zeros(noise.shape, "float32")
    logits = np.zeros((*noise.shape, levels), "float32")
    bar = _progbar(height * width, progress)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                inputs = model_inputs(x, labels, condition)
                out = np.asarray(model.predict_on_batch(inputs))[:, i, j, c]
                logits[:, i, j, c] = out
                values = np.asarray(
                    draw(out, noise[:, i, j, c], temperature, top_p)
                )
                if given is not None:
                    images, mask = given
                    values = np.where(mask[:, i, j], images[:, i, j, c], values)
                x[:, i, j, c] = values
            bar.add(1)
    return x, logits


# The fast sampler ----------------------------------------------------


def model_graph(model):
    """The layers of a functional model, in order, with their tensors.

    Public Keras API only: `model.inputs`, `model.layers`, `layer.input`,
    `layer.output` (so a layer may be called once in the model).

    Returns:
        `(inputs, nodes, output)`: the keys of the model's inputs; one
        `(layer, input_keys, output_keys)` per layer, the input keys in
        the structure of the layer's call inputs, the output keys a flat
        list; and the key of the model's output.
    """
    keys = {id(t): f"input:{i}" for i, t in enumerate(model.inputs)}
    nodes = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        outputs = keras.tree.flatten(layer.output)
        try:
            inputs = keras.tree.map_structure(
                lambda t: keys[id(t)], layer.input
            )
        except KeyError:
            raise ValueError(
                f"The fast sampler needs the layers of model {model.name!r} "
                f"in the order they are called; layer {layer.name!r} comes "
                "before one of its inputs."
            ) from None
        names = [f"{layer.name}:{k}" for k in range(len(outputs))]
        keys.update(
            {id(t): name for t, name in zip(outputs, names, strict=True)}
        )
        nodes.append((layer, inputs, names))
    (output,) = model.outputs
    return [keys[id(t)] for t in model.inputs], nodes, keys[id(output)]


def _has_step(layer):
    return hasattr(layer, "pixel_step") or is_stock_step(layer)


class _Sampler:
    """The fast sampler of one model: its plan and compiled row function.

    Built once per model (and kept while the model lives), compiled once
    per batch size and drawing setting.
    """

    def __init__(self, model):
        # A weak reference: the sampler is kept with the model (in a
        # WeakKeyDictionary), so it must not keep the model alive.
        self.model = weakref.ref(model)
        inputs, nodes, self.output = model_graph(model)
        self.pixels = inputs[0]
        self.constant_inputs = inputs[1:]
        self.height, self.width, self.channels = model.inputs[0].shape[1:]
        self.model_levels = model.output_shape[-1]
        varying = {self.pixels}
        self.constant_nodes, self.steps = [], []
        for layer, in_keys, out_keys in nodes:
            if not varying.intersection(keras.tree.flatten(in_keys)):
                self.constant_nodes.append((layer, in_keys, out_keys))
                continue
            if not _has_step(layer):
                raise ValueError(
                    f"The fast sampler cannot run layer {layer.name!r} of "
                    f"type {type(layer).__name__} one pixel at a time. Give "
                    "it pixel_step (see docs/generation.md), or use "
                    "method='naive'."
                )
            varying.update(out_keys)
            self.steps.append((layer, in_keys, out_keys))
        if self.output not in varying:
            raise ValueError(
                f"The output of model {model.name!r} does not depend on "
                "its pixels input."
            )
        reach = [getattr(layer, "pixel_reach", 0) for layer, *_ in self.steps]
        self.reach = max(1, *reach)
        # Maps read above or left of the pixel keep their last rows.
        self.history = set()
        for layer, in_keys, _ in self.steps:
            if getattr(layer, "pixel_reach", 0):
                self.history.update(keras.tree.flatten(in_keys))
        self.history &= varying
        self.head = self._logits_head()
        self.compiled = {}

    def _logits_head(self):
        """The layer whose output the logits `Reshape` reshapes, if it
        can compute a slice of its output channels (`pixel_step_slice`):
        then a colour's pass computes only that colour's logits."""
        reshape, in_keys, out_keys = self.steps[-1]
        if out_keys != [self.output] or not isinstance(
            reshape, keras.layers.Reshape
        ):
            return None
        for layer, layer_in, layer_out in self.steps[:-1]:
            if in_keys in layer_out:
                readers = [
                    n for n in self.steps if in_keys in keras.tree.flatten(n[1])
                ]
                if hasattr(layer, "pixel_step_slice") and len(readers) == 1:
                    return layer, layer_in
        return None

    # Eager set-up -----------------------------------------------------

    def constants(self, values):
        """Every tensor that does not depend on the pixels (the labels and
        their embedding), computed once."""
        known = dict(zip(self.constant_inputs, values, strict=True))
        for layer, in_keys, out_keys in self.constant_nodes:
            out = layer(keras.tree.map_structure(known.get, in_keys))
            known.update(zip(out_keys, keras.tree.flatten(out), strict=True))
        return known

    def _row_inputs(self, in_keys, above, constants):
        return keras.tree.map_structure(
            lambda k: constants[k] if k in constants else above.get(k), in_keys
        )

    def _pixel_inputs(self, in_keys, values, left, constants):
        return keras.tree.map_structure(
            lambda k: (
                constants[k]
                if k in constants
                else PixelInput(values.get(k), left.get(k))
            ),
            in_keys,
        )

    def initial(self, n, constants):
        """The state before row 0, and the carries at a row's start."""
        r, w = self.reach, self.width
        channels = {self.pixels: self.channels}
        for layer, _, out_keys in self.steps:
            shapes = keras.tree.flatten(layer.output)
            channels.update(
                {k: t.shape[-1] for k, t in zip(out_keys, shapes, strict=True)}
            )
        above = {
            k: ops.zeros((n, r, w, channels[k]), "float32")
            for k in self.history
        }
        states, carries, starts = {}, {}, {}
        for layer, in_keys, _ in self.steps:
            inputs = self._row_inputs(in_keys, above, constants)
            init = getattr(layer, "pixel_init", None)
            state, carry = init(inputs) if init else ({}, {})
            states[layer.name], starts[layer.name] = state, carry
            carries[layer.name] = keras.tree.map_structure(
                lambda t: ops.repeat(t[:, None], w, axis=1), carry
            )
        state = {"above": above, "states": states, "carries": carries}
        return state, starts

    # The compiled row -------------------------------------------------

    def _pixel(self, here, left, carries, columns, constants, states, c):
        """Every layer at the current pixel: values by key, new carries,
        and the logits of colour c, `(n, levels)`."""
        values = {self.pixels: here}
        new_carries = {}
        steps = self.steps
        if self.head is not None:
            steps = [n for n in steps[:-1] if n[0] is not self.head[0]]
        for layer, in_keys, out_keys in steps:
            inputs = self._pixel_inputs(in_keys, values, left, constants)
            if hasattr(layer, "pixel_step"):
                out, new_carries[layer.name] = layer.pixel_step(
                    inputs,
                    states[layer.name],
                    columns[layer.name],
                    carries[layer.name],
                )
            else:
                out = stock_pixel_step(layer, inputs)
                new_carries[layer.name] = carries[layer.name]
            out = out if isinstance(out, (list, tuple)) else [out]
            for key, value in zip(out_keys, out, strict=True):
                if value is not None:
                    values[key] = value
        if self.head is None:
            return values, new_carries, values[self.output][:, c]
        layer, in_key = self.head
        levels = self.model_levels
        new_carries[layer.name] = carries[layer.name]
        new_carries[self.steps[-1][0].name] = carries[self.steps[-1][0].name]
        logits = layer.pixel_step_slice(
            PixelInput(values[in_key], left.get(in_key)),
            states[layer.name],
            columns[layer.name],
            c * levels,
            levels,
        )
        return values, new_carries, logits

    def _refresh(self, values, here, left, constants):
        """Stock layers again, after the pixel's last colour is drawn.

        The layers with their own steps cannot depend on the last colour
        at the pixel (mask A), but a stock layer ahead of the first
        masked convolution (the input's rescaling) does.
        """
        values = {**values, self.pixels: here}
        for layer, in_keys, out_keys in self.steps:
            varying = [
                k for k in keras.tree.flatten(in_keys) if k not in constants
            ]
            if hasattr(layer, "pixel_step") or any(
                k not in values for k in varying
            ):
                continue
            inputs = self._pixel_inputs(in_keys, values, left, constants)
            values[out_keys[0]] = stock_pixel_step(layer, inputs)
        return values

    def row(self, constants, starts, state, row, noise, given, mask, options):
        """Samples one row. `noise`, `given`: `(n, W, C)`; `mask`: `(n, W)`.

        Returns `(state, pixels (n, W, C), logits (n, W, C, levels))`.
        """
        temperature, top_p, keep_logits = options
        above = dict(state["above"])
        states, columns, late_keys = {}, {}, set()

        def push(buffer, value):
            return ops.concatenate([buffer[:, 1:], value[:, None]], axis=1)

        for layer, in_keys, out_keys in self.steps:
            name = layer.name
            inputs = self._row_inputs(in_keys, above, constants)
            if hasattr(layer, "pixel_row"):
                states[name], columns[name], late = layer.pixel_row(
                    inputs, state["states"][name], state["carries"][name], row
                )
                for index, value in late.items():
                    late_keys.add(out_keys[index])
                    if out_keys[index] in above:
                        above[out_keys[index]] = push(
                            above[out_keys[index]], value
                        )
            else:
                states[name], columns[name] = state["states"][name], {}
        n, channels = noise.shape[0], self.channels
        lefts = {
            k: ops.zeros((n, self.reach, v.shape[-1]), v.dtype)
            for k, v in above.items()
            if k not in late_keys
        }
        first = lambda t: ops.moveaxis(t, 1, 0)  # noqa: E731
        xs = (
            keras.tree.map_structure(first, columns),
            first(noise),
            first(given),
            first(mask),
        )
        channel = ops.arange(channels)

        def pixel(carry, x):
            left, carries = carry
            column, noise_j, given_j, mask_j = x
            here = ops.zeros((n, channels), "float32")
            logits = []
            for c in range(channels):
                values, new_carries, out = self._pixel(
                    here, left, carries, column, constants, states, c
                )
                logits.append(out)
                v = draw(out, noise_j[:, c], temperature, top_p)
                v = ops.where(mask_j, given_j[:, c], ops.cast(v, "float32"))
                here = ops.where(channel == c, v[:, None], here)
            values = self._refresh(values, here, left, constants)
            new_left = {k: push(b, values[k]) for k, b in left.items()}
            kept = {k: values[k] for k in left}
            ys = (here, kept, new_carries)
            if keep_logits:
                ys = ys + (ops.stack(logits, axis=1),)
            return (new_left, new_carries), ys

        _, ys = scan(pixel, (lefts, starts), xs)
        last = lambda t: ops.moveaxis(t, 0, 1)  # noqa: E731
        pixels, kept, carries = keras.tree.map_structure(last, ys[:3])
        for k, value in kept.items():
            above[k] = push(above[k], value)
        state = {"above": above, "states": states, "carries": carries}
        logits = last(ys[3]) if keep_logits else None
        return state, pixels, logits

    def compiled_row(self, n, options):
        """`row` compiled for the backend, once per batch size and options.

        On JAX the weights are arguments (through a `StatelessScope`), so
        a sampler made before more training samples from the new weights.
        """
        key = (n, *options)
        if key in self.compiled:
            return self.compiled[key]
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            variables = self.model().weights

            def stateless(values, *args):
                mapping = list(zip(variables, values, strict=True))
                with keras.StatelessScope(state_mapping=mapping):
                    return self.row(*args, options)

            jitted = jax.jit(stateless)

            def run(*args):
                return jitted([v.value for v in variables], *args)

        elif backend == "tensorflow":
            import tensorflow as tf

            # XLA fuses the loop body: 2.3x the images/s of the plain
            # tf.function on two CPU cores (PixelCNN, 28x28, batch 16).
            run = tf.function(
                lambda *args: self.row(*args, options), jit_compile=True
            )
        else:  # PyTorch: eager, op by op.

            def run(*args):
                return self.row(*args, options)

        self.compiled[key] = run
        return run


class _no_grad:
    """`torch.no_grad()` on PyTorch, nothing elsewhere."""

    def __enter__(self):
        self.context = None
        if keras.backend.backend() == "torch":
            import torch

            self.context = torch.no_grad()
            self.context.__enter__()

    def __exit__(self, *exc):
        if self.context is not None:
            self.context.__exit__(*exc)


_SAMPLERS = weakref.WeakKeyDictionary()


def fast_sampler(model):
    """The fast sampler of `model`, made on first use and kept with it."""
    sampler = _SAMPLERS.get(model)
    if sampler is None:
        sampler = _SAMPLERS[model] = _Sampler(float32_model(model))
    else:
        float32_model(model)  # the copy, if any, takes the current weights
    return sampler


def _fast(
    model,
    noise,
    labels,
    temperature,
    top_p,
    progress,
    given=None,
    keep_logits=True,
    condition=None,
):
    """Exact cached sampling, one row per compiled call.

    Returns `(samples, logits)` (logits None without `keep_logits`).
    """
    sampler = fast_sampler(model)
    n, height, width, channels = noise.shape
    if given is None:
        images = np.zeros(noise.shape, "float32")
        mask = np.zeros((n, height, width), bool)
    else:
        images, mask = given
    bar = _progbar(height * width, progress)
    rows, logits = [], []
    with _no_grad():
        values = [
            ops.convert_to_tensor(v)
            for v in (labels, condition)
            if v is not None
        ]
        constants = sampler.constants(values)
        state, starts = sampler.initial(n, constants)
        run = sampler.compiled_row(n, (temperature, top_p, keep_logits))
        for i in range(height):
            state, x, out = run(
                constants,
                starts,
                state,
                ops.convert_to_tensor(i, "int32"),
                ops.convert_to_tensor(noise[:, i], "float32"),
                ops.convert_to_tensor(images[:, i], "float32"),
                ops.convert_to_tensor(np.asarray(mask[:, i])),
            )
            rows.append(ops.convert_to_numpy(x))
            if keep_logits:
                logits.append(ops.convert_to_numpy(out))
            bar.add(width)
    samples = np.stack(rows, axis=1)
    return samples, np.stack(logits, axis=1) if keep_logits else None


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
    run = _fast if method == "fast" else _naive
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
        run = _fast if method == "fast" else _naive
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
    out, _ = _fast(
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
