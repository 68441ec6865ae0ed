"""The fast sampler driven one sub-pixel at a time from Python.

`sample` draws inside one compiled call per row. An entropy coder cannot:
its decoder must turn each sub-pixel's probabilities into a value before
the next sub-pixel's are known. `PixelStepper` runs the same layer steps
(`FastSampler.row_start`, `channel_logits`, `pixel_end`, `row_end`), each
compiled once, and hands every sub-pixel's log-probabilities to a Python
callback that returns its values. The encoder and the decoder of
`pixel_models.compression` both run it, with the same batch, so they see
the same probabilities bit for bit.
"""

import keras
import numpy as np
from keras import ops

from pixel_models.sampling.compile import compile_for_backend
from pixel_models.sampling.fast import FastSampler, _no_grad, fast_sampler


class PixelStepper:
    """One model's fast sampler, a sub-pixel at a time, for `n` images.

    Args:
        model: a model the fast sampler runs (not a PixelCNN++ yet).
        n: the batch size.
    """

    def __init__(self, model, n):
        sampler = fast_sampler(model)
        if not isinstance(sampler, FastSampler):
            raise ValueError(
                f"Model {model.name!r} changes resolution (PixelCNN++): "
                "its sampler has no sub-pixel steps yet, so it cannot "
                "drive an entropy coder."
            )
        self.sampler, self.n = sampler, n
        self.shape = (sampler.height, sampler.width, sampler.channels)
        model = sampler.model()
        take = lambda tree, j: keras.tree.map_structure(  # noqa: E731
            lambda t: ops.take(t, j, axis=1), tree
        )

        def logits(c):
            def run(left, carries, columns, j, constants, states, here):
                state = (left, carries, take(columns, j))
                return sampler.channel_logits(
                    state, constants, states, here, c
                )[2]

            return compile_for_backend(run, model)

        def end(left, carries, columns, j, constants, states, here):
            state = (left, carries, take(columns, j))
            c = sampler.channels - 1
            values, new_carries, _ = sampler.channel_logits(
                state, constants, states, here, c
            )
            new_left, kept = sampler.pixel_end(state, constants, values, here)
            return new_left, kept, new_carries

        self._logits = [logits(c) for c in range(sampler.channels)]
        self._end = compile_for_backend(end, model)
        self._start = compile_for_backend(
            lambda constants, state, row: sampler.row_start(
                constants, state, row, n
            ),
            model,
        )
        self._row_end = compile_for_backend(sampler.row_end, model)

    def run(self, choose, labels=None, condition=None, on_row=None):
        """Steps through every sub-pixel in raster order.

        Args:
            choose: `choose(i, j, c, log_probs) -> values`: given the
                sub-pixel's log-probabilities `(n, levels)` (float32
                NumPy), its values `(n,)` (integers in `[0, levels)`).
            labels, condition: the model's other inputs, as for `sample`.
            on_row: called with no argument after each row.

        Returns:
            The images chosen, `(n, H, W, C)` uint8.
        """
        sampler, n = self.sampler, self.n
        height, width, channels = self.shape
        images = np.zeros((n, *self.shape), "float32")
        with _no_grad():
            values = [
                ops.convert_to_tensor(v)
                for v in (labels, condition)
                if v is not None
            ]
            constants = sampler.constants(values)
            state, starts = sampler.initial(n, constants)
            for i in range(height):
                above, states, columns, left = self._start(
                    constants, state, ops.convert_to_tensor(i, "int32")
                )
                carries, kept_row, carries_row = starts, [], []
                for j in range(width):
                    index = ops.convert_to_tensor(j, "int32")
                    args = (left, carries, columns, index, constants, states)
                    for c in range(channels):
                        here = ops.convert_to_tensor(images[:, i, j])
                        log_probs = self._logits[c](*args, here)
                        chosen = choose(
                            i, j, c, ops.convert_to_numpy(log_probs)
                        )
                        images[:, i, j, c] = chosen
                    here = ops.convert_to_tensor(images[:, i, j])
                    left, kept, carries = self._end(*args, here)
                    kept_row.append(kept)
                    carries_row.append(carries)
                stack = lambda *t: ops.stack(t, axis=1)  # noqa: E731
                state = self._row_end(
                    above,
                    states,
                    keras.tree.map_structure(stack, *kept_row),
                    keras.tree.map_structure(stack, *carries_row),
                )
                if on_row is not None:
                    on_row()
        return images.astype("uint8")
