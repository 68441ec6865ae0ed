"""The fast sampler driven one sub-pixel at a time from Python.

`sample` draws inside one compiled call per row. An entropy coder cannot:
its decoder must turn each sub-pixel's probabilities into a value before
the next sub-pixel's are known. `PixelStepper` runs the same layer steps
as the fast samplers (`FastSampler.row_start`, `channel_logits`,
`pixel_end`, `row_end`; `ShiftedSampler.start_row`, `pixel_params`,
`pixel_end`), each compiled once, and hands every sub-pixel's
log-probabilities to a Python callback that returns its values. The
encoder and the decoder of `pixel_models.compression` both run it, with
the same batch, so they see the same probabilities bit for bit.
"""

import keras
import numpy as np
from keras import ops

from pixel_models.logistic_mixture import channel_log_probs
from pixel_models.sampling.compile import compile_for_backend
from pixel_models.sampling.fast import FastSampler, fast_sampler, no_grad


def _int(value):
    return ops.convert_to_tensor(value, "int32")


def _channel_steps(sampler, model):
    """Each channel's log-probabilities from a mixture head's parameters
    at a pixel, compiled once per channel."""
    levels = sampler.model_levels
    return [
        compile_for_backend(
            lambda p, here, c=c: channel_log_probs(p, here, c, levels), model
        )
        for c in range(sampler.channels)
    ]


class _GraphSteps:
    """The steps of `FastSampler` (every family but PixelCNN++), as its
    row runs them: every layer at the pixel once per colour (once in all
    for a mixture head, whose channels come from its parameters), then
    the pixel's end from the last pass's values."""

    def __init__(self, sampler, n):
        self.sampler, self.n = sampler, n
        model = sampler.model()
        take = lambda tree, j: keras.tree.map_structure(  # noqa: E731
            lambda t: ops.take(t, j, axis=1), tree
        )

        def pixel(c):
            def run(left, carries, columns, j, constants, states, here):
                state = (left, carries, take(columns, j))
                return sampler.channel_logits(state, constants, states, here, c)

            return compile_for_backend(run, model)

        # A mixture head's parameters see nothing of the pixel: one pass
        # gives them, and each channel's log-probabilities come from them.
        passes = 1 if sampler.mixture else sampler.channels
        self._pixel = [pixel(c) for c in range(passes)]
        self._channel = (
            _channel_steps(sampler, model) if sampler.mixture else []
        )
        self._end = compile_for_backend(
            lambda left, constants, values, here: sampler.pixel_end(
                (left, None, None), constants, values, here
            ),
            model,
        )
        self._start = compile_for_backend(
            lambda constants, state, row: sampler.row_start(
                constants, state, row, n
            ),
            model,
        )
        self._row_end = compile_for_backend(sampler.row_end, model)

    def initial(self, constants):
        state, self.starts = self.sampler.initial(self.n, constants)
        return state

    def start_row(self, state, constants, i):
        above, states, columns, left = self._start(constants, state, _int(i))
        return {
            "above": above, "states": states, "columns": columns,
            "left": left, "carries": self.starts, "kept": [], "carried": [],
        }  # fmt: skip

    def _args(self, row, j, constants):
        return (
            row["left"], row["carries"], row["columns"], _int(j), constants,
            row["states"],
        )  # fmt: skip

    def log_probs(self, row, j, c, constants, here):
        if c < len(self._pixel):
            row["values"], row["new_carries"], out = self._pixel[c](
                *self._args(row, j, constants), here
            )
            return out
        params = row["values"][self.sampler.output]
        return self._channel[c](params, here)

    def end_pixel(self, row, j, constants, here):
        left, kept = self._end(row["left"], constants, row["values"], here)
        row["kept"].append(kept)
        row["carried"].append(row["new_carries"])
        row["left"], row["carries"] = left, row["new_carries"]

    def end_row(self, row):
        stack = lambda *t: ops.stack(t, axis=1)  # noqa: E731
        return self._row_end(
            row["above"],
            row["states"],
            keras.tree.map_structure(stack, *row["kept"]),
            keras.tree.map_structure(stack, *row["carried"]),
        )


class _ShiftedSteps:
    """The steps of `ShiftedSampler` (PixelCNN++): a pixel's mixture
    parameters once, then each channel's log-probabilities from them."""

    def __init__(self, sampler, n):
        self.sampler, self.n = sampler, n
        model = sampler.model()
        jit = {"jit_compile": False}  # as its sampler (shifted.py)
        self._start = compile_for_backend(sampler.start_row, model, **jit)
        self._params = compile_for_backend(sampler.pixel_params, model, **jit)
        self._end = compile_for_backend(sampler.pixel_end, model, **jit)
        self._channel = _channel_steps(sampler, model)

    def initial(self, constants):
        return self.sampler.initial(self.n, constants)[0]

    def start_row(self, state, constants, i):
        return {"rows": self._start(state, constants, _int(i)), "i": _int(i)}

    def log_probs(self, row, j, c, constants, here):
        if c == 0:
            row["rows"], row["params"] = self._params(
                row["rows"], constants, row["i"], _int(j)
            )
        return self._channel[c](row["params"], here)

    def end_pixel(self, row, j, constants, here):
        row["rows"] = self._end(row["rows"], constants, _int(j), here)

    def end_row(self, row):
        return row["rows"]


class PixelStepper:
    """One model's fast sampler, a sub-pixel at a time, for `n` images.

    Args:
        model: any model the fast sampler runs.
        n: the batch size.
    """

    def __init__(self, model, n):
        sampler = fast_sampler(model)
        self.shape = (sampler.height, sampler.width, sampler.channels)
        self.sampler, self.n = sampler, n
        # Compiled once per sampler (kept with its model) and batch size:
        # the encoder and the decoder of one process share them.
        kept = sampler.__dict__.setdefault("steppers", {})
        if n not in kept:
            graph = isinstance(sampler, FastSampler)
            kept[n] = (_GraphSteps if graph else _ShiftedSteps)(sampler, n)
        self.steps = kept[n]

    def run(self, choose, labels=None, condition=None, on_row=None):
        """Steps through every sub-pixel in raster order.

        Args:
            choose: `choose(i, j, c, log_probs) -> values`: given the
                sub-pixel's log-probabilities `(n, levels)` up to a
                constant per image (a categorical head's logits; float32
                NumPy), its values `(n,)` (integers in `[0, levels)`).
            labels, condition: the model's other inputs, as for `sample`.
            on_row: called with no argument after each row.

        Returns:
            The images chosen, `(n, H, W, C)` uint8.
        """
        steps = self.steps
        height, width, channels = self.shape
        images = np.zeros((self.n, *self.shape), "float32")
        with no_grad():
            values = [
                ops.convert_to_tensor(v)
                for v in (labels, condition)
                if v is not None
            ]
            constants = self.sampler.constants(values)
            state = steps.initial(constants)
            for i in range(height):
                row = steps.start_row(state, constants, i)
                for j in range(width):
                    for c in range(channels):
                        here = ops.convert_to_tensor(images[:, i, j])
                        log_probs = steps.log_probs(row, j, c, constants, here)
                        log_probs = ops.convert_to_numpy(log_probs)
                        images[:, i, j, c] = choose(i, j, c, log_probs)
                    here = ops.convert_to_tensor(images[:, i, j])
                    steps.end_pixel(row, j, constants, here)
                state = steps.end_row(row)
                if on_row is not None:
                    on_row()
        return images.astype("uint8")
