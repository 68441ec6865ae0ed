"""The per-step LSTM cell shared by Row LSTM and Diagonal BiLSTM.

A PixelRNN LSTM advances over a whole line of pixels at once: a row (Row
LSTM) or a diagonal (Diagonal BiLSTM). `line_lstm_step` is the math of
one such step, `scan_lines` the loop over lines, and `LineLSTMCell` holds
a step's weights; the layers that skew, scan and unskew live in
`row_lstm.py` and `diagonal_bilstm.py`. Why each piece is written as it
is: `docs/performance.md`.
"""

import keras
from keras import ops

from pixel_models.checks import check_int
from pixel_models.layers.masked_conv import (
    check_color_channels,
    check_divisible,
)
from pixel_models.layers.steps import lstm_update

PADDINGS = ("same", "causal")


def check_units(units, color_channels):
    """Validates `units` of a recurrent layer."""
    check_color_channels(color_channels)
    check_int("units", units)
    check_divisible("units", units, color_channels)


def shift_line(h, shift):
    """`out[..., l, :] = h[..., l - shift, :]`, zero where l - shift is
    outside the line. `h` is `(..., L, units)`.

    Split and pad rather than slice: on TensorFlow the gradient of a
    strided slice scatters into a zeroed copy of the whole input, and it
    was the slowest op of a training step when it ran at every line.
    """
    if shift == 0:
        return h
    length = h.shape[-2]
    pad = [(0, 0)] * len(h.shape)
    if shift > 0:
        pad[-2] = (shift, 0)
        return ops.pad(ops.split(h, [length - shift], axis=-2)[0], pad)
    pad[-2] = (0, -shift)
    return ops.pad(ops.split(h, [-shift], axis=-2)[1], pad)


def stack_neighbours(h, kernel_size, left):
    """The k neighbours of each line position, side by side.

    `(..., L, units) -> (..., L, k * units)`: block t holds
    `h[l + t - left]` (zero outside the line), so that a product with a
    `(k, units, n)` kernel reshaped to `(k * units, n)` is the 1D
    convolution `sum_t h[l + t - left] @ kernel[t]` as one matrix
    product, rather than a pad and a general convolution per step.
    """
    return ops.concatenate(
        [shift_line(h, left - t) for t in range(kernel_size)], axis=-1
    )


def line_lstm_step(z, h, c, kernels, kernel_size, left):
    """One LSTM step over a line (PixelRNN paper, Eq. 3).

    The gates come as four separate tensors, each with its own slice of
    the state-to-state kernel: four small products whose outputs need no
    splitting, which on a CPU beat one product followed by a split of
    every pixel's channels into gates.

    Args:
        z: the input-to-state pre-activations plus the gate bias of the
            gates `[o, f, i, g]`, each `(..., L, units)`.
        h: `(..., L, units)` previous hidden state.
        c: `(..., L, units)` previous cell state.
        kernels: the four `(k * units, units)` slices of the
            state-to-state kernel (see `LineLSTMCell.gate_kernels`).
        kernel_size: k.
        left: how many positions before l the kernel reaches.

    Returns:
        `(h, [h, c])`: the new hidden state (also the output), and the
        new states.
    """
    neighbours = stack_neighbours(h, kernel_size, left)
    shape = ops.shape(h)
    neighbours = ops.reshape(neighbours, (-1, neighbours.shape[-1]))
    o, f, i, g = (
        zg + ops.reshape(ops.matmul(neighbours, kg), shape)
        for zg, kg in zip(z, kernels, strict=True)
    )
    h, c = lstm_update(o, f, i, g, c)
    return h, [h, c]


def scan_lines(step, states, sequence, keep=1, unroll=False):
    """Runs `step` over the leading (line) axis of `sequence`.

    The inputs come as one tensor (stack several on a leading axis) and
    the loop keeps only the states asked for: on TensorFlow every
    sequence a loop reads or writes costs a copy of the whole sequence
    and a gradient buffer per layer and training step.

    Args:
        step: `step(states, inputs) -> states`, with `inputs` the current
            slice of `sequence` and `states` a list of tensors.
        states: the initial states, a list of tensors.
        sequence: one tensor with the lines on its first axis.
        keep: how many of the states, from the first, to keep from every
            step (the hidden states; not the cell states).
        unroll: if True, unroll the loop into the graph: on TensorFlow's
            CPU the steps run faster, but a training step of a deep model
            takes minutes instead of seconds to trace. If False, a loop:
            on TensorFlow a `tf.while_loop` with a fixed number of
            iterations (see `tf_scan`), elsewhere `keras.ops.scan`
            (`lax.scan` on JAX).

    Returns:
        The first `keep` states after every step, each stacked on a new
        first axis.
    """
    states = list(states)
    if not unroll and keras.backend.backend() == "tensorflow":
        return tf_scan(step, states, sequence, keep)
    if not unroll:

        def body(carry, inputs):
            carry = list(step(carry, inputs))
            return carry, carry[:keep]

        return list(ops.scan(body, states, sequence)[1])
    # One unstack of the inputs and one stack of each kept state: their
    # gradients are one stack and one unstack, not a slice gradient per
    # step.
    history = []
    for inputs in ops.unstack(sequence, axis=0):
        states = list(step(states, inputs))
        history.append(states[:keep])
    return [ops.stack(s, axis=0) for s in zip(*history, strict=True)]


