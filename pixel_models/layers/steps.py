"""One-pixel steps: how a layer takes part in fast sampling.

The fast sampler (`pixel_models.sampling`) generates an image one pixel
at a time and, at each pixel, asks every layer for its output at that
pixel only. A layer takes part by giving itself three methods (a user's
layer can too; `docs/generation.md` walks through one):

- `pixel_init(inputs) -> (state, carry)`, once per sampling run: the
  layer's initial row state (anything it keeps from one row to the next)
  and its carry (what one pixel hands to the next in a row; it is zeros at
  the start of every row). Optional: `({}, {})`.
- `pixel_row(inputs, state, carries, row) -> (state, columns, outputs)`,
  when row `row` starts. Every input map is given as its last rows above,
  `(n, R, W, C)` (rows `row - R .. row - 1`, zeros above the image);
  `carries` is the carry of every pixel of the previous row, stacked on
  axis 1 (`(n, W, ...)`). It returns the new state, `columns` (a dict of
  `(n, W, ...)` tensors: work done for the whole row at once, handed to
  pixel `j` as its column `j`), and `outputs`: `{}`, or `{index: (n, W,
  C)}` for outputs that are only known a row late (row `row - 1`; a
  Gated PixelCNN's vertical stack, whose pixel sees pixels to its right).
  Optional: `(state, {}, {})`.
- `pixel_step(inputs, state, column, carry) -> (outputs, carry)`, at
  every pixel. Every input map is a `PixelInput`: its value at the
  pixel and the R values left of it in the row. `outputs` is the output
  at the pixel, `(n, channels)`, or a list with one entry per output
  (None for the outputs that `pixel_row` gives).

`pixel_reach` (an int attribute; 0 if absent) says how many rows above
and pixels to the left the layer reads. Inputs that do not depend on the
image (a label embedding) are given whole, as they are to `call`.

The rule that makes this exact: a layer's output at pixel p may depend on
its inputs at pixels up to p in raster order only (the autoregressive
order), and its outputs at p, apart from the logits, may not depend on the
last colour of p (true after a first mask-A convolution). Stock Keras
layers that act on each pixel alone (`STOCK_POINTWISE`) are run on the
pixel by their own `call`.
"""

import keras
from keras import ops


class PixelInput:
    """A layer input at the current pixel.

    Attributes:
        here: `(n, C)`, the value at the pixel; None for a map that is only
            known a row late.
        left: `(n, R, C)`, the values at the R pixels left of it in the
            row, nearest last (zeros left of the image); None when no
            layer reading the map reaches left.
    """

    def __init__(self, here, left=None):
        self.here = here
        self.left = left

    def window(self, width):
        """The pixel and `width` pixels left of it: `(n, width + 1, C)`."""
        here = self.here[:, None]
        if width == 0:
            return here
        left = self.left[:, self.left.shape[1] - width :]
        return ops.concatenate([left, here], axis=1)


def row_valid(row, dtype):
    """1.0 for rows > 0, else 0.0: zeroes what `pixel_row` computes for
    the row above the image, which the layers' own padding makes zero."""
    return ops.cast(ops.greater(row, 0), dtype)


def lstm_update(o, f, i, g, c_prev):
    """The LSTM update (PixelRNN paper, Eq. 3) from the pre-activations of
    its output, forget, input and content gates: returns `(h, c)`.

    The one gate update of the project: the recurrent layers' scans
    (`LineLSTMCell.line_step`) and their one-pixel steps both call it.
    """
    c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def lstm_gates(z, c_prev):
    """`lstm_update` of pre-activations stacked `[o, f, i, g]` on the last
    axis."""
    return lstm_update(*ops.split(z, 4, axis=-1), c_prev)


def scan(f, init, xs, reverse=False, y_spec=None):
    """`keras.ops.scan(f, init, xs, reverse=reverse)` for the sampler.

    `f(carry, x) -> (carry, y)`; `xs` and the `y`s are nested structures
    with the scanned axis first. On TensorFlow, `keras.ops.scan` requires
    every `y` to have the carry's shape and passes the carry through
    tensor arrays; here it is a `tf.while_loop` of known length with the
    carry as loop variables. Elsewhere, `keras.ops.scan` (`lax.scan` on
    JAX). `y_spec`, a structure of `keras.KerasTensor`s like a `y`, spares
    the call of `f` that finds it (TensorFlow traces `f` once less).
    """
    if keras.backend.backend() != "tensorflow":
        return ops.scan(f, init, xs, reverse=reverse)
    import tensorflow as tf

    flat_xs = keras.tree.flatten(xs)
    length = flat_xs[0].shape[0]
    arrays = [
        tf.TensorArray(x.dtype, size=length, element_shape=x.shape[1:]).unstack(
            x
        )
        for x in flat_xs
    ]

    def x_at(t):
        return keras.tree.pack_sequence_as(xs, [a.read(t) for a in arrays])

    if y_spec is None:  # one call outside the loop gives y's structure
        _, y_spec = f(init, x_at(length - 1 if reverse else 0))
    flat_spec = keras.tree.flatten(y_spec)
    outputs = [
        tf.TensorArray(y.dtype, size=length, element_shape=y.shape)
        for y in flat_spec
    ]

    def body(t, carry, outputs):
        index = length - 1 - t if reverse else t
        carry, y = f(carry, x_at(index))
        outputs = [
            o.write(index, v)
            for o, v in zip(outputs, keras.tree.flatten(y), strict=True)
        ]
        return t + 1, carry, outputs

    _, carry, outputs = tf.while_loop(
        lambda t, *_: t < length,
        body,
        (0, init, outputs),
        maximum_iterations=length,
    )
    ys = keras.tree.pack_sequence_as(y_spec, [o.stack() for o in outputs])
    return carry, ys


# Stock layers that act on every pixel alone, run at one pixel by calling
# them on a 1x1 map. (Dropout is the identity when sampling.)
STOCK_POINTWISE = (
    keras.layers.Rescaling,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.Activation,
    keras.layers.Add,
    keras.layers.Multiply,
    keras.layers.Dropout,
    keras.layers.Dense,
    keras.layers.Identity,
)


def stock_pixel_step(layer, inputs):
    """A stock layer's output at one pixel: `(n, ...)`.

    `inputs` mirrors the layer's call inputs, with `PixelInput`s for the
    maps. A pointwise layer is called on the pixel as a 1x1 map; a
    `Reshape` of `(H, W, ...)` maps reshapes the pixel to its trailing
    shape (the logits head: `(n, C, levels)`).
    """
    if isinstance(layer, keras.layers.Reshape):
        here = inputs.here
        return ops.reshape(here, (here.shape[0], *layer.target_shape[2:]))
    pixel = keras.tree.map_structure(
        lambda x: x.here[:, None, None, :] if isinstance(x, PixelInput) else x,
        inputs,
    )
    out = layer(pixel)
    return out[:, 0, 0]


def is_stock_step(layer):
    """Whether `stock_pixel_step` runs `layer` at one pixel."""
    if isinstance(layer, keras.layers.Reshape):
        # Only a reshape of each pixel's features: (H, W, ...).
        shape = layer.target_shape
        return len(shape) >= 3 and layer.input.shape[1:3] == shape[:2]
    return isinstance(layer, STOCK_POINTWISE)
