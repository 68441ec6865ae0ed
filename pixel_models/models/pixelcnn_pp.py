"""PixelCNN++ (Salimans et al., 2017): two shifted streams, three
resolutions, gated residual blocks and a discretized logistic mixture."""

import keras

from pixel_models.layers import (
    ConcatELU,
    FastDropout,
    Gate,
    Shift,
    ShiftedConv2D,
    ShiftedConv2DTranspose,
)
from pixel_models.logistic_mixture import num_parameters
from pixel_models.models.base import PixelModel, register_family
from pixel_models.models.common import (
    condition,
    condition_on_map,
    start_model,
)

# The streams' kernels: the down stream sees the rows above, over 3
# columns; the down-right stream the rows above and the columns left.
DOWN = ("down", (2, 3))
DOWN_RIGHT = ("down_right", (2, 2))
RESOLUTIONS = 3


def gated_resnet(x, a, filters, stream, dropout, conditions, name):
    """`x + gate(conv(concat_elu(conv(concat_elu(x)) + nin(a))))`.

    Args:
        x: the stream's map.
        a: None, or a map of the same size joined in by a 1x1 convolution
            (the other stream, or the up pass's output in the down pass).
        stream: `DOWN` or `DOWN_RIGHT`, the shifted convolution used.
        conditions: `(embedding, condition_map)`: None, or a label
            embedding, whose bias is added to the gate's input; None, or
            the small image's map at this resolution, whose 1x1
            convolution is added too.
    """
    shift, kernel = stream
    y = ConcatELU(name=f"{name}_elu_in")(x)
    y = ShiftedConv2D(filters, kernel, shift, name=f"{name}_conv_in")(y)
    if a is not None:
        link = ConcatELU(name=f"{name}_elu_link")(a)
        link = keras.layers.Conv2D(filters, 1, name=f"{name}_link")(link)
        y = keras.layers.Add(name=f"{name}_add_link")([y, link])
    y = ConcatELU(name=f"{name}_elu_mid")(y)
    if dropout:
        y = FastDropout(dropout, name=f"{name}_dropout")(y)
    y = ShiftedConv2D(2 * filters, kernel, shift, name=f"{name}_conv_out")(y)
    embedding, condition_map = conditions
    y = condition(y, embedding, f"{name}_condition")
    y = condition_on_map(y, condition_map, f"{name}_condition_map")
    y = Gate(name=f"{name}_gate")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def _block(u, ul, links, filters, dropout, conditions, name):
    """One gated residual block on each stream; the down-right stream
    also takes the new down stream (and the up pass's output)."""
    u_link, ul_link = links
    u = gated_resnet(u, u_link, filters, DOWN, dropout, conditions, f"{name}_u")
    if ul_link is None:
        ul_link = u
    else:
        ul_link = keras.layers.Concatenate(name=f"{name}_ul_join")([u, ul_link])
    ul = gated_resnet(
        ul, ul_link, filters, DOWN_RIGHT, dropout, conditions, f"{name}_ul"
    )
    return u, ul


def _condition_maps(condition_map):
    """The small image's map at each resolution (average-pooled), or
    Nones without one."""
    if condition_map is None:
        return [None] * RESOLUTIONS
    maps = [condition_map]
    for r in range(1, RESOLUTIONS):
        maps.append(
            keras.layers.AveragePooling2D(2**r, name=f"condition_map_{r}")(
                condition_map
            )
        )
    return maps


def _network(x, filters, num_resnet, dropout, conditions):
    """The two streams through the up and the down pass: the down-right
    stream's last map, `(batch, H, W, filters)`."""
    embedding, condition_map = conditions
    maps = _condition_maps(condition_map)
    u = ShiftedConv2D(filters, (2, 3), "down", name="u_in")(x)
    u = Shift("down", name="u_shift")(u)
    above = ShiftedConv2D(filters, (1, 3), "down", name="ul_in_above")(x)
    above = Shift("down", name="ul_shift_above")(above)
    left = ShiftedConv2D(filters, (2, 1), "down_right", name="ul_in_left")(x)
    left = Shift("right", name="ul_shift_left")(left)
    ul = keras.layers.Add(name="ul_in")([above, left])
    # Up pass: every block's output is kept for the down pass.
    us, uls = [u], [ul]
    for r in range(RESOLUTIONS):
        if r:
            u = ShiftedConv2D(
                filters, (2, 3), "down", strides=2, name=f"up{r}_u_down"
            )(u)
            ul = ShiftedConv2D(
                filters, (2, 2), "down_right", strides=2, name=f"up{r}_ul_down"
            )(ul)
            us.append(u)
            uls.append(ul)
        args = (filters, dropout, (embedding, maps[r]))
        for i in range(num_resnet):
            u, ul = _block(u, ul, (None, None), *args, f"up{r}_{i}")
            us.append(u)
            uls.append(ul)
    # Down pass: back up the resolutions, joined with the up pass.
    u, ul = us.pop(), uls.pop()
    for r in reversed(range(RESOLUTIONS)):
        # One more block than the up pass where a resolution change came
        # in: it takes that change's output.
        args = (filters, dropout, (embedding, maps[r]))
        for i in range(num_resnet + (r < RESOLUTIONS - 1)):
            links = (us.pop(), uls.pop())
            u, ul = _block(u, ul, links, *args, f"down{r}_{i}")
        if r:
            u = ShiftedConv2DTranspose(
                filters, (2, 3), "down", name=f"down{r}_u_up"
            )(u)
            ul = ShiftedConv2DTranspose(
                filters, (2, 2), "down_right", name=f"down{r}_ul_up"
            )(ul)
    return ul


