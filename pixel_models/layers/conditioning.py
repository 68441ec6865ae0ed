"""Conditioning: a label's per-channel bias, a given image's per-pixel one."""

import keras
from keras import ops

from pixel_models.checks import check_int


@keras.saving.register_keras_serializable(package="pixel_models")
class ConditionBias(keras.layers.Layer):
    """Adds a projection of a conditioning vector to every pixel's features.

    `y = x + W c` at every pixel, with `c` a label embedding: the
    class-conditional term of *Conditional Image Generation with PixelCNN
    Decoders* (Eq. 4), which adds `V^T h` to the pre-activations. It carries
    no spatial information, so it keeps every causal mask intact.

    Args:
        channels: the number of channels of `x`.

    Call arguments:
        inputs: `[x, c]`, `x` of shape `(batch, H, W, channels)`, `c` of
            shape `(batch, d)`.

    Example:
    >>> x = np.zeros((2, 4, 4, 6), "float32")
    >>> c = np.eye(2, dtype="float32")
    >>> tuple(ConditionBias(6)([x, c]).shape)
    (2, 4, 4, 6)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        check_int("channels", channels)
        self.channels = channels
        self.projection = keras.layers.Dense(channels, name="projection")

    def build(self, input_shape):
        x_shape, c_shape = input_shape
        if x_shape[-1] != self.channels:
            raise ValueError(
                f"ConditionBias({self.channels}) expects {self.channels} "
                f"channels. Received: input_shape={tuple(x_shape)}"
            )
        self.projection.build(c_shape)

    def call(self, inputs):
        x, c = inputs
        return x + self.projection(c)[:, None, None, :]

    # One-pixel step for the fast sampler (see `layers/steps.py`): the
    # projection is computed once per sampling run.

    def pixel_init(self, inputs):
        return {"bias": self.projection(inputs[1])}, {}

    def pixel_step(self, inputs, state, column, carry):
        return inputs[0].here + state["bias"], carry

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def map_row(condition_map, row):
    """Row `row` of a conditioning map, `(n, W, C)`; rows < 0 give row 0.

    For the one-pixel steps: `row` may be a tensor inside the compiled
    sampler, so this is a gather, not a Python slice. (A row above the
    image is zeroed by the caller, as `row_valid` does.)
    """
    return ops.take(condition_map, ops.maximum(row, 0), axis=1)


@keras.saving.register_keras_serializable(package="pixel_models")
class ConditionMap(keras.layers.Layer):
    """Adds a 1x1 convolution of a conditioning map to every pixel's features.

    `y = x + W m(i, j)` at pixel (i, j), with `m` a feature map of the
    image's size computed from something given, not generated (the
    upsampled small image of a Multi-Scale PixelRNN, PixelRNN paper,
    Sec. 3.6). The map does not depend on the pixels of `x`'s image, so
    it may see anywhere in the given image and keeps every causal mask
    intact.

    Args:
        channels: the number of channels of `x`.

    Call arguments:
        inputs: `[x, m]`, `x` of shape `(batch, H, W, channels)`, `m` of
            shape `(batch, H, W, d)`.

    Example:
    >>> x = np.zeros((2, 4, 4, 6), "float32")
    >>> m = np.ones((2, 4, 4, 3), "float32")
    >>> tuple(ConditionMap(6)([x, m]).shape)
    (2, 4, 4, 6)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        check_int("channels", channels)
        self.channels = channels
        self.projection = keras.layers.Dense(channels, name="projection")

    def build(self, input_shape):
        x_shape, m_shape = input_shape
        if x_shape[-1] != self.channels:
            raise ValueError(
                f"ConditionMap({self.channels}) expects {self.channels} "
                f"channels. Received: input_shape={tuple(x_shape)}"
            )
        check_map_size(self, x_shape, m_shape)
        self.projection.build(m_shape)

    def call(self, inputs):
        x, m = inputs
        return x + self.projection(m)

    # One-pixel step for the fast sampler (see `layers/steps.py`): the
    # map's row is projected when the row starts.

    def pixel_row(self, inputs, state, carries, row):
        return state, {"bias": self.projection(map_row(inputs[1], row))}, {}

    def pixel_step(self, inputs, state, column, carry):
        return inputs[0].here + column["bias"], carry

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def split_map_input(layer, inputs):
    """`(x, map)` of a layer with `condition_map`, else `(inputs, None)`."""
    if not layer.condition_map:
        return inputs, None
    return inputs[0], inputs[1]


def check_map_input(layer, input_shape):
    """`(x shape, map shape)` of a layer's input shape: `[x, map]` with
    `condition_map` (a map of `x`'s height and width), else `(x, None)`."""
    is_pair = isinstance(input_shape, (list, tuple)) and isinstance(
        input_shape[0], (list, tuple)
    )
    name = type(layer).__name__
    if not layer.condition_map:
        if is_pair:
            raise ValueError(
                f"{name}(condition_map=False) takes one input. Received: "
                f"{len(input_shape)} input shapes"
            )
        return input_shape, None
    if not is_pair or len(input_shape) != 2:
        raise ValueError(
            f"{name}(condition_map=True) takes [x, map]. Received: "
            f"input_shape={input_shape}"
        )
    x_shape, m_shape = input_shape
    check_map_size(layer, x_shape, m_shape)
    return x_shape, m_shape


def check_map_size(layer, x_shape, m_shape):
    """Raises ValueError unless the map `m_shape` has the height and width
    of the layer's input `x_shape`."""
    if tuple(m_shape[1:3]) != tuple(x_shape[1:3]):
        raise ValueError(
            f"{type(layer).__name__} expects a map of the image's size "
            f"{tuple(x_shape[1:3])}. Received: map of shape {tuple(m_shape)}"
        )
