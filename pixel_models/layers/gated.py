"""Gated PixelCNN block (van den Oord et al., 2016b, *Conditional Image
Generation with PixelCNN Decoders*, Sec. 2.1-2.3)."""

import keras
from keras import ops

from pixel_models.checks import check_int
from pixel_models.layers.conditioning import check_map_size, map_row
from pixel_models.layers.masked_conv import (
    MASK_TYPES,
    MaskedConv2D,
    check_color_channels,
    check_divisible,
    regroup,
)
from pixel_models.layers.steps import PixelInput, row_valid


def gate(z):
    """Gated activation unit: tanh of the first half times sigmoid of the
    second (Eq. 2)."""
    f, g = ops.split(z, 2, axis=-1)
    return ops.tanh(f) * ops.sigmoid(g)


def shift_down(x):
    """Row i receives row i - 1; row 0 gets zeros.

    Split, not slice: on TensorFlow a strided slice's gradient scatters
    into a zeroed copy of the whole input (10% of a Gated PixelCNN's
    training step on CIFAR-10 when it was a slice).
    """
    x = ops.split(x, [x.shape[1] - 1], axis=1)[0]
    return ops.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))


@keras.saving.register_keras_serializable(package="pixel_models")
class GatedPixelCNNBlock(keras.layers.Layer):
    """One layer of a Gated PixelCNN: a vertical and a horizontal stack.

    The vertical stack convolves the rows above and the current row with a
    `(k//2 + 1) x k` kernel; the horizontal stack convolves the current
    row left of the pixel with a masked `1 x k` kernel (mask A in the first
    layer, B later; colour groups as in `MaskedConv2D`). The vertical
    pre-activations, shifted down one row so that they hold only rows
    above, reach the horizontal stack through a 1x1 convolution. Both
    stacks use gated units `tanh(W_f * x) * sigmoid(W_g * x)`, and the
    horizontal stack has a 1x1 convolution and a residual connection.
    Together the two stacks see the whole causal context: no blind spot.

    Args:
        filters: p, the feature maps of each stack; divisible by 3 for RGB.
        kernel_size: k, odd.
        color_channels: 1 or 3.
        mask_type: `"A"` for the first layer (on the image), else `"B"`.
        residual: add the horizontal input to its output (needs equal
            widths; off in the first layer).
        condition: if True, the layer takes a third input, a conditioning
            vector `(batch, d)` (e.g. a label embedding), projected and
            added to the gate pre-activations of both stacks (Eq. 4).
        condition_map: if True, the layer takes a last input, a map
            `(batch, H, W, d)` computed from a given image (a Multi-Scale
            model's upsampled small image); a 1x1 convolution of it is
            added to the gate pre-activations of both stacks (PixelRNN
            paper, Sec. 3.6).

    Call arguments:
        inputs: `[v, h]`, then the conditioning vector with `condition`,
            then the map with `condition_map`; `v`, `h` of shape
            `(batch, H, W, c)`.

    Returns:
        `[v, h]`, each `(batch, H, W, filters)`.

    Example:
    >>> x = np.zeros((2, 6, 6, 3), "float32")
    >>> v, h = GatedPixelCNNBlock(6, 5, 3, "A", residual=False)([x, x])
    >>> tuple(h.shape)
    (2, 6, 6, 6)
    """

    def __init__(
        self,
        filters,
        kernel_size=5,
        color_channels=1,
        mask_type="B",
        residual=True,
        condition=False,
        condition_map=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_color_channels(color_channels)
        if mask_type not in MASK_TYPES:
            raise ValueError(
                "mask_type must be 'A' or 'B'. "
                f"Received: mask_type={mask_type!r}"
            )
        check_int("filters", filters)
        check_divisible("filters", filters, color_channels)
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(
                "kernel_size must be a positive odd integer. "
                f"Received: kernel_size={kernel_size!r}"
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.color_channels = color_channels
        self.mask_type = mask_type
        self.residual = residual
        self.condition = condition
        self.condition_map = bool(condition_map)
        k, c = kernel_size, color_channels
        # Vertical: rows i - k//2 .. i, all k columns (padding in call).
        self.vertical = keras.layers.Conv2D(
            2 * filters,
            (k // 2 + 1, k),
            data_format="channels_last",
            name="vertical",
        )
        self.vertical_to_horizontal = keras.layers.Conv2D(
            2 * filters,
            1,
            data_format="channels_last",
            name="vertical_to_horizontal",
        )
        self.horizontal = MaskedConv2D(
            2 * filters, (1, k), mask_type, c, name="horizontal"
        )
        self.horizontal_out = MaskedConv2D(
            filters, 1, "B", c, name="horizontal_out"
        )
        if condition:
            self.condition_v = keras.layers.Dense(
                2 * filters, use_bias=False, name="condition_vertical"
            )
            self.condition_h = keras.layers.Dense(
                2 * filters, use_bias=False, name="condition_horizontal"
            )
        if self.condition_map:
            self.map_v = keras.layers.Dense(
                2 * filters, use_bias=False, name="map_vertical"
            )
            self.map_h = keras.layers.Dense(
                2 * filters, use_bias=False, name="map_horizontal"
            )

    def build(self, input_shape):
        v_shape, h_shape = input_shape[0], input_shape[1]
        expected = 2 + int(self.condition) + int(self.condition_map)
        if len(input_shape) != expected:
            raise ValueError(
                f"GatedPixelCNNBlock(condition={self.condition}, "
                f"condition_map={self.condition_map}) expects {expected} "
                f"inputs. Received: {len(input_shape)} input shapes"
            )
        if self.condition_map:
            map_shape = input_shape[-1]
            check_map_size(self, h_shape, map_shape)
            self.map_v.build(map_shape)
            self.map_h.build(map_shape)
        if self.residual and h_shape[-1] != self.filters:
            raise ValueError(
                "A residual block needs input channels equal to filters="
                f"{self.filters}. Received: input_shape={tuple(h_shape)}"
            )
        k = self.kernel_size
        padded = (
            v_shape[0],
            v_shape[1] + k // 2,
            v_shape[2] + 2 * (k // 2),
            v_shape[3],
        )
        self.vertical.build(padded)
        self.vertical_to_horizontal.build((*v_shape[:3], 2 * self.filters))
        self.horizontal.build(h_shape)
        self.horizontal_out.build((*h_shape[:3], self.filters))
        if self.condition:
            self.condition_v.build(input_shape[2])
            self.condition_h.build(input_shape[2])

    def call(self, inputs):
        v, h = inputs[0], inputs[1]
        k = self.kernel_size
        padded = ops.pad(v, ((0, 0), (k // 2, 0), (k // 2, k // 2), (0, 0)))
        pre_v = self.vertical(padded)
        if self.condition:
            pre_v = pre_v + self.condition_v(inputs[2])[:, None, None, :]
        if self.condition_map:
            pre_v = pre_v + self.map_v(inputs[-1])
        # Sec. 2.2: the link sees the vertical stack one row up, so the
        # horizontal stack never sees the current row's right part.
        pre_h = self.horizontal(h) + self.vertical_to_horizontal(
            shift_down(pre_v)
        )
        if self.condition:
            pre_h = pre_h + self.condition_h(inputs[2])[:, None, None, :]
        if self.condition_map:
            pre_h = pre_h + self.map_h(inputs[-1])
        v_out = gate(pre_v)
        h_out = self.horizontal_out(
            gate(regroup(pre_h, 2, self.color_channels))
        )
        if self.residual:
            h_out = h_out + h
        return [v_out, h_out]

    # One-pixel steps for the fast sampler (see `layers/steps.py`). The
    # vertical stack at row i sees row i up to k//2 pixels to the right,
    # so it is known only when row i + 1 starts: `pixel_row` computes it
    # for the row above, where the horizontal stack reads it (Sec. 2.2's
    # shift), and gives the vertical output a row late.

    @property
    def pixel_reach(self):
        return self.kernel_size // 2 + 1

    def _pixel_kernels(self, state):
        """`state` with the kernels of the horizontal stack's pixel."""
        return {
            **state,
            "horizontal": self.horizontal.pixel_kernel(),
            "horizontal_out": self.horizontal_out.pixel_kernel(),
        }

    def pixel_init(self, inputs):
        state = {}
        if self.condition:
            condition = inputs[2]
            state = {
                "condition_v": self.condition_v(condition)[:, None],
                "condition_h": self.condition_h(condition),
            }
        return self._pixel_kernels(state), {}

    def pixel_row(self, inputs, state, carries, row):
        k = self.kernel_size
        above = inputs[0]
        rows = above[:, above.shape[1] - (k // 2 + 1) :]
        rows = ops.pad(rows, ((0, 0), (0, 0), (k // 2, k // 2), (0, 0)))
        pre_v = self.vertical(rows)[:, 0]
        if self.condition:
            pre_v = pre_v + state["condition_v"]
        if self.condition_map:
            # The vertical stack of the row above, as in `call`.
            pre_v = pre_v + self.map_v(map_row(inputs[-1], row - 1))
        pre_v = pre_v * row_valid(row, pre_v.dtype)
        link = self.vertical_to_horizontal(pre_v[:, None])[:, 0]
        if self.condition_map:
            link = link + self.map_h(map_row(inputs[-1], row))
        state = self._pixel_kernels(state)
        return state, {"link": link}, {0: gate(pre_v)}

    def pixel_step(self, inputs, state, column, carry):
        h = inputs[1]
        pre_h = self.horizontal.pixel_output(h, state["horizontal"])
        pre_h = pre_h + column["link"]
        if self.condition:
            pre_h = pre_h + state["condition_h"]
        gated = gate(regroup(pre_h, 2, self.color_channels))
        out = self.horizontal_out.pixel_output(
            PixelInput(gated), state["horizontal_out"]
        )
        if self.residual:
            out = out + h.here
        return [None, out], carry

    def compute_output_shape(self, input_shape):
        shape = (*input_shape[1][:3], self.filters)
        return [shape, shape]

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "color_channels": self.color_channels,
            "mask_type": self.mask_type,
            "residual": self.residual,
            "condition": self.condition,
            "condition_map": self.condition_map,
        }
