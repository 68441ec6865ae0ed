"""Skew and Unskew: the diagonal layout of the Diagonal BiLSTM (Sec. 3.2).

Skewing shifts row i of an `H x W` map right by i, giving an
`H x (W + H - 1)` map. Column t of the skewed map then holds the diagonal
of pixels (i, t - i): both neighbours a pixel's state needs, left (i, j-1)
and above (i-1, j), lie in the previous column.
"""

import keras
from keras import ops


def skew(x):
    """Shifts row i of `x` (batch, H, W, C) right by i: (batch, H, W+H-1, C).

    Rows are padded on the right with H zeros and flattened; read back in
    rows one shorter, each row starts one place further right.
    """
    _, height, width, channels = x.shape
    x = ops.pad(x, ((0, 0), (0, 0), (0, height), (0, 0)))
    x = ops.reshape(x, (-1, height * (width + height), channels))
    # Split, not slice: a split's gradient is a concatenation, a strided
    # slice's a scatter into a zeroed copy (slow on TensorFlow's CPU).
    x = ops.split(x, [height * (width + height - 1)], axis=1)[0]
    return ops.reshape(x, (-1, height, width + height - 1, channels))


def unskew(x, width):
    """Inverse of `skew`: (batch, H, W+H-1, C) -> (batch, H, W, C)."""
    _, height, skewed_width, channels = x.shape
    x = ops.reshape(x, (-1, height * skewed_width, channels))
    x = ops.pad(x, ((0, 0), (0, height), (0, 0)))
    x = ops.reshape(x, (-1, height, skewed_width + 1, channels))
    return ops.split(x, [width], axis=2)[0]


def _check_rank(layer, input_shape):
    if len(input_shape) != 4 or None in input_shape[1:]:
        raise ValueError(
            f"{layer} expects a (batch, height, width, channels) input with "
            f"known sizes. Received: input_shape={tuple(input_shape)}"
        )


@keras.saving.register_keras_serializable(package="pixel_models")
class Skew(keras.layers.Layer):
    """Shifts row i of a channels-last map right by i.

    Input shape:
        `(batch, H, W, C)`.

    Output shape:
        `(batch, H, W + H - 1, C)`; the new positions are zero.

    Example:
    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> Skew()(x)[0, :, :, 0].numpy()
    array([[0., 1., 0.],
           [0., 2., 3.]], dtype=float32)
    """

    def build(self, input_shape):
        _check_rank("Skew", input_shape)

    def call(self, inputs):
        return skew(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height, width + height - 1, channels)


@keras.saving.register_keras_serializable(package="pixel_models")
class Unskew(keras.layers.Layer):
    """Inverse of `Skew`: takes row i's W values starting at column i.

    Args:
        width: W, the width of the unskewed map. If None, it is inferred
            as `skewed_width - H + 1`.

    Input shape:
        `(batch, H, W + H - 1, C)`.

    Output shape:
        `(batch, H, W, C)`.

    Example:
    >>> x = np.random.rand(2, 3, 4, 5).astype("float32")
    >>> np.allclose(Unskew()(Skew()(x)), x)
    True
    """

    def __init__(self, width=None, **kwargs):
        super().__init__(**kwargs)
        if width is not None and (not isinstance(width, int) or width < 1):
            raise ValueError(
                f"width must be a positive integer or None. Received: "
                f"width={width!r}"
            )
        self.width = width

    def _width(self, input_shape):
        return self.width or input_shape[2] - input_shape[1] + 1

    def build(self, input_shape):
        _check_rank("Unskew", input_shape)
        height, skewed_width = input_shape[1], input_shape[2]
        if self._width(input_shape) + height - 1 != skewed_width:
            raise ValueError(
                "Unskew expects a skewed width of width + height - 1 = "
                f"{self._width(input_shape) + height - 1}. Received: "
                f"input_shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        return unskew(inputs, self._width(inputs.shape))

    def compute_output_shape(self, input_shape):
        batch, height, _, channels = input_shape
        return (batch, height, self._width(input_shape), channels)

    def get_config(self):
        return {**super().get_config(), "width": self.width}
