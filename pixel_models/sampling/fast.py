"""The exact fast sampler: one compiled call per row, cached state.

The work a layer can do for a whole row runs once per row; then a loop
over the row's pixels runs every layer at one pixel (`keras.ops.scan`
inside `tf.function` with XLA on TensorFlow, `jax.jit` on JAX; PyTorch
runs it eagerly; the row: `OnePixelSampler.row`). `fast_sampler` picks
a model's sampler, `FastSampler` here or, for networks that change
resolution, `shifted.ShiftedSampler`; `sample_fast` runs either.
"""

import weakref

import keras
import numpy as np
from keras import ops

from pixel_models.inputs import mixture_levels
from pixel_models.layers.steps import PixelInput, stock_pixel_step
from pixel_models.logistic_mixture import channel_log_probs
from pixel_models.sampling.plan import SamplerPlan
from pixel_models.sampling.precision import float32_model
from pixel_models.sampling.shifted import ShiftedSampler
from pixel_models.sampling.shifted_plan import uses_shifted_layers


def _push(buffer, value):
    """`buffer` `(n, R, ...)` with its oldest entry dropped and `value`
    `(n, ...)` added last."""
    return ops.concatenate([buffer[:, 1:], value[:, None]], axis=1)


class FastSampler(SamplerPlan):
    """The fast sampler of one model: its plan and its one-pixel steps
    (`OnePixelSampler`), every layer at the pixel once per colour (once
    in all for a mixture head, whose channels come from its parameters).

    Built once per model (and kept while the model lives), compiled once
    per batch size and drawing setting.
    """

    # The one-pixel steps ---------------------------------------------

    def start_row(self, constants, state, row):
        """The layers' whole-row work for row `row`.

        Returns `(context, carry, columns)`: the context holds the rows
        above and the layers' states; the carry, each map's values left
        of the pixel and the layers' carries; the columns, the layers'
        columns (`(W, n, ...)`).
        """
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
            k: ops.zeros((v.shape[0], self.reach, v.shape[-1]), v.dtype)
            for k, v in above.items()
            if k not in late_keys
        }
        starts = state["starts"]
        context = {"above": above, "states": states, "starts": starts}
        first = lambda t: ops.moveaxis(t, 1, 0)  # noqa: E731
        columns = keras.tree.map_structure(first, columns)
        return context, (lefts, starts), columns

    def pixel_pass(self, constants, context, carry, column, here, c):
        """Every layer at the pixel: `(values, new_carries, out)`, every
        layer's output there, its carry to the next pixel, and colour
        `c`'s logits (a mixture head's parameters, every channel's)."""
        left, carries = carry
        states = context["states"]
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
                    column[layer.name],
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
            column[layer.name],
            c * levels,
            levels,
        )
        return values, new_carries, logits

    def log_probs(self, pixel, here, c):
        """Colour `c`'s logits; a mixture's log-probabilities."""
        out = pixel[2]
        if self.mixture:
            out = channel_log_probs(out, here, c, self.model_levels)
        return out

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

    def end_pixel(self, constants, context, carry, column, here, pixel):
        """After the pixel's last colour: the next pixel's left values
        and the layers' carries."""
        values, new_carries, _ = pixel
        left = carry[0]
        values = self._refresh(values, here, left, constants)
        return {k: _push(b, values[k]) for k, b in left.items()}, new_carries

    def kept(self, carry):
        """The pixel's values of the kept maps (the last of its left
        values), and the layers' carries."""
        left, carries = carry
        return {k: b[:, -1] for k, b in left.items()}, carries

    def end_row(self, constants, context, carry, kept):
        """The state after the row: the pixels' kept values pushed onto
        the rows above, their carries stacked on axis 1."""
        last = lambda t: ops.moveaxis(t, 0, 1)  # noqa: E731
        kept, carries = keras.tree.map_structure(last, kept)
        above = dict(context["above"])
        for k, value in kept.items():
            above[k] = _push(above[k], value)
        return {
            "above": above, "states": context["states"],
            "carries": carries, "starts": context["starts"],
        }  # fmt: skip


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
        constants = sampler.given_constants(labels, condition)
        state = sampler.initial(n, constants)
        run = sampler.compiled_row(n, (temperature, top_p, keep_logits))
        for i in range(height):
            state, x, out = run(
                constants,
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
