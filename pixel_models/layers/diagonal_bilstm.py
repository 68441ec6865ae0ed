"""Diagonal BiLSTM (PixelRNN paper, Sec. 3.2)."""

import keras
import numpy as np
from keras import ops

from pixel_models.layers.conditioning import (
    check_map_input,
    map_row,
    split_map_input,
)
from pixel_models.layers.fused_scan import (
    check_fused,
    diagonal_band,
    fused_scan,
    use_fused,
)
from pixel_models.layers.lstm_cell import (
    LineLSTMCell,
    check_units,
    line_lstm_step,
    scan_lines,
)
from pixel_models.layers.masked_conv import MaskedConv2D, regroup
from pixel_models.layers.skew import skew, unskew
from pixel_models.layers.steps import lstm_gates, row_valid, scan


def diagonal_mask(height, width):
    """`(1, W + H - 1, H, 1)`: 1 where skewed column t, row i is a pixel.

    Row i of the skewed map holds pixels in columns i .. i + W - 1.
    """
    t = np.arange(width + height - 1)[:, None]
    i = np.arange(height)[None, :]
    valid = (t - i >= 0) & (t - i < width)
    return valid.astype("float32")[None, :, :, None]


def shift_down(x):
    """Sec. 3.2: the right-to-left output shifted down one row, so that
    row i sees only rows < i of the right-hand context (row 0 zeros)."""
    x = ops.split(x, [x.shape[1] - 1], axis=1)[0]
    return ops.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))


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
        unroll: if True, the `keras.ops` scan over diagonals is unrolled
            into the graph: faster steps on a CPU, much slower tracing
            (see `scan_lines`). Like `keras.layers.RNN(unroll=...)`.
        fused: `"auto"` (default), True or False: whether to run the whole
            scan of both directions, forward and gradient, as one compiled
            loop (`layers/fused_scan.py`; TensorFlow and numba). "auto"
            takes it on TensorFlow on a CPU in float32, outside XLA, where
            it trains several times faster; False keeps the `keras.ops`
            scan, the reference. The same function and weights either
            way, like `keras.layers.LSTM(use_cudnn=...)`.
        condition_map: if True, the layer takes a second input, a map
            `(batch, H, W, d)` computed from a given image (a Multi-Scale
            PixelRNN's upsampled small image); a 1x1 convolution of it is
            added to the input-to-state map of each direction (PixelRNN
            paper, Sec. 3.6).

    Input shape:
        `(batch, H, W, C)`; for RGB, C divisible by 3 (R, G, B groups).
        With `condition_map`, `[x, map]`.

    Output shape:
        `(batch, H, W, units)`, units in R, G, B groups.

    Example:
    >>> DiagonalBiLSTM(6, color_channels=3)(np.zeros((2, 4, 5, 3))).shape
    (2, 4, 5, 6)
    """

    def __init__(
        self,
        units,
        color_channels=1,
        unroll=False,
        condition_map=False,
        fused="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_units(units, color_channels)
        self.units = units
        self.unroll = bool(unroll)
        self.fused = check_fused(fused)
        self.condition_map = bool(condition_map)
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
        if self.condition_map:
            self.map_to_state = [
                keras.layers.Dense(
                    4 * units, use_bias=False, name=f"map_to_state_{d}"
                )
                for d in ("forward", "backward")
            ]

    def build(self, input_shape):
        input_shape, map_shape = check_map_input(self, input_shape)
        if map_shape is not None:
            for dense in self.map_to_state:
                dense.build(map_shape)
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
        # (diagonals, 1, H, 1): 1 where the skewed position is a pixel.
        self.valid = ops.convert_to_tensor(
            np.transpose(diagonal_mask(height, width), (1, 0, 2, 3))
        )

    def call(self, inputs):
        inputs, condition = split_map_input(self, inputs)
        if use_fused(self.fused, inputs.dtype):
            return self._fused_call(inputs, condition)
        height, width = inputs.shape[1], inputs.shape[2]
        units = self.units
        # Both directions in one scan: the right-to-left one runs on the
        # mirrored image. Skewed together (stacked on the batch axis),
        # then diagonals first: (diagonals, 2B, H, C).
        x = ops.concatenate([inputs, ops.flip(inputs, axis=2)], axis=0)
        x = ops.transpose(skew(x), (2, 0, 1, 3))
        biases = [0.0, 0.0]
        if condition is not None:
            # Sec. 3.6: each direction's input-to-state map gets its own
            # 1x1 convolution of the map, skewed like the input.
            forward, backward = (d(condition) for d in self.map_to_state)
            b = ops.concatenate([forward, ops.flip(backward, axis=2)], 0)
            b = ops.transpose(skew(b), (2, 0, 1, 3))
            biases = ops.split(b, 2, axis=1)
        gates, kernels = [], []
        for conv, cell, x_d, bias in zip(
            self.input_to_state,
            self.cells,
            ops.split(x, 2, axis=1),
            biases,
            strict=True,
        ):
            # The 1x1 input-to-state convolution as one matrix product
            # on the skewed input (a 1x1 conv without bias maps the
            # skew's zero padding to zero), the gates regrouped in the
            # kernel. The bias only where the position is a pixel: before
            # a row starts the input is padding, so g = 0 there and
            # c = h = 0 exactly, as states outside the image must be
            # (what comes after a row ends is never read).
            kernel = ops.reshape(conv.masked_kernel(), (-1, 4 * units))
            z = ops.matmul(x_d, regroup(kernel, 4, self.color_channels))
            z = z + bias  # zero in the skew's padding, like the input
            gates.append(z + cell.bias * ops.cast(self.valid, z.dtype))
            kernels.append(cell.gate_kernels())
        # (diagonals, B, H, 2 * 4h) -> (diagonals, 2 * 4, B, H, h): each
        # step takes its eight gate maps apart with one unstack.
        z = ops.concatenate(gates, axis=-1)
        z = ops.reshape(z, (z.shape[0], -1, z.shape[2], 8, units))
        z = ops.transpose(z, (0, 3, 1, 2, 4))
        k, left = 2, self.cells[0].left_context

        def step(states, gates):
            h_f, h_b, c_f, c_b = states
            gates = ops.unstack(gates, 8)
            _, (h_f, c_f) = line_lstm_step(
                gates[:4], h_f, c_f, kernels[0], k, left
            )
            _, (h_b, c_b) = line_lstm_step(
                gates[4:], h_b, c_b, kernels[1], k, left
            )
            return [h_f, h_b, c_f, c_b]

        batch = ops.shape(inputs)[0]
        zeros = ops.zeros((batch, height, units), z.dtype)
        h_f, h_b = scan_lines(step, [zeros] * 4, z, 2, self.unroll)
        # (diagonals, 2B, H, h) -> (2B, H, diagonals, h) -> unskew.
        h = ops.transpose(ops.concatenate([h_f, h_b], axis=1), (1, 2, 0, 3))
        forward, backward = ops.split(unskew(h, width), 2, axis=0)
        return forward + shift_down(ops.flip(backward, axis=2))

    def _fused_call(self, inputs, condition):
        """`call` with the scan of both directions in one fused op.

        The same function: the skewed maps stay `(2B, H, diagonals, .)`
        (the fused scan reads its lines along axis 2), the 1x1
        input-to-state products and the gate bias are done inside the
        scan, at the pixels of each diagonal only (its band), and the
        states are zero outside the image as before.
        """
        height, width = inputs.shape[1], inputs.shape[2]
        x = ops.concatenate([inputs, ops.flip(inputs, axis=2)], axis=0)
        z = None
        if condition is not None:
            forward, backward = (d(condition) for d in self.map_to_state)
            z = skew(ops.concatenate([forward, ops.flip(backward, 2)], 0))

        def stacked(tensors):
            return ops.concatenate([ops.expand_dims(t, 0) for t in tensors], 0)

        h = fused_scan(
            skew(x),
            # The 1x1 input-to-state convolutions as one-tap kernels.
            stacked([self._pixel_kernel(d)[None] for d in (0, 1)]),
            stacked([cell.bias for cell in self.cells]),
            stacked([cell.state_kernel for cell in self.cells]),
            self.cells[0].left_context,
            time_axis=2,
            band=diagonal_band(height, width),
            z=z,
        )
        forward, backward = ops.split(unskew(h, width), 2, axis=0)
        return forward + shift_down(ops.flip(backward, axis=2))

    # One-pixel steps for the fast sampler (see `layers/steps.py`). The
    # forward state at (i, j) needs the states at (i - 1, j), from the row
    # above, and (i, j - 1), the carry. The backward stream of row i - 1
    # needs all of that row, so it runs right to left over it when row i
    # starts: W steps per row, as in `call`, but only once.

    pixel_reach = 1

    def _pixel_kernel(self, d):
        """Direction d's 1x1 input-to-state kernel, gates regrouped."""
        kernel = ops.reshape(
            self.input_to_state[d].masked_kernel(), (-1, 4 * self.units)
        )
        return regroup(kernel, 4, self.color_channels)

    def _pixel_state(self, h, c):
        """The backward states of the last row, and the forward kernels
        of this row's pixels."""
        left = ops.unstack(ops.convert_to_tensor(self.cells[0].state_kernel), 2)
        kernel = self._pixel_kernel(0)
        return {"h": h, "c": c, "input": kernel, "left": left[1]}

    def pixel_init(self, inputs):
        inputs, _ = split_map_input(self, inputs)
        n, width = inputs.shape[0], inputs.shape[2]
        zeros = ops.zeros((n, self.units), inputs.dtype)
        row = ops.zeros((n, width, self.units), inputs.dtype)
        return self._pixel_state(row, row), {"h": zeros, "c": zeros}

    def pixel_row(self, inputs, state, carries, row):
        # Taps of the causal 2-tap kernels: 0 is the pixel above, 1 the
        # previous pixel in the row (j - 1 forward, j + 1 backward).
        above_f, _ = ops.unstack(
            ops.convert_to_tensor(self.cells[0].state_kernel), 2
        )
        above_b, right_b = ops.unstack(
            ops.convert_to_tensor(self.cells[1].state_kernel), 2
        )
        inputs, condition = split_map_input(self, inputs)
        z = ops.matmul(inputs[:, -1], self._pixel_kernel(1))
        z = z + self.cells[1].bias + ops.matmul(state["h"], above_b)
        above = ops.matmul(carries["h"], above_f)
        if condition is not None:
            backward = map_row(condition, row - 1)
            z = z + self.map_to_state[1](backward)
            above = above + self.map_to_state[0](map_row(condition, row))

        def step(carry, z_j):
            h, c = lstm_gates(z_j + ops.matmul(carry[0], right_b), carry[1])
            return (h, c), (h, c)

        zeros = ops.zeros_like(state["h"][:, 0])
        _, (h, c) = scan(
            step, (zeros, zeros), ops.moveaxis(z, 1, 0), reverse=True
        )
        valid = row_valid(row, z.dtype)
        h = ops.moveaxis(h, 0, 1) * valid
        c = ops.moveaxis(c, 0, 1) * valid
        columns = {
            "above": above,
            # Sec. 3.2: the backward stream, shifted down one row.
            "backward": h,
        }
        return self._pixel_state(h, c), columns, {}

    def pixel_step(self, inputs, state, column, carry):
        inputs, _ = split_map_input(self, inputs)
        z = ops.matmul(inputs.here, state["input"]) + self.cells[0].bias
        z = z + column["above"] + ops.matmul(carry["h"], state["left"])
        h, c = lstm_gates(z, carry["c"])
        return h + column["backward"], {"h": h, "c": c}

    def compute_output_shape(self, input_shape):
        if self.condition_map:
            input_shape = input_shape[0]
        return (*input_shape[:3], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "color_channels": self.color_channels,
            "unroll": self.unroll,
            "condition_map": self.condition_map,
            "fused": self.fused,
        }
