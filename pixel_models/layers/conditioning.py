"""Class conditioning: a learned per-channel bias from a label embedding."""

import keras

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
