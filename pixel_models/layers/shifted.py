"""Shifted convolutions: PixelCNN++'s causal convolutions without masks.

Instead of masking a centred kernel, PixelCNN++ (Salimans et al., 2017)
pads the input so that a small kernel only reaches pixels above (the
`"down"` shift: a 2 x 3 kernel over the row above and the pixel's own
row) or above and to the left (`"down_right"`: a 2 x 2 kernel). Two
streams built from them, the first shifted down a row and the second
right a column at the input (`Shift`), see exactly the pixels before the
current one, with no blind spot. Strided versions halve the resolution
and the transposed ones double it back, keeping the same order.
"""

import keras
from keras import ops

SHIFTS = ("down", "down_right")


def _checked_kernel(shift, kernel_size):
    """`kernel_size` as `(kh, kw)`, checked against `shift`."""
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    kernel_size = tuple(kernel_size)
    if shift not in SHIFTS:
        raise ValueError(
            f"shift must be one of {list(SHIFTS)}. Received: shift={shift!r}"
        )
    kh, kw = kernel_size
    if shift == "down" and kw % 2 == 0:
        raise ValueError(
            "A 'down' shifted kernel is centred on the column: its width "
            f"must be odd. Received: kernel_size={tuple(kernel_size)}"
        )
    return kernel_size


def _pads(shift, kernel_size):
    """`(top, bottom, left, right)` padding that makes a valid convolution
    reach only the rows above (and, for down_right, the columns left)."""
    kh, kw = kernel_size
    if shift == "down":
        return kh - 1, 0, (kw - 1) // 2, (kw - 1) // 2
    return kh - 1, 0, kw - 1, 0


@keras.saving.register_keras_serializable(package="pixel_models")
class ShiftedConv2D(keras.layers.Conv2D):
    """A convolution that sees its own row and the rows above only
    (`shift="down"`), or also only the columns up to its own
    (`shift="down_right"`).

    Args:
        filters: output channels.
        kernel_size: `(kh, kw)`; `(2, 3)` for `"down"` and `(2, 2)` for
            `"down_right"` in PixelCNN++. A `"down"` kernel's width is odd.
        shift: `"down"` or `"down_right"`.
        strides: 1, or 2 to halve the resolution.
        **kwargs: the other arguments of `keras.layers.Conv2D` (but
            `padding`, which the shift sets).

    Output `(i, j)` reads input rows `i - kh + 1 .. i` (times the stride),
    and columns `j - (kw - 1) // 2 .. j + (kw - 1) // 2` (down) or
    `j - kw + 1 .. j` (down_right).
    """

    def __init__(self, filters, kernel_size, shift="down", strides=1, **kwargs):
        kwargs.pop("padding", None)
        kernel_size = _checked_kernel(shift, kernel_size)
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding="valid",
            data_format="channels_last",
            **kwargs,
        )
        self.shift = shift

    def call(self, inputs):
        top, bottom, left, right = _pads(self.shift, self.kernel_size)
        padded = ops.pad(inputs, [(0, 0), (top, bottom), (left, right), (0, 0)])
        return super().call(padded)

    def row_output(self, rows):
        """One output row from the input rows it reads, `(n, kh, W, C)`
        (zeros for rows above the image): `(n, W / strides, filters)`.
        The fast sampler's row step."""
        _, _, left, right = _pads(self.shift, self.kernel_size)
        padded = ops.pad(rows, [(0, 0), (0, 0), (left, right), (0, 0)])
        return super().call(padded)[:, 0]

    def window_output(self, window):
        """The output at one position from the `(n, kh, kw, C)` window of
        input it reads: `(n, filters)`. The fast sampler's pixel step."""
        n = window.shape[0]
        flat = ops.reshape(window, (n, -1))
        y = ops.matmul(flat, ops.reshape(self.kernel, (flat.shape[1], -1)))
        if self.use_bias:
            y = y + self.bias
        return y if self.activation is None else self.activation(y)

    def compute_output_shape(self, input_shape):
        top, bottom, left, right = _pads(self.shift, self.kernel_size)
        batch, height, width, channels = input_shape
        padded = (
            batch,
            None if height is None else height + top + bottom,
            None if width is None else width + left + right,
            channels,
        )
        return super().compute_output_shape(padded)

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        config.pop("data_format", None)
        return {**config, "shift": self.shift}


