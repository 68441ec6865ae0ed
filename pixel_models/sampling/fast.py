"""The exact fast sampler: one compiled call per row, cached state.

The work a layer can do for a whole row runs once per row; then a loop
over the row's pixels runs every layer at one pixel (`keras.ops.scan`
inside `tf.function` with XLA on TensorFlow, `jax.jit` on JAX; PyTorch
runs it eagerly).
"""

import weakref

import keras
import numpy as np
from keras import ops

from pixel_models.inputs import mixture_levels
from pixel_models.layers.steps import PixelInput, scan, stock_pixel_step
from pixel_models.logistic_mixture import channel_log_probs
from pixel_models.sampling.compile import compile_for_backend
from pixel_models.sampling.draw import draw
from pixel_models.sampling.plan import SamplerPlan
from pixel_models.sampling.precision import float32_model
from pixel_models.sampling.shifted import ShiftedSampler, uses_shifted_layers


def _push(buffer, value):
    """`buffer` `(n, R, ...)` with its oldest entry dropped and `value`
    `(n, ...)` added last."""
    return ops.concatenate([buffer[:, 1:], value[:, None]], axis=1)


class FastSampler(SamplerPlan):
    """The fast sampler of one model: its plan and compiled row function.

    Built once per model (and kept while the model lives), compiled once
    per batch size and drawing setting.
    """

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
            inputs = self.pixel_inputs(in_keys, values, left, constants)
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
        if self.mixture:  # the pixel's parameters, every channel's
            return values, new_carries, values[self.output]
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
            inputs = self.pixel_inputs(in_keys, values, left, constants)
            values[out_keys[0]] = stock_pixel_step(layer, inputs)
        return values

    def row_start(self, constants, state, row, n):
        """The layers' whole-row work for row `row`: `(above, states,
        columns, lefts)`, what the row's pixels need."""
        above = dict(state["above"])
        states, columns, late_keys = {}, {}, set()
        for layer, in_keys, out_keys in self.steps:
            name = layer.name
            inputs = self.row_inputs(in_keys, above, constants)
            if hasattr(layer, "pixel_row"):
                states[name], columns[name], late = layer.pixel_row(
                    inputs, state["states"][name], state["carries"][name], row
                )
                for index, value in late.items():
                    late_keys.add(out_keys[index])
                    if out_keys[index] in above:
                        above[out_keys[index]] = _push(
                            above[out_keys[index]], value
                        )
            else:
                states[name], columns[name] = state["states"][name], {}
        lefts = {
            k: ops.zeros((n, self.reach, v.shape[-1]), v.dtype)
            for k, v in above.items()
            if k not in late_keys
        }
        return above, states, columns, lefts

    def channel_logits(self, pixel_state, constants, states, here, c):
        """Colour `c`'s logits (a mixture's: its log-probabilities) at
        the pixel, given the pixel's earlier colours `here` `(n, C)`.

        `pixel_state` is `(left, carries, column)`. Returns `(values,
        new_carries, logits (n, levels))`.
        """
        left, carries, column = pixel_state
        values, new_carries, out = self._pixel(
            here, left, carries, column, constants, states, c
        )
        if self.mixture:
            out = channel_log_probs(out, here, c, self.model_levels)
        return values, new_carries, out

    def pixel_end(self, pixel_state, constants, values, here):
        """After the pixel's last colour: `(left, kept)`, the next pixel's
        left values and the pixel's values of the kept maps."""
        left = pixel_state[0]
        values = self._refresh(values, here, left, constants)
        new_left = {k: _push(b, values[k]) for k, b in left.items()}
        return new_left, {k: values[k] for k in left}

    def row_end(self, above, states, kept, carries):
        """The state after the row: `kept` and `carries` stacked over the
        row's pixels on axis 1."""
        above = dict(above)
        for k, value in kept.items():
            above[k] = _push(above[k], value)
        return {"above": above, "states": states, "carries": carries}

    def row(self, constants, starts, state, row, noise, given, mask, options):
        """Samples one row. `noise`, `given`: `(n, W, C)`; `mask`: `(n, W)`.

        Returns `(state, pixels (n, W, C), logits (n, W, C, levels))`.
        """
        temperature, top_p, keep_logits = options
        n, channels = noise.shape[0], self.channels
        above, states, columns, lefts = self.row_start(constants, state, row, n)
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
                # A mixture head's parameters see nothing of the pixel:
                # one pass gives them, and its channels are drawn from them.
                if c == 0 or not self.mixture:
                    values, new_carries, out = self._pixel(
                        here, left, carries, column, constants, states, c
                    )
                    params = out
                if self.mixture:
                    out = channel_log_probs(params, here, c, self.model_levels)
                logits.append(out)
                v = draw(out, noise_j[:, c], temperature, top_p)
                v = ops.where(mask_j, given_j[:, c], ops.cast(v, "float32"))
                here = ops.where(channel == c, v[:, None], here)
            new_left, kept = self.pixel_end(
                (left, carries, column), constants, values, here
            )
            ys = (here, kept, new_carries)
            if keep_logits:
                ys = ys + (ops.stack(logits, axis=1),)
            return (new_left, new_carries), ys

        _, ys = scan(pixel, (lefts, starts), xs)
        last = lambda t: ops.moveaxis(t, 0, 1)  # noqa: E731
        pixels, kept, carries = keras.tree.map_structure(last, ys[:3])
        state = self.row_end(above, states, kept, carries)
        logits = last(ys[3]) if keep_logits else None
        return state, pixels, logits

    def compiled_row(self, n, options):
        """`row` compiled for the backend, once per batch size and options."""
        key = (n, *options)
        if key not in self.compiled:
            self.compiled[key] = compile_for_backend(
                lambda *args: self.row(*args, options), self.model()
            )
        return self.compiled[key]


class no_grad:
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
        kind = ShiftedSampler if uses_shifted_layers(model) else FastSampler
        sampler = _SAMPLERS[model] = kind(
            float32_model(model), mixture_levels(model)
        )
    else:
        float32_model(model)  # the copy, if any, takes the current weights
    return sampler


def sample_fast(
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
    bar = keras.utils.Progbar(height * width, verbose=int(progress))
    rows, logits = [], []
    with no_grad():
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
