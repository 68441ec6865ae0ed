"""Pieces shared by every model builder: input checks, input, output head."""

import keras

from pixel_models.checks import check_int
from pixel_models.layers import (
    ConditionBias,
    ConditionMap,
    FastDropout,
    MaskedConv2D,
)
from pixel_models.layers.masked_conv import check_divisible
from pixel_models.logistic_mixture import num_parameters

EMBEDDING_DIM = 32
# The likelihoods a model can output: a `levels`-way softmax per
# sub-pixel, or PixelCNN++'s discretized logistic mixture per pixel.
OUTPUTS = ("categorical", "logistic_mixture")
DEFAULT_NUM_MIXTURES = 10


def check_output(output, num_mixtures):
    """Checks a builder's `output` and `num_mixtures`; returns the
    mixture count to use (None for a categorical output, 10 by default
    for a mixture).

    `output="categorical"` is a `levels`-way softmax per sub-pixel, the
    model's output `(batch, H, W, C, levels)`; `"logistic_mixture"` is
    PixelCNN++'s discretized logistic mixture per pixel
    (`pixel_models.logistic_mixture`): the masks then keep every channel
    of a pixel from its parameters, and the output is `(batch, H, W, P)`.
    """
    if output not in OUTPUTS:
        raise ValueError(
            f"output must be one of {list(OUTPUTS)}. "
            f"Received: output={output!r}"
        )
    if output == "categorical":
        if num_mixtures is not None:
            raise ValueError(
                "num_mixtures is for output='logistic_mixture'; a categorical "
                f"output has none. Received: num_mixtures={num_mixtures!r}"
            )
        return None
    if num_mixtures is None:
        return DEFAULT_NUM_MIXTURES
    check_int("num_mixtures", num_mixtures)
    return num_mixtures


def mask_groups(channels, output):
    """The colour groups of the masks.

    A categorical output has one group per channel (R, G, B): channel c's
    logits come from group c, which sees the groups before it at the same
    pixel. A mixture head has one group: every parameter of a pixel comes
    from the earlier pixels only, and the mixture's coefficients order
    the channels within the pixel.
    """
    return channels if output == "categorical" else 1


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


def condition_on_map(x, condition_map, name):
    """Adds a 1x1 convolution of the conditioning map to `x` (no-op
    without one)."""
    if condition_map is None:
        return x
    return ConditionMap(x.shape[-1], name=name)([x, condition_map])


def check_condition_shape(condition_shape, image_shape):
    """Validates `condition_shape` against the model's `(H, W, C)`.

    Returns:
        The upsampling factors `(H // s_h, W // s_w)`, or None without a
        condition.
    """
    if condition_shape is None:
        return None
    height, width, channels = image_shape
    shape = (
        tuple(condition_shape) if hasattr(condition_shape, "__len__") else ()
    )
    if (
        len(shape) != 3
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0
            for d in shape
        )
        or shape[2] != channels
        or height % shape[0]
        or width % shape[1]
    ):
        raise ValueError(
            "condition_shape must be None or (s_h, s_w, channels) with "
            f"{channels} channels, like the image, and sizes that divide "
            f"the image's ({height}, {width}). Received: "
            f"condition_shape={condition_shape!r}"
        )
    return height // shape[0], width // shape[1]


def upsampling_strides(factors):
    """The strides of the transposed convolutions that upsample by
    `factors`: 2 while the factor is even, then what is left in one."""
    strides = []
    fh, fw = factors
    while fh > 1 or fw > 1:
        sh = 2 if fh % 2 == 0 else fh
        sw = 2 if fw % 2 == 0 else fw
        strides.append((sh, sw))
        fh, fw = fh // sh, fw // sw
    return strides


def condition_input(condition_shape, factors, levels, filters):
    """The small-image input and its upsampled map `(batch, H, W, filters)`.

    PixelRNN paper, Sec. 3.6: an upsampling network of transposed
    convolutions turns the s x s image into a c x n x n map. Here: the
    pixel values rescaled to [-1, 1], a 3x3 convolution, then one ReLU
    transposed convolution per factor of 2 (or per odd factor left).
    """
    small = keras.Input(shape=condition_shape, name="small")
    x = keras.layers.Rescaling(
        2.0 / (levels - 1), offset=-1.0, name="small_rescale"
    )(small)
    x = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        activation="relu",
        data_format="channels_last",
        name="upsample_in",
    )(x)
    for i, stride in enumerate(upsampling_strides(factors)):
        x = keras.layers.Conv2DTranspose(
            filters,
            (2 * stride[0], 2 * stride[1]),
            strides=stride,
            padding="same",
            activation="relu",
            data_format="channels_last",
            name=f"upsample_{i}",
        )(x)
    return small, x


