"""Diagonal BiLSTM (PixelRNN paper, Sec. 3.2)."""

import keras
import numpy as np
from keras import ops

from pixel_models.layers.lstm_cell import (
    LineLSTMCell,
    check_units,
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
        # Diagonals (columns of the skewed map) are the time axis.
        self.rnns = [
            keras.layers.RNN(cell, return_sequences=True, name=f"rnn_{d}")
            for cell, d in zip(self.cells, ("forward", "backward"), strict=True)
        ]

    def build(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:3]:
            raise ValueError(
                "DiagonalBiLSTM expects (batch, height, width, channels) "
                f"with known sizes. Received: input_shape={input_shape}"
            )
        height, width = input_shape[1], input_shape[2]
        steps = width + height - 1
        for conv, rnn in zip(self.input_to_state, self.rnns, strict=True):
            conv.build(input_shape)
            rnn.build((input_shape[0], steps, height, 4 * self.units + 1))
        self.valid = ops.convert_to_tensor(diagonal_mask(height, width))

    def scan_diagonals(self, x, direction):
        """One diagonal LSTM, left to right: `(B, H, W, C) -> (B, H, W, h)`."""
        z = self.input_to_state[direction](x)
        z = skew(regroup(z, 4, self.color_channels))
        z = ops.moveaxis(z, 2, 1)  # (B, diagonals, H, 4h)
        valid = ops.broadcast_to(self.valid, (*ops.shape(z)[:3], 1))
        h = self.rnns[direction](ops.concatenate([z, valid], axis=-1))
        return unskew(ops.moveaxis(h, 1, 2), x.shape[2])

    def call(self, inputs):
        forward = self.scan_diagonals(inputs, 0)
        backward = self.scan_diagonals(ops.flip(inputs, axis=2), 1)
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