@keras.saving.register_keras_serializable(package="pixel_models")
class ShiftedConv2DTranspose(keras.layers.Conv2DTranspose):
    """The transposed `ShiftedConv2D` of stride 2: doubles the resolution,
    and output `(i, j)` reads only inputs from rows `<= i // 2` (and, for
    `"down_right"`, columns `<= j // 2`).

    Args:
        filters: output channels.
        kernel_size: `(kh, kw)`, as `ShiftedConv2D`.
        shift: `"down"` or `"down_right"`.
        **kwargs: the other arguments of `keras.layers.Conv2DTranspose`.
    """

    def __init__(self, filters, kernel_size, shift="down", **kwargs):
        for key in ("padding", "strides", "output_padding"):
            kwargs.pop(key, None)
        kernel_size = _checked_kernel(shift, kernel_size)
        super().__init__(
            filters,
            kernel_size,
            strides=2,
            padding="valid",
            output_padding=1,
            data_format="channels_last",
            **kwargs,
        )
        self.shift = shift

    def _crop(self, x):
        kh, kw = self.kernel_size
        height, width = x.shape[1], x.shape[2]
        if self.shift == "down":
            side = (kw - 1) // 2
            return x[:, : height - kh + 1, side : width - side]
        return x[:, : height - kh + 1, : width - kw + 1]

    def call(self, inputs):
        return self._crop(super().call(inputs))

    def row_output(self, row):
        """The two output rows `2r, 2r + 1` that input row `r` `(n, W, C)`
        makes: `(n, 2, 2W, filters)`. The fast sampler's row step."""
        return self.call(row[:, None])

    def value_at(self, x, dy, dx):
        """The output at `(2r + dy, 2c + dx)` of a `"down_right"` kernel
        from the input at `(r, c)`, `(n, C)`: `(n, filters)`. The fast
        sampler's pixel step."""
        y = ops.matmul(x, ops.transpose(self.kernel[dy, dx]))
        if self.use_bias:
            y = y + self.bias
        return y if self.activation is None else self.activation(y)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (
            batch,
            None if height is None else 2 * height,
            None if width is None else 2 * width,
            self.filters,
        )

    def get_config(self):
        config = super().get_config()
        for key in ("padding", "strides", "output_padding", "data_format"):
            config.pop(key, None)
        return {**config, "shift": self.shift}


@keras.saving.register_keras_serializable(package="pixel_models")
class Shift(keras.layers.Layer):
    """Moves a map one row down (`direction="down"`) or one column right
    (`"right"`), zeros in: the first step of PixelCNN++'s two streams, so
    that a pixel's features see only the pixels before it."""

    def __init__(self, direction="down", **kwargs):
        super().__init__(**kwargs)
        if direction not in ("down", "right"):
            raise ValueError(
                "direction must be 'down' or 'right'. "
                f"Received: direction={direction!r}"
            )
        self.direction = direction

    def call(self, x):
        if self.direction == "down":
            return ops.pad(x, [(0, 0), (1, 0), (0, 0), (0, 0)])[:, :-1]
        return ops.pad(x, [(0, 0), (0, 0), (1, 0), (0, 0)])[:, :, :-1]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "direction": self.direction}


@keras.saving.register_keras_serializable(package="pixel_models")
class ConcatELU(keras.layers.Layer):
    """`elu([x, -x])` on the channel axis (PixelCNN++): twice the
    channels, nothing of the input's sign lost."""

    def call(self, x):
        return ops.elu(ops.concatenate([x, -x], axis=-1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1])


@keras.saving.register_keras_serializable(package="pixel_models")
class Gate(keras.layers.Layer):
    """`a * sigmoid(b)` for the two halves `[a, b]` of the channel axis."""

    def call(self, x):
        a, b = ops.split(x, 2, axis=-1)
        return a * ops.sigmoid(b)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)