def check_model_args(
    input_shape, levels, num_layers, widths, dropout=0.0, output="categorical"
):
    """Validates the arguments every model builder shares.

    Args:
        input_shape: `(H, W, C)` with C in {1, 3}.
        levels: number of pixel values, >= 2.
        num_layers: number of hidden layers, >= 1.
        widths: dict of feature-count arguments, e.g. `{"filters": 128}`;
            each must be positive and, for colour with a categorical
            output, divisible by 3.
        dropout: rate in [0, 1).
        output: one of `OUTPUTS` (checked by `check_output`).

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
        check_divisible(name, value, mask_groups(shape[2], output))
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"dropout must be in [0, 1). Received: dropout={dropout!r}"
        )
    return shape


def start_model(
    input_shape,
    levels,
    num_layers,
    widths,
    dropout,
    num_classes,
    condition_shape=None,
    condition_filters=None,
    output="categorical",
    num_mixtures=None,
):
    """Checks a builder's arguments and makes the model's inputs.

    Args:
        widths: as `check_model_args`; `condition_filters` (the channels
            of the conditioning map) defaults to the first of them.
        condition_shape: None, or the shape of a given small image.
        output, num_mixtures: as `check_output`.

    Returns:
        `(shape, inputs, x, embedding, condition_map)`: the checked
        `(H, W, C)`; the model's inputs (`[pixels]`, then `labels` with
        `num_classes`, then `small` with `condition_shape`); the rescaled
        pixels; the label embedding and the upsampled map of the small
        image (each None without its input).
    """
    check_output(output, num_mixtures)
    shape = check_model_args(
        input_shape, levels, num_layers, widths, dropout, output
    )
    check_num_classes(num_classes)
    factors = check_condition_shape(condition_shape, shape)
    check_int("condition_filters", condition_filters, allow_none=True)
    pixels, x = image_input(shape, levels)
    labels, embedding = label_input(num_classes)
    inputs = [pixels] + ([] if labels is None else [labels])
    condition_map = None
    if factors is not None:
        filters = condition_filters or next(iter(widths.values()))
        small, condition_map = condition_input(
            tuple(condition_shape), factors, levels, filters
        )
        inputs.append(small)
    return shape, inputs, x, embedding, condition_map


def finish_model(
    x,
    conditions,
    shape,
    levels,
    output_filters,
    inputs,
    output="categorical",
    num_mixtures=None,
):
    """The conditioned output head: the model's `(inputs, outputs)`.

    Args:
        conditions: `(embedding, condition_map)`, as from `start_model`.
        output, num_mixtures: as `check_output`; the outputs are logits
            `(batch, H, W, C, levels)` or a mixture's parameters
            `(batch, H, W, P)` (`mixture_head`).
    """
    embedding, condition_map = conditions
    x = condition(x, embedding, "head_condition")
    x = condition_on_map(x, condition_map, "head_condition_map")
    if output == "categorical":
        outputs = output_head(x, shape, levels, output_filters)
    else:
        num_mixtures = check_output(output, num_mixtures)
        outputs = mixture_head(x, shape[2], num_mixtures, output_filters)
    return (inputs[0] if len(inputs) == 1 else inputs), outputs


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


def mixture_head(x, channels, num_mixtures, output_filters):
    """ReLU, two 1x1 convolutions, and a logistic mixture's parameters
    per pixel, `(batch, H, W, num_parameters(C, num_mixtures))` in float32
    (`pixel_models.logistic_mixture` gives their layout)."""
    x = keras.layers.ReLU(name="head_relu_1")(x)
    x = MaskedConv2D(
        output_filters, 1, "B", 1, activation="relu", name="head_conv_1"
    )(x)
    return MaskedConv2D(
        num_parameters(channels, num_mixtures),
        1,
        "B",
        1,
        name="mixture_parameters",
        dtype="float32",
    )(x)


def pixel_rnn(
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
    condition_shape=None,
    condition_filters=None,
    output="categorical",
    num_mixtures=None,
):
    """A deep PixelRNN around recurrent layers made by `make_layer`.

    PixelRNN paper, Sec. 3.3 and Fig. 4: a mask A convolution gives 2h
    features; each of `num_layers` layers runs an LSTM with h units on
    them, maps its output back to 2h features with a 1x1 mask B conv and
    (with `residual`) adds its input; with `skip_connections` the output
    head sees the sum of every layer's output instead of the last one.

    Args:
        make_layer: `make_layer(units, color_channels, name,
            condition_map)` returning a recurrent layer `(B, H, W, 2h) ->
            (B, H, W, h)` (taking `[x, map]` with `condition_map`).
        num_classes: with a number of classes, the model takes a second
            input of integer labels, whose learned embedding adds a bias
            to the input of every recurrent layer and of the head.
        condition_shape: None, or the shape `(s, s, C)` of a given small
            image, a last input whose upsampled map biases every layer's
            input-to-state map and the head (Sec. 3.6).
        condition_filters: channels of that map (default h).
        output, num_mixtures: the likelihood (`check_output`).
        Other arguments: as `build_row_lstm`.

    Returns:
        The model's `(inputs, logits)`.
    """
    if output_filters is None:
        output_filters = 2 * units
    shape, inputs, x, embedding, condition_map = start_model(
        input_shape,
        levels,
        num_layers,
        {"units": units, "output_filters": output_filters},
        dropout,
        num_classes,
        condition_shape,
        condition_filters,
        output,
        num_mixtures,
    )
    channels = mask_groups(shape[2], output)
    conditional_map = condition_map is not None
    x = MaskedConv2D(
        2 * units, input_kernel_size, "A", channels, name="input_conv"
    )(x)
    skips = []
    for i in range(num_layers):
        y = condition(x, embedding, f"layer{i}_condition")
        layer = make_layer(units, channels, f"layer{i}_lstm", conditional_map)
        y = layer([y, condition_map] if conditional_map else y)
        if dropout:
            y = FastDropout(dropout, name=f"layer{i}_dropout")(y)
        y = MaskedConv2D(2 * units, 1, "B", channels, name=f"layer{i}_1x1")(y)
        if residual:
            y = keras.layers.Add(name=f"layer{i}_add")([x, y])
        skips.append(y)
        x = y
    if skip_connections and num_layers > 1:
        x = keras.layers.Add(name="skip_sum")(skips)
    return finish_model(
        x,
        (embedding, condition_map),
        shape,
        levels,
        output_filters,
        inputs,
        output,
        num_mixtures,
    )
