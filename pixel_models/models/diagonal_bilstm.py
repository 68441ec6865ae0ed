"""Diagonal BiLSTM PixelRNN (PixelRNN paper, Sec. 3.2 and 3.3)."""

from pixel_models.layers import DiagonalBiLSTM
from pixel_models.models.base import PixelModel, register_family
from pixel_models.models.common import pixel_rnn


@register_family
class DiagonalBiLSTMPixelRNN(PixelModel):
    """The Diagonal BiLSTM PixelRNN.

    A 7x7 mask A convolution with 2h features, `num_layers` residual
    Diagonal BiLSTM layers (h units, then a 1x1 mask B conv back to 2h),
    two 1x1 ReLU mask B layers and a `levels`-way softmax per sub-pixel.
    One layer already sees the whole causal context. The paper's CIFAR-10
    model has 12 layers of h = 128 (3.00 bits/dim); its binarized MNIST
    model 7 layers of h = 16 (79.20 nats).

    Args:
        input_shape: `(H, W, C)`, C = 1 or 3.
        levels: number of pixel values (256, or 2 for binarized data).
        num_layers: number of Diagonal BiLSTM layers.
        units: h; divisible by 3 for RGB.
        residual: residual connections around each layer.
        skip_connections: feed the sum of all layers' outputs to the head.
        output_filters: width of the first 1x1 output layer (default 2h).
        dropout: dropout rate on each LSTM's output.
        input_kernel_size: size of the first, mask A, convolution.
        num_classes: None, or the number of classes of a class-conditional
            model, which then takes `[pixels, labels]` (integer labels of
            shape `(batch,)`).
        condition_shape: None, or `(s, s, C)`: the model takes a given
            small image (pixel values in `[0, levels - 1]`) as a last
            input, `[pixels, small]` or `[pixels, labels, small]`; a
            transposed-convolution network upsamples it to a map whose
            1x1 convolution is added to every layer's input-to-state map
            (PixelRNN paper, Sec. 3.6). The small image may be seen
            everywhere: it is given, not generated.
        condition_filters: channels of the upsampled map (default h).
        output, num_mixtures: `"categorical"` (the default), or
            `"logistic_mixture"` with its component count (10 by
            default): see `models.common.check_output`.
        unroll: unroll each layer's scan into the graph: faster training
            steps on a CPU, much slower tracing (see `scan_lines`).

        **kwargs: `name` (default `"diagonal_bilstm"`) and the other arguments
            of `keras.Model`.

    Example:
    >>> model = DiagonalBiLSTMPixelRNN((8, 8, 1), levels=2, num_layers=1,
    ...                                units=4)
    >>> model.output_shape
    (None, 8, 8, 1, 2)
    """

    family = "diagonal_bilstm"

    def __init__(
        self,
        input_shape,
        levels=256,
        num_layers=12,
        units=128,
        residual=True,
        skip_connections=False,
        output_filters=None,
        dropout=0.0,
        input_kernel_size=7,
        num_classes=None,
        unroll=False,
        condition_shape=None,
        condition_filters=None,
        output="categorical",
        num_mixtures=None,
        name="diagonal_bilstm",
        **kwargs,
    ):
        arguments = {
            "input_shape": input_shape,
            "levels": levels,
            "num_layers": num_layers,
            "units": units,
            "residual": residual,
            "skip_connections": skip_connections,
            "output_filters": output_filters,
            "dropout": dropout,
            "input_kernel_size": input_kernel_size,
            "num_classes": num_classes,
            "unroll": unroll,
            "condition_shape": condition_shape,
            "condition_filters": condition_filters,
            "output": output,
            "num_mixtures": num_mixtures,
        }

        def make_layer(units, color_channels, name, condition_map):
            return DiagonalBiLSTM(
                units,
                color_channels,
                unroll=unroll,
                condition_map=condition_map,
                name=name,
            )

        inputs, logits = pixel_rnn(
            make_layer,
            input_shape,
            levels,
            num_layers,
            units,
            residual,
            skip_connections,
            output_filters,
            dropout,
            input_kernel_size,
            num_classes,
            condition_shape,
            condition_filters,
            output,
            num_mixtures,
        )
        super().__init__(
            inputs, logits, arguments=arguments, name=name, **kwargs
        )


def build_diagonal_bilstm(*args, **kwargs):
    """Builds a `DiagonalBiLSTMPixelRNN` (the same arguments)."""
    return DiagonalBiLSTMPixelRNN(*args, **kwargs)
