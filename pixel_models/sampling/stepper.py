"""The fast sampler driven one sub-pixel at a time from Python.

`sample` draws inside one compiled call per row. An entropy coder cannot:
its decoder must turn each sub-pixel's probabilities into a value before
the next sub-pixel's are known. `PixelStepper` runs the same one-pixel
steps as the compiled row, through the samplers' one contract
(`contract.OnePixelSampler`: `start_row`, `pixel_pass`, `log_probs`,
`end_pixel`, `kept`, `end_row`), each compiled once, and hands every
sub-pixel's log-probabilities to a Python callback that returns its
values. The encoder and the decoder of `pixel_models.compression` both
run it, with the same batch, so they see the same probabilities bit for
bit.
"""

import keras
import numpy as np
from keras import ops

from pixel_models.sampling.compile import compile_for_backend
from pixel_models.sampling.fast import fast_sampler, no_grad


def _int(value):
    return ops.convert_to_tensor(value, "int32")


def _column(columns, j):
    """Pixel `j`'s column of a row's `columns` (`(W, ...)`)."""
    return keras.tree.map_structure(lambda t: ops.take(t, j, axis=0), columns)


def _compiled_steps(sampler):
    """The sampler's steps compiled for the backend, a pixel's column
    taken from the row's columns inside: a dict by the steps' names.

    `at` below is `(constants, context, carry, columns, j, here)`;
    channel `c`'s step is `steps["channel"][c](*at, pixel) -> (pixel,
    log_probs)`.
    """

    def compiled(function, jit_compile=sampler.jit_compile):
        model = sampler.model()
        return compile_for_backend(function, model, jit_compile)

    # A channel's distribution compiles with XLA (on TensorFlow) in
    # every sampler: with its pass where the pass does too, in a function
    # of its own where it does not (PixelCNN++). The coder has always
    # computed it so, and a file decodes only where the decoder's numbers
    # are the encoder's, bit for bit.
    def channel(c):
        """Channel `c`'s step: `(*at, pixel) -> (pixel, log_probs)`."""

        def pixel_pass(constants, context, carry, columns, j, here):
            column = _column(columns, j)
            return sampler.pixel_pass(
                constants, context, carry, column, here, c
            )

        def log_probs(pixel, here):
            return sampler.log_probs(pixel, here, c)

        if c >= sampler.passes:  # from the pixel's last pass
            run_log_probs = compiled(log_probs, jit_compile=True)
            return lambda *at, pixel: (pixel, run_log_probs(pixel, at[-1]))
        if sampler.jit_compile:

            def both(*at):
                pixel = pixel_pass(*at)
                return pixel, log_probs(pixel, at[-1])

            run_both = compiled(both)
            return lambda *at, pixel: run_both(*at)
        run_pass = compiled(pixel_pass)
        run_log_probs = compiled(log_probs, jit_compile=True)

        def separate(*at, pixel):
            pixel = run_pass(*at)
            return pixel, run_log_probs(pixel, at[-1])

        return separate

    def end_pixel(constants, context, carry, columns, j, here, pixel):
        column = _column(columns, j)
        carry = sampler.end_pixel(
            constants, context, carry, column, here, pixel
        )
        return carry, sampler.kept(carry)

    return {
        "start_row": compiled(sampler.start_row),
        "channel": [channel(c) for c in range(sampler.channels)],
        "end_pixel": compiled(end_pixel),
        "end_row": compiled(sampler.end_row),
    }


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
        # Compiled once per sampler (kept with its model): the encoder
        # and the decoder of one process share them.
        if "steps" not in sampler.compiled:
            sampler.compiled["steps"] = _compiled_steps(sampler)
        self.steps = sampler.compiled["steps"]

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
        images = np.zeros((self.n, *self.shape), "float32")
        with no_grad():
            constants = self.sampler.given_constants(labels, condition)
            state = self.sampler.initial(self.n, constants)
            for i in range(self.shape[0]):
                state = self._row(choose, images, constants, state, i)
                if on_row is not None:
                    on_row()
        return images.astype("uint8")

    def _row(self, choose, images, constants, state, i):
        """Row `i` of `images`, chosen: the state after it."""
        steps = self.steps
        _, width, channels = self.shape
        context, carry, columns = steps["start_row"](constants, state, _int(i))
        kept = []
        for j in range(width):
            at = (constants, context, carry, columns, _int(j))
            pixel = None
            for c in range(channels):
                here = ops.convert_to_tensor(images[:, i, j])
                step = steps["channel"][c]
                pixel, log_probs = step(*at, here, pixel=pixel)
                log_probs = ops.convert_to_numpy(log_probs)
                images[:, i, j, c] = choose(i, j, c, log_probs)
            here = ops.convert_to_tensor(images[:, i, j])
            carry, pixel_kept = steps["end_pixel"](*at, here, pixel)
            kept.append(pixel_kept)
        stack = lambda *t: ops.stack(t, axis=0)  # noqa: E731
        kept = keras.tree.map_structure(stack, *kept)
        return steps["end_row"](constants, context, carry, kept)