def _check_size(shape):
    step = 2 ** (RESOLUTIONS - 1)
    if shape[0] % step or shape[1] % step:
        raise ValueError(
            f"PixelCNN++ works at {RESOLUTIONS} resolutions, each half the "
            f"last: input_shape's height and width must divide by {step}. "
            f"Received: input_shape={tuple(shape)}"
        )


@register_family
class PixelCNNPlusPlus(PixelModel):
    """PixelCNN++: the network and likelihood of Salimans et al. (2017).

    The image, rescaled to [-1, 1], starts two streams: a down-shifted one
    (each pixel sees the rows above) and a down-right-shifted one (the
    rows above and the pixels to the left), so that together they see
    every earlier pixel, with no blind spot. An up pass runs `num_resnet`
    gated residual blocks at each of three resolutions (the second and
    third reached by stride-2 shifted convolutions), keeping every
    block's output; a down pass runs back up the resolutions (transposed
    shifted convolutions), one more block at each lower resolution, each
    block joined with the matching up-pass output (the skip connections).
    The head gives the parameters of a discretized logistic mixture of
    `num_mixtures` components per pixel (`pixel_models.logistic_mixture`).
    The paper's CIFAR-10 model (2.92 bits/dim) has `num_resnet=5`,
    `filters=160`, `num_mixtures=10`, `dropout=0.5`.

    Args:
        input_shape: `(H, W, C)`, H and W divisible by 4, C = 1 or 3.
        levels: number of pixel values (256 for 8-bit images).
        num_resnet: gated residual blocks per resolution in the up pass.
        filters: the streams' channels.
        num_mixtures: the mixture's components.
        dropout: dropout rate inside each block.
        num_classes: None, or a class count: the model then takes
            `[pixels, labels]`, and a learned label embedding adds a bias
            to every block's gate.
        condition_shape: None, or `(s_h, s_w, C)`: the model then also
            takes a small image (the Multi-Scale PixelRNN's first
            stage), whose upsampled map, average-pooled to each
            resolution, adds a 1x1 convolution of itself to every gate.
        **kwargs: `name` (default `"pixelcnn_pp"`) and the other
            arguments of `keras.Model`.

    The model maps pixel values in `[0, levels - 1]` (`(batch, H, W, C)`)
    to the mixture's parameters, `(batch, H, W, P)`, which depend on the
    earlier pixels only; `compile()` uses `LogisticMixtureNLL(levels)`.
    `sample` runs its exact fast sampler (`sampling/shifted.py`).

    Example:
    >>> model = PixelCNNPlusPlus((8, 8, 3), num_resnet=1, filters=8,
    ...                          num_mixtures=2, dropout=0.0)
    >>> model.output_shape
    (None, 8, 8, 20)
    """

    family = "pixelcnn_pp"

    def __init__(
        self,
        input_shape,
        levels=256,
        num_resnet=5,
        filters=160,
        num_mixtures=10,
        dropout=0.5,
        num_classes=None,
        condition_shape=None,
        name="pixelcnn_pp",
        **kwargs,
    ):
        arguments = {
            "input_shape": input_shape,
            "levels": levels,
            "num_resnet": num_resnet,
            "filters": filters,
            "num_mixtures": num_mixtures,
            "dropout": dropout,
            "num_classes": num_classes,
            "condition_shape": condition_shape,
        }
        shape, inputs, x, embedding, condition_map = start_model(
            input_shape,
            levels,
            num_resnet,
            {"filters": filters},
            dropout,
            num_classes,
            condition_shape=condition_shape,
            output="logistic_mixture",
            num_mixtures=num_mixtures,
        )
        _check_size(shape)
        conditions = (embedding, condition_map)
        ul = _network(x, filters, num_resnet, dropout, conditions)
        y = keras.layers.ELU(name="head_elu")(ul)
        channels = shape[2]
        params = keras.layers.Conv2D(
            num_parameters(channels, num_mixtures),
            1,
            name="mixture_parameters",
            dtype="float32",
        )(y)
        super().__init__(
            inputs[0] if len(inputs) == 1 else inputs,
            params,
            arguments=arguments,
            name=name,
            **kwargs,
        )

    @property
    def likelihood(self):
        return "logistic_mixture"


def build_pixelcnn_pp(*args, **kwargs):
    """Builds a `PixelCNNPlusPlus` (the same arguments)."""
    return PixelCNNPlusPlus(*args, **kwargs)