def tf_scan(step, states, sequence, keep):
    """`scan_lines` on TensorFlow: a `tf.while_loop` of known length.

    `keras.ops.scan` on TensorFlow leaves the loop's iteration count
    open, and XLA (`jit_compile=True`, Keras's default on GPUs) then
    refuses to differentiate it ("XLA compilation requires a fixed tensor
    list size"); it also keeps every step's carried states. Here the count
    is the static number of lines, so the same loop trains with and
    without XLA, and only the first `keep` states are kept. The only
    TensorFlow call in the layers: Keras has no public scan that does
    this.
    """
    import tensorflow as tf

    length = sequence.shape[0]
    inputs = tf.TensorArray(
        sequence.dtype, size=length, element_shape=sequence.shape[1:]
    ).unstack(sequence)
    history = [tf.TensorArray(s.dtype, size=length) for s in states[:keep]]

    def body(t, states, history):
        states = list(step(states, inputs.read(t)))
        kept = states[: len(history)]
        history = [h.write(t, s) for h, s in zip(history, kept, strict=True)]
        return t + 1, states, history

    _, _, history = tf.while_loop(
        lambda t, *_: t < length,
        body,
        (0, states, history),
        maximum_iterations=length,
    )
    return [h.stack() for h in history]


@keras.saving.register_keras_serializable(package="pixel_models")
class LineLSTMCell(keras.layers.Layer):
    """One LSTM step over a line of L pixels, with a convolutional state.

    Gates `[o, f, i, g] = sigma(K_ss * h_prev + z)` (tanh for g), where
    `z` holds the input-to-state pre-activations of the current line and
    `K_ss * h_prev` is a 1D convolution of the previous line's hidden state
    along the line (PixelRNN paper, Eq. 3); then
    `c = f * c_prev + i * g` and `h = o * tanh(c)`.

    The state-to-state convolution is unmasked: the previous line holds
    only past pixels. The cell follows the Keras RNN cell API, so
    `keras.layers.RNN(cell)` can scan it over lines; the layers here run
    `line_lstm_step` with its weights in `scan_lines` instead, which
    advances both Diagonal BiLSTM directions at once.

    Args:
        units: h, the size of the hidden state per pixel.
        kernel_size: width of the state-to-state convolution.
        padding: `"same"` (centred; Row LSTM, which sees k//2 pixels left
            and right in the row above) or `"causal"` (position l sees
            l - k + 1 .. l; Diagonal LSTM, whose 2x1 kernel sees the pixel
            above and the pixel to the left).
        validity_channel: if True, the inputs carry one more last channel,
            1 where the line position is a pixel of the image and 0 where
            it is padding (the skew's); the states are zeroed there.

    Call arguments:
        inputs: `(batch, L, 4 * units [+ 1])` gate pre-activations, gates
            in `[o, f, i, g]` order.
        states: `[h, c]`, each `(batch, L, units)`.

    Returns:
        `(h, [h, c])`: the output and the new states.

    Example:
    >>> cell = LineLSTMCell(4, 3)
    >>> z = np.zeros((2, 5, 16), "float32")
    >>> h0 = np.zeros((2, 5, 4), "float32")
    >>> h, (_, c) = cell(z, [h0, h0])
    >>> tuple(h.shape)
    (2, 5, 4)
    """

    def __init__(
        self,
        units,
        kernel_size=3,
        padding="same",
        validity_channel=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_units(units, 1)
        check_int("kernel_size", kernel_size)
        if padding not in PADDINGS:
            raise ValueError(
                f"padding must be one of {PADDINGS}. "
                f"Received: padding={padding!r}"
            )
        if padding == "same" and kernel_size % 2 == 0:
            raise ValueError(
                "kernel_size must be odd with padding='same'. "
                f"Received: kernel_size={kernel_size}"
            )
        self.units = units
        self.kernel_size = kernel_size
        self.padding = padding
        self.validity_channel = validity_channel
        # Keras RNN API: the states are (L, units) maps, built by
        # get_initial_state, as Keras's ConvLSTM cells do.
        self.state_size = -1
        self.line_length = None

    def build(self, input_shape):
        self.line_length = input_shape[-2]
        expected = 4 * self.units + int(self.validity_channel)
        if input_shape[-1] != expected:
            raise ValueError(
                f"LineLSTMCell({self.units}) expects {expected} input "
                f"channels. Received: input_shape={tuple(input_shape)}"
            )
        self.state_kernel = self.add_weight(
            name="state_kernel",
            shape=(self.kernel_size, self.units, 4 * self.units),
            initializer="glorot_uniform",
        )
        # Forget-gate bias 1: remember by default early in training.
        h = self.units
        bias = [0.0] * h + [1.0] * h + [0.0] * 2 * h
        self.bias = self.add_weight(
            name="bias",
            shape=(4 * h,),
            initializer=keras.initializers.Constant(bias),
        )

    def get_initial_state(self, batch_size=None):
        zeros = ops.zeros((batch_size, self.line_length, self.units))
        return [zeros, zeros]

    @property
    def left_context(self):
        """How many positions before l the state-to-state kernel reaches."""
        k = self.kernel_size
        return k // 2 if self.padding == "same" else k - 1

    def gate_kernels(self):
        """The state-to-state kernel as four `(k * units, units)` matrices,
        one per gate `[o, f, i, g]`, for `line_lstm_step`."""
        k, u = self.kernel_size, self.units
        return ops.split(ops.reshape(self.state_kernel, (k * u, 4 * u)), 4, -1)

    def call(self, inputs, states):
        h, c = states
        z, valid = inputs, None
        if self.validity_channel:
            z, valid = ops.split(inputs, [4 * self.units], axis=-1)
        h, (_, c) = line_lstm_step(
            ops.split(z + self.bias, 4, axis=-1),
            h,
            c,
            self.gate_kernels(),
            self.kernel_size,
            self.left_context,
        )
        if valid is not None:
            h, c = h * valid, c * valid
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "validity_channel": self.validity_channel,
        }
