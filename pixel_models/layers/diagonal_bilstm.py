"""Diagonal BiLSTM (PixelRNN paper, Sec. 3.2)."""

import keras
import numpy as np
from keras import ops

from pixel_models.layers.lstm_cell import (
    LineLSTMCell,
    check_units,
    lstm_gates,
    stack_neighbours,
    scan_lines,
)
from pixel_models.layers.masked_conv import MaskedConv2D, regroup
from pixel_models.layers.skew import skew, unskew


def diagonal_mask(height, width):
    """`(1, W + H - 1, H, 1)`: 1 where skewed column t, row i is a pixel.

    Row i of the skewed map holds pixels in columns i .. i + W - 1.
    """
    t = np.arange(width + height - 1)[:, None]
    i = np.arange(height)[None, :]
    valid = (t - i >= 0) & (t - i < width)
    return valid.astype("float32")[None, :, :, None]


@keras.saving.register_keras_serializable(package="pixel_models")
class DiagonalBiLSTM(keras.layers.Layer):
    """Two diagonal LSTMs that together see the whole causal context.

    Each direction skews its input (row i shifted right by i), so that a
    column of the skewed map is a diagonal of the image, and runs an LSTM
    one diagonal at a time: input-to-state is a 1x1 mask B convolution,
    state-to-state a 2x1 convolution over the previous diagonal, which
    holds the pixel above and the pixel to the left. The second direction
    does the same on the mirrored image; its output is mirrored back and
    shifted down one row, so it never sees the current row (Sec. 3.2).
    The layer's output is the sum of the two.

    States are zero outside the image (the skew's padding), so each
    direction is exactly an LSTM over the pixels of its quadrant.

    Args:
        units: h, the hidden state size; divisible by 3 for RGB.
        color_channels: 1, or 3 for R -> G -> B masking of the gates.

    Input shape:
        `(batch, H, W, C)`; for RGB, C divisible by 3 (R, G, B groups).

    Output shape:
        `(batch, H, W, units)`, units in R, G, B groups.

    Example:
    >>> DiagonalBiLSTM(6, color_channels=3)(np.zeros((2, 4, 5, 3))).shape
    (2, 4, 5, 6)
    """

    def __init__(self, units, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        check_units(units, color_channels)
        self.units = units
        self.color_channels = color_channels
        self.input_to_state = [
            MaskedConv2D(
                4 * units,
                1,
                "B",
                color_channels,
                use_bias=False,
                name=f"input_to_state_{d}",
            )
            for d in ("forward", "backward")
        ]
        self.cells = [
            LineLSTMCell(units, 2, "causal", True, name=f"cell_{d}")
            for d in ("forward", "backward")
        ]

    def build(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:3]:
            raise ValueError(
                "DiagonalBiLSTM expects (batch, height, width, channels) "
                f"with known sizes. Received: input_shape={input_shape}"
            )
        height, width = input_shape[1], input_shape[2]
        for conv, cell, d in zip(
            self.input_to_state,
            self.cells,
            ("forward", "backward"),
            strict=True,
        ):
            conv.build(input_shape)
            # The cells' weights keep the paths they had under the RNN
            # layers of earlier versions, so weight names stay the same.
            with keras.name_scope(f"rnn_{d}"):
                cell.build((input_shape[0], height, 4 * self.units + 1))
        # (diagonals, H, 1): 1 where the skewed position is a pixel.
        # (diagonals, H, 1): 1 where the skewed position is a pixel.
        self.valid = ops.convert_to_tensor(diagonal_mask(height, width)[0])

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        height, width = inputs.shape[1], inputs.shape[2]
        steps, units = width + height - 1, self.units
        # Both directions in one scan: the right-to-left one runs on the
        # mirrored image. Stacked on the batch axis for the skew, then
        # (diagonals, direction, batch * H, C), time first.
        x = ops.concatenate([inputs, ops.flip(inputs, axis=2)], axis=0)
        x = ops.reshape(skew(x), (2, batch, height, steps, -1))
        x = ops.reshape(ops.transpose(x, (3, 0, 1, 2, 4)), (steps, 2, -1, x.shape[-1]))
        # The 1x1 input-to-state convolutions as one product per
        # direction on the skewed input (a 1x1 conv without bias maps the
        # skew's zero padding to zero), the gates regrouped in the kernel.
        kernels = ops.stack(
            [
                regroup(
                    ops.reshape(conv.masked_kernel(), (-1, 4 * units)),
                    4,
                    self.color_channels,
                )
                for conv in self.input_to_state
            ]
        )
        z = ops.matmul(x, kernels)  # (diagonals, 2, B * H, 4h)
        z = ops.reshape(z, (steps, 2, batch, height, 4 * units))
        # The gate bias only where the skewed position is a pixel. Before
        # a row starts its input is the skew's zero padding, so with no
        # bias g = 0 there, and c = h = 0 exactly, as the states outside
        # the image must be (what comes after a row ends is never read).
        biases = ops.stack([cell.bias.value for cell in self.cells])
        z = z + biases[:, None, None, :] * self.valid[:, None, None]
        state_kernels = ops.stack(
            [cell.flat_state_kernel() for cell in self.cells]
        )
        k, left = 2, self.cells[0].left_context

        def step(states, inputs):
            h, c = states
            # (2, B, H, h): shift along H, one product per direction.
            neighbours = stack_neighbours(h, k, left)
            neighbours = ops.reshape(neighbours, (2, -1, k * units))
            state = ops.matmul(neighbours, state_kernels)
            h, states = lstm_gates(inputs[0] + ops.reshape(state, ops.shape(inputs[0])), c)
            return h, states

        zeros = ops.zeros((2, batch, height, units), z.dtype)
        h = scan_lines(step, [zeros, zeros], [z])
        # (diagonals, 2, B, H, h) -> (2B, H, diagonals, h) -> unskew.
        h = ops.transpose(h, (1, 2, 3, 0, 4))
        h = ops.reshape(h, (-1, height, steps, units))
        forward, backward = ops.split(unskew(h, width), 2, axis=0)
        backward = ops.flip(backward, axis=2)
        # Sec. 3.2: shift the right-to-left output down one row, so that
        # row i sees only rows < i of the right-hand context.
        backward = ops.pad(backward[:, :-1], ((0, 0), (1, 0), (0, 0), (0, 0)))
        return forward + backward

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "color_channels": self.color_channels,
        }
