"""Pieces shared by every model builder: input checks, input, output head."""

import keras

from pixel_models.checks import check_int
from pixel_models.layers import ConditionBias, MaskedConv2D
from pixel_models.layers.masked_conv import check_divisible

EMBEDDING_DIM = 32


def check_num_classes(num_classes):
    """Validates `num_classes` (None for an unconditional model)."""
    check_int("num_classes", num_classes, minimum=2, allow_none=True)


def label_input(num_classes):
    """The labels input and its learned embedding, or (None, None)."""
    if num_classes is None:
        return None, None
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    embedding = keras.layers.Embedding(
        num_classes, EMBEDDING_DIM, name="label_embedding"
    )(labels)
    return labels, embedding


def condition(x, embedding, name):
    """Adds the label's per-channel bias to `x` (no-op without labels)."""
    if embedding is None:
        return x
    return ConditionBias(x.shape[-1], name=name)([x, embedding])


def model_inputs(pixels, labels):
    """`pixels`, or `[pixels, labels]` for a class-conditional model."""
    return pixels if labels is None else [pixels, labels]


def check_model_args(input_shape, levels, num_layers, widths, dropout=0.0):
    """Validates the arguments every model builder shares.

    Args:
        input_shape: `(H, W, C)` with C in {1, 3}.
        levels: number of pixel values, >= 2.
        num_layers: number of hidden layers, >= 1.
        widths: dict of feature-count arguments, e.g. `{"filters": 128}`;
            each must be positive and, for colour, divisible by 3.
        dropout: rate in [0, 1).

    Returns:
        `(H, W, C)` as a tuple of ints.
    """
    shape = tuple(input_shape) if hasattr(input_shape, "__len__") else None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in shape)
        or shape[2] not in (1, 3)
    ):
        raise ValueError(
            "input_shape must be (height, width, channels) with positive "
            "sizes and channels 1 (grayscale) or 3 (RGB). "
            f"Received: input_shape={input_shape!r}"
        )
    check_int("levels", levels, minimum=2)
    check_int("num_layers", num_layers)
    for name, value in widths.items():
        check_int(name, value)
        check_divisible(name, value, shape[2])
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"dropout must be in [0, 1). Received: dropout={dropout!r}"
        )
    return shape


def start_model(input_shape, levels, num_layers, widths, dropout, num_classes):
    """Checks a builder's arguments and makes the model's inputs.

    Returns:
        `(shape, pixels, x, labels, embedding)`: the checked `(H, W, C)`,
        the pixels input and its rescaled version, and the labels input
        and its embedding (both None without `num_classes`).
    """
    shape = check_model_args(input_shape, levels, num_layers, widths, dropout)
    check_num_classes(num_classes)
    pixels, x = image_input(shape, levels)
    labels, embedding = label_input(num_classes)
    return shape, pixels, x, labels, embedding


def finish_model(x, embedding, shape, levels, output_filters, inputs, name):
    """The conditioned output head and the functional model."""
    pixels, labels = inputs
    x = condition(x, embedding, "head_condition")
    logits = output_head(x, shape, levels, output_filters)
    return keras.Model(model_inputs(pixels, labels), logits, name=name)


def image_input(input_shape, levels):
    """The model input and its rescaled version in [-1, 1].

    The input takes pixel values in `[0, levels - 1]` as floats, so the
    model stays differentiable with respect to it.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    scaled = keras.layers.Rescaling(
        2.0 / (levels - 1), offset=-1.0, name="rescale"
    )(inputs)
    return inputs, scaled


def output_head(x, input_shape, levels, output_filters):
    """ReLU, two 1x1 mask B convs, and logits `(batch, H, W, C, levels)`.

    PixelRNN paper, Table 1: "ReLU followed by 1x1 Conv, mask B (2
    layers)", then a `levels`-way softmax per sub-pixel. Output channels
    are grouped R, G, B, so channel c's logits come from group c.
    """
    height, width, channels = input_shape
    x = keras.layers.ReLU(name="head_relu_1")(x)
    x = MaskedConv2D(
        output_filters, 1, "B", channels, activation="relu", name="head_conv_1"
    )(x)
    # float32 logits even under a mixed-precision policy: the softmax over
    # 256 levels and the loss need the range.
    x = MaskedConv2D(
        channels * levels,
        1,
        "B",
        channels,
        name="head_logits",
        dtype="float32",
    )(x)
    return keras.layers.Reshape(
        (height, width, channels, levels), name="logits", dtype="float32"
    )(x)


def pixel_rnn(
    name,
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
    num_classes=None,
):
    """A deep PixelRNN around recurrent layers made by `make_layer`.

    PixelRNN paper, Sec. 3.3 and Fig. 4: a mask A convolution gives 2h
    features; each of `num_layers` layers runs an LSTM with h units on
    them, maps its output back to 2h features with a 1x1 mask B conv and
    (with `residual`) adds its input; with `skip_connections` the output
    head sees the sum of every layer's output instead of the last one.

    Args:
        name: model name.
        make_layer: `make_layer(units, color_channels, name)` returning a
            recurrent layer `(B, H, W, 2h) -> (B, H, W, h)`.
        num_classes: with a number of classes, the model takes a second
            input of integer labels, whose learned embedding adds a bias
            to the input of every recurrent layer and of the head.
        Other arguments: as `build_row_lstm`.

    Returns:
        A functional `keras.Model`.
    """
    if output_filters is None:
        output_filters = 2 * units
    shape, pixels, x, labels, embedding = start_model(
        input_shape,
        levels,
        num_layers,
        {"units": units, "output_filters": output_filters},
        dropout,
        num_classes,
    )
    channels = shape[2]
    x = MaskedConv2D(
        2 * units, input_kernel_size, "A", channels, name="input_conv"
    )(x)
    skips = []
    for i in range(num_layers):
        y = condition(x, embedding, f"layer{i}_condition")
        y = make_layer(units, channels, f"layer{i}_lstm")(y)
        if dropout:
            y = keras.layers.Dropout(dropout, name=f"layer{i}_dropout")(y)
        y = MaskedConv2D(2 * units, 1, "B", channels, name=f"layer{i}_1x1")(y)
        if residual:
            y = keras.layers.Add(name=f"layer{i}_add")([x, y])
        skips.append(y)
        x = y
    if skip_connections and num_layers > 1:
        x = keras.layers.Add(name="skip_sum")(skips)
    return finish_model(
        x, embedding, shape, levels, output_filters, (pixels, labels), name
    )
