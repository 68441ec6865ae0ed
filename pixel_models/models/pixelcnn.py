"""PixelCNN as defined in *Pixel Recurrent Neural Networks* (Sec. 3.5)."""

import keras

from pixel_models.layers import FastDropout, MaskedConv2D
from pixel_models.models.base import PixelModel, register_family
from pixel_models.models.common import (
    condition,
    condition_on_map,
    finish_model,
    mask_groups,
    start_model,
)


def residual_block(
    x,
    filters,
    color_channels,
    dropout,
    residual,
    name,
    embedding=None,
    condition_map=None,
):
    """One PixelCNN residual block (PixelRNN paper, Fig. 5).

    2h features -> ReLU -> 1x1 conv (h) -> ReLU -> 3x3 mask B conv (h)
    -> ReLU -> 1x1 conv (2h) -> added to the block input. A label's
    bias and a 1x1 convolution of the conditioning map are added to the
    first ReLU's pre-activation.
    """
    c = color_channels
    y = condition(x, embedding, f"{name}_condition")
    y = condition_on_map(y, condition_map, f"{name}_condition_map")
    y = keras.layers.ReLU(name=f"{name}_relu_in")(y)
    y = MaskedConv2D(
        filters, 1, "B", c, activation="relu", name=f"{name}_1x1a"
    )(y)
    y = MaskedConv2D(filters, 3, "B", c, activation="relu", name=f"{name}_3x3")(
        y
    )
    if dropout:
        y = FastDropout(dropout, name=f"{name}_dropout")(y)
    y = MaskedConv2D(2 * filters, 1, "B", c, name=f"{name}_1x1b")(y)
    if residual:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


@register_family
class PixelCNN(PixelModel):
    """The PixelCNN of the PixelRNN paper.

    A `kernel_size` x `kernel_size` mask A convolution with `2 * filters`
    features, `num_layers` residual blocks of mask B convolutions
    (1x1 -> 3x3 -> 1x1), then ReLU, two 1x1 mask B layers and a
    `levels`-way softmax per sub-pixel. The paper's CIFAR-10 model has 15
    layers of h = 128 features (3.14 bits/dim).

    Its receptive field has a blind spot: stacked masked 3x3 kernels
    never reach the region up and to the right of a pixel.

    Args:
        input_shape: `(H, W, C)`, C = 1 (grayscale) or 3 (RGB).
        levels: number of pixel values: 256 for 8-bit images, 2 for
            binarized ones.
        num_layers: number of residual blocks.
        filters: h, the width of a block; the residual stream has 2h
            features. For RGB it must be divisible by 3.
        kernel_size: size of the first, mask A, convolution (odd).
        residual: add each block's input to its output.
        output_filters: width of the first 1x1 output layer; defaults to
            2h.
        dropout: dropout rate inside each residual block.
        num_classes: None, or the number of classes of a class-conditional
            model, which then takes `[pixels, labels]` (integer labels of
            shape `(batch,)`); a learned label embedding adds a bias to the
            input of every block and of the head.
        condition_shape: None, or `(s, s, C)`: the model takes a given
            small image (pixel values in `[0, levels - 1]`) as a last
            input, `[pixels, small]` or `[pixels, labels, small]`; a
            transposed-convolution network upsamples it to a map whose
            1x1 convolution is added to the
            input of every block and of the head (PixelRNN paper, Sec. 3.6).
            The small image may be seen everywhere: it is given, not
            generated.
        condition_filters: channels of the upsampled map (default h).
        output, num_mixtures: `"categorical"` (the default), or
            `"logistic_mixture"` with its component count (10 by
            default): see `models.common.check_output`.
        **kwargs: `name` (default `"pixelcnn"`) and the other arguments
            of `keras.Model`.

    The model maps pixel values in `[0, levels - 1]` (floats, `(batch,
    H, W, C)`) to logits `(batch, H, W, C, levels)`. Channel c's logits
    depend only on pixels before in raster order and on channels before
    c at the same pixel.

    Example:
    >>> model = PixelCNN((8, 8, 1), levels=2, num_layers=2, filters=4)
    >>> model.output_shape
    (None, 8, 8, 1, 2)
    """

    family = "pixelcnn"

    def __init__(
        self,
        input_shape,
        levels=256,
        num_layers=15,
        filters=128,
        kernel_size=7,
        residual=True,
        output_filters=None,
        dropout=0.0,
        num_classes=None,
        condition_shape=None,
        condition_filters=None,
        output="categorical",
        num_mixtures=None,
        name="pixelcnn",
        **kwargs,
    ):
        arguments = {
            "input_shape": input_shape,
            "levels": levels,
            "num_layers": num_layers,
            "filters": filters,
            "kernel_size": kernel_size,
            "residual": residual,
            "output_filters": output_filters,
            "dropout": dropout,
            "num_classes": num_classes,
            "condition_shape": condition_shape,
            "condition_filters": condition_filters,
            "output": output,
            "num_mixtures": num_mixtures,
        }
        if output_filters is None:
            output_filters = 2 * filters
        shape, inputs, x, embedding, condition_map = start_model(
            input_shape,
            levels,
            num_layers,
            {"filters": filters, "output_filters": output_filters},
            dropout,
            num_classes,
            condition_shape,
            condition_filters,
            output,
            num_mixtures,
        )
        channels = mask_groups(shape[2], output)
        x = MaskedConv2D(
            2 * filters, kernel_size, "A", channels, name="input_conv"
        )(x)
        for i in range(num_layers):
            x = residual_block(
                x,
                filters,
                channels,
                dropout,
                residual,
                f"block{i}",
                embedding,
                condition_map,
            )
        inputs, logits = finish_model(
            x,
            (embedding, condition_map),
            shape,
            levels,
            output_filters,
            inputs,
            output,
            num_mixtures,
        )
        super().__init__(
            inputs, logits, arguments=arguments, name=name, **kwargs
        )


def build_pixelcnn(*args, **kwargs):
    """Builds a `PixelCNN` (the same arguments).

    Example:
    >>> model = build_pixelcnn((8, 8, 1), levels=2, num_layers=2, filters=4)
    >>> model.output_shape
    (None, 8, 8, 1, 2)
    """
    return PixelCNN(*args, **kwargs)
