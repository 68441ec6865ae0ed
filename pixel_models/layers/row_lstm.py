"""Row LSTM (PixelRNN paper, Sec. 3.1)."""

import keras
from keras import ops

from pixel_models.layers.conditioning import (
    check_map_input,
    map_row,
    split_map_input,
)
from pixel_models.layers.fused_scan import check_fused, fused_scan, use_fused
from pixel_models.layers.lstm_cell import (
    LineLSTMCell,
    check_units,
    line_lstm_step,
    scan_lines,
    stack_neighbours,
)
from pixel_models.layers.masked_conv import MaskedConv2D, regroup
from pixel_models.layers.steps import lstm_gates


@keras.saving.register_keras_serializable(package="pixel_models")
class RowLSTM(keras.layers.Layer):
    """An LSTM that processes the image one row at a time, top to bottom.

    Input-to-state is a masked (mask B) 1 x k convolution along the row,
    computed for all rows at once; state-to-state is an unmasked 1 x k
    convolution of the previous row's hidden state. Each step updates a
    whole row, for the whole batch (`scan_lines` over rows, with the
    weights of a `LineLSTMCell`). Receptive field: a triangle above the
    pixel that widens by k//2 per row, plus the row's pixels to the left.

    Args:
        units: h, the hidden state size; divisible by 3 for RGB.
        kernel_size: k, the odd width of both convolutions.
        color_channels: 1, or 3 for R -> G -> B masking of the gates.
        unroll: if True, the `keras.ops` scan over rows is unrolled into
            the graph: faster steps on a CPU, much slower tracing (see
            `scan_lines`). Like `keras.layers.RNN(unroll=...)`.
        fused: `"auto"` (default), True or False: whether to run the whole
            scan, forward and gradient, as one compiled loop
            (`layers/fused_scan.py`; TensorFlow and numba). "auto" takes
            it on TensorFlow on a CPU in float32, outside XLA, where it
            trains several times faster; False keeps the `keras.ops`
            scan, the reference. The same function and weights either
            way, like `keras.layers.LSTM(use_cudnn=...)`.
        condition_map: if True, the layer takes a second input, a map
            `(batch, H, W, d)` computed from a given image (a Multi-Scale
            PixelRNN's upsampled small image); a 1x1 convolution of it is
            added to the input-to-state map (PixelRNN paper, Sec. 3.6).

    Input shape:
        `(batch, H, W, C)`; for RGB, C divisible by 3 (R, G, B groups).
        With `condition_map`, `[x, map]`.

    Output shape:
        `(batch, H, W, units)`, units in R, G, B groups.

    Example:
    >>> RowLSTM(6, color_channels=3)(np.zeros((2, 4, 5, 3))).shape
    (2, 4, 5, 6)
    """

    def __init__(
        self,
        units,
        kernel_size=3,
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
        self.kernel_size = kernel_size
        self.color_channels = color_channels
        # The cell first: it checks kernel_size and names it in errors.
        self.cell = LineLSTMCell(units, kernel_size, "same", name="cell")
        self.input_to_state = MaskedConv2D(
            4 * units,
            (1, kernel_size),
            "B",
            color_channels,
            use_bias=False,
            name="input_to_state",
        )
        if self.condition_map:
            self.map_to_state = keras.layers.Dense(
                4 * units, use_bias=False, name="map_to_state"
            )

    def build(self, input_shape):
        input_shape, map_shape = check_map_input(self, input_shape)
        self.input_to_state.build(input_shape)
        if map_shape is not None:
            self.map_to_state.build(map_shape)
        # The cell's weights keep the path they had under an RNN layer
        # named "rows", so weight names stay as in earlier versions.
        with keras.name_scope("rows"):
            self.cell.build((input_shape[0], input_shape[2], 4 * self.units))

    def call(self, inputs):
        inputs, condition = split_map_input(self, inputs)
        if use_fused(self.fused, inputs.dtype):
            return self._fused_call(inputs, condition)
        # Gates [o, f, i, g], each with its units in R, G, B order; the
        # bias is added once for all rows rather than at every step.
        z = regroup(self.input_to_state(inputs), 4, self.color_channels)
        z = z + self.cell.bias
        if condition is not None:
            z = z + self.map_to_state(condition)
        # Rows first, gates apart: (H, 4, B, W, h).
        z = ops.reshape(z, (-1, *z.shape[1:3], 4, self.units))
        z = ops.transpose(z, (1, 3, 0, 2, 4))
        kernels = self.cell.gate_kernels()
        k, left = self.kernel_size, self.cell.left_context

        def step(states, gates):
            _, states = line_lstm_step(
                ops.unstack(gates, 4), *states, kernels, k, left
            )
            return states

        batch, width = ops.shape(inputs)[0], inputs.shape[2]
        zeros = ops.zeros((batch, width, self.units), z.dtype)
        # Rows are the time axis: one batched step per row.
        (rows,) = scan_lines(step, [zeros, zeros], z, 1, self.unroll)
        return ops.moveaxis(rows, 0, 1)

    def _fused_call(self, inputs, condition):
        """`call` as one fused op, the 1 x k input-to-state convolution
        included: its taps up to the centre (mask B zeroes the rest), the
        gates regrouped in the kernel as in `call`."""
        k = self.kernel_size
        taps = self.input_to_state.masked_kernel()[0, : k // 2 + 1]
        taps = regroup(taps, 4, self.color_channels)
        z = None if condition is None else self.map_to_state(condition)
        return fused_scan(
            inputs,
            ops.expand_dims(taps, 0),
            ops.expand_dims(self.cell.bias, 0),
            ops.expand_dims(self.cell.state_kernel, 0),
            self.cell.left_context,
            in_left=k // 2,
            time_axis=1,
            z=z,
        )

    # One-pixel steps for the fast sampler (see `layers/steps.py`): the
    # state-to-state part of a row comes from the row above, so it is done
    # for the whole row when it starts; a pixel adds its input-to-state
    # part (the 1 x k masked convolution along the row).

    @property
    def pixel_reach(self):
        # At least 1, so that pixel_init gets its input's rows (their
        # shape) even with k = 1.
        return max(1, self.kernel_size // 2)

    def pixel_init(self, inputs):
        inputs, _ = split_map_input(self, inputs)
        zeros = ops.zeros((inputs.shape[0], self.units), inputs.dtype)
        return {"kernel": self.input_to_state.pixel_kernel()}, {
            "h": zeros,
            "c": zeros,
        }

    def pixel_row(self, inputs, state, carries, row):
        k, u = self.kernel_size, self.units
        neighbours = stack_neighbours(carries["h"], k, k // 2)
        kernel = ops.reshape(self.cell.state_kernel, (k * u, 4 * u))
        z = ops.matmul(neighbours, kernel) + self.cell.bias
        _, condition = split_map_input(self, inputs)
        if condition is not None:
            z = z + self.map_to_state(map_row(condition, row))
        state = {"kernel": self.input_to_state.pixel_kernel()}
        return state, {"z": z, "c": carries["c"]}, {}

    def pixel_step(self, inputs, state, column, carry):
        inputs, _ = split_map_input(self, inputs)
        z = self.input_to_state.pixel_output(inputs, state["kernel"])
        z = regroup(z, 4, self.color_channels) + column["z"]
        h, c = lstm_gates(z, column["c"])
        return h, {"h": h, "c": c}

    def compute_output_shape(self, input_shape):
        if self.condition_map:
            input_shape = input_shape[0]
        return (*input_shape[:3], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_size": self.kernel_size,
            "color_channels": self.color_channels,
            "unroll": self.unroll,
            "condition_map": self.condition_map,
            "fused": self.fused,
        }
