"""The fast samplers' one contract, and the model graph they read.

Every family's fast sampler (`fast.FastSampler`; `shifted.ShiftedSampler`
for the networks that change resolution, PixelCNN++) subclasses
`OnePixelSampler` and implements its one-pixel steps. Two drivers run any
of them through those methods alone: the compiled row here (`row`: a
loop over a row's pixels that draws each sub-pixel from the seeded
noise) and the entropy coder's `stepper.PixelStepper` (each step compiled
on its own, a sub-pixel's values chosen in Python).
"""

import weakref

import keras
from keras import ops

from pixel_models.layers.steps import scan
from pixel_models.sampling.compile import compile_for_backend
from pixel_models.sampling.draw import draw


def model_graph(model):
    """The layers of a functional model, in order, with their tensors.

    Public Keras API only: `model.inputs`, `model.layers`, `layer.input`,
    `layer.output` (so a layer may be called once in the model).

    Returns:
        `(inputs, nodes, output)`: the keys of the model's inputs; one
        `(layer, input_keys, output_keys)` per layer, the input keys in
        the structure of the layer's call inputs, the output keys a flat
        list; and the key of the model's output.
    """
    keys = {id(t): f"input:{i}" for i, t in enumerate(model.inputs)}
    nodes = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        outputs = keras.tree.flatten(layer.output)
        try:
            inputs = keras.tree.map_structure(
                lambda t: keys[id(t)], layer.input
            )
        except KeyError:
            raise ValueError(
                f"The fast sampler needs the layers of model {model.name!r} "
                f"in the order they are called; layer {layer.name!r} comes "
                "before one of its inputs."
            ) from None
        names = [f"{layer.name}:{k}" for k in range(len(outputs))]
        keys.update(
            {id(t): name for t, name in zip(outputs, names, strict=True)}
        )
        nodes.append((layer, inputs, names))
    (output,) = model.outputs
    return [keys[id(t)] for t in model.inputs], nodes, keys[id(output)]


def _symbolic(tree):
    """`tree`'s tensors as `keras.KerasTensor`s of their shapes."""
    return keras.tree.map_structure(
        lambda t: keras.KerasTensor(tuple(t.shape), t.dtype), tree
    )


class OnePixelSampler:
    """A model's machinery for drawing its images one pixel at a time.

    A subclass implements the steps of one row of `n` images, `W` pixels
    wide, `C` channels of `levels` values each, in `keras.ops` (they run
    compiled): `initial`, `start_row`, `pixel_pass`, `log_probs`,
    `end_pixel`, `kept` and `end_row`. Their values are nested
    structures of tensors that the subclass chooses; the drivers only
    pass them on:

    - `state`: what a row hands to the next;
    - `context`: what every pixel of a row reads and none changes;
    - `carry`: what a pixel hands to the next pixel of its row;
    - `columns`: each pixel's own inputs, the row's pixels on axis 0
      (`(W, ...)`); pixel `j` is given its `column`, their entry `j`;
    - `pixel`: what a pass of the network at a pixel computed.

    At every pixel, channel `c` takes a new `pixel_pass` where `c <
    passes` (every channel of a categorical head, whose logits of a
    channel see the channels before it; the first alone of a mixture
    head, whose parameters see nothing of the pixel), then its
    `log_probs` from the last pass; then `end_pixel`. `kept` of every
    pixel's carry, stacked over the row on axis 0, goes to `end_row`. The
    base class gives the rest: `constants` (eager), and the compiled row
    (`row`, `compiled_row`) that draws every sub-pixel from its noise.

    Args:
        model: a functional model, computing in float32.
        mixture_levels: a logistic mixture head's levels a channel (then
            `log_probs` gives a channel's log-probabilities); None for a
            categorical head (its logits).

    Example:

    >>> model = build_pixelcnn((4, 4, 1), 2, num_layers=1, filters=4)
    >>> sampler = FastSampler(model)
    >>> constants = sampler.constants([])
    >>> state = sampler.initial(2, constants)
    >>> context, carry, columns = sampler.start_row(constants, state, 0)
    >>> column = keras.tree.map_structure(lambda t: t[0], columns)
    >>> here = ops.zeros((2, 1))
    >>> pixel = sampler.pixel_pass(constants, context, carry, column, here, 0)
    >>> tuple(sampler.log_probs(pixel, here, 0).shape)
    (2, 2)
    """

    # Whether XLA compiles the sampler's functions on TensorFlow.
    jit_compile = True

    def __init__(self, model, mixture_levels=None):
        # A weak reference: the sampler is kept with the model (in a
        # WeakKeyDictionary), so it must not keep the model alive.
        self.model = weakref.ref(model)
        inputs, graph, self.output = model_graph(model)
        self.pixels = inputs[0]
        self.constant_inputs = inputs[1:]
        # The layers that do not depend on the pixels run once
        # (`constants`); the varying ones, at the pixels.
        self.varying = {self.pixels}
        self.constant_nodes, self.varying_nodes = [], []
        for layer, in_keys, out_keys in graph:
            if self.varying.intersection(keras.tree.flatten(in_keys)):
                self.varying.update(out_keys)
                self.varying_nodes.append((layer, in_keys, out_keys))
            else:
                self.constant_nodes.append((layer, in_keys, out_keys))
        self.height, self.width, self.channels = model.inputs[0].shape[1:]
        # A logistic mixture head gives a pixel's parameters, from which
        # each channel's distribution over `mixture_levels` is computed.
        self.mixture = mixture_levels is not None
        self.model_levels = mixture_levels or model.output_shape[-1]
        self.passes = 1 if self.mixture else self.channels
        # The compiled functions, by what they were compiled for.
        self.compiled = {}

    # The steps a subclass implements ----------------------------------

    def initial(self, n, constants):
        """The state before row 0 (zeros above the image).

        Args:
            n: the number of images.
            constants: `constants`' values.

        Returns:
            The state.
        """
        raise NotImplementedError

    def start_row(self, constants, state, row):
        """The work a row does before its pixels.

        Args:
            constants: `constants`' values.
            state: the state after the rows above.
            row: the row's index, an int32 scalar tensor (or an int).

        Returns:
            `(context, carry, columns)`: the row's context, the carry at
            its first pixel and its columns (`(W, ...)`).
        """
        raise NotImplementedError

    def pixel_pass(self, constants, context, carry, column, here, c):
        """The network at a pixel, for channel `c` (`c < passes`).

        Args:
            constants, context: as `start_row` was given and gave them.
            carry: the carry the pixel to the left handed on.
            column: the pixel's column.
            here: `(n, C)` float32, the pixel's channels before `c` (the
                rest are zeros).
            c: the channel, a Python int.

        Returns:
            The pass's `pixel`.
        """
        raise NotImplementedError

    def log_probs(self, pixel, here, c):
        """Channel `c`'s distribution at a pixel.

        Args:
            pixel: the pixel's last `pixel_pass`.
            here: as for `pixel_pass`.
            c: the channel, a Python int.

        Returns:
            Its log-probabilities (a categorical head's logits), `(n,
            levels)` float32, each up to a constant per image.
        """
        raise NotImplementedError

    def end_pixel(self, constants, context, carry, column, here, pixel):
        """After a pixel's last channel: the carry to the next pixel.

        Args:
            constants, context, carry, column: as for `pixel_pass`.
            here: `(n, C)` float32, the pixel's values.
            pixel: the pixel's last `pixel_pass`.

        Returns:
            The carry.
        """
        raise NotImplementedError

    def kept(self, carry):
        """What `end_row` needs of a pixel, read from the carry that
        `end_pixel` gave there."""
        raise NotImplementedError

    def end_row(self, constants, context, carry, kept):
        """After a row's last pixel: the state after the row.

        Args:
            constants, context: as for `pixel_pass`.
            carry: the carry after the row's last pixel.
            kept: `kept` of every pixel, stacked on axis 0 (`(W, ...)`).

        Returns:
            The state.
        """
        raise NotImplementedError

    # What the base class gives ---------------------------------------

    def constants(self, values):
        """Every tensor that does not depend on the pixels (the labels and
        their embedding), computed once, by key; `values` are the model's
        inputs after the pixels."""
        known = dict(zip(self.constant_inputs, values, strict=True))
        for layer, in_keys, out_keys in self.constant_nodes:
            out = layer(keras.tree.map_structure(known.get, in_keys))
            known.update(zip(out_keys, keras.tree.flatten(out), strict=True))
        return known

    def given_constants(self, labels=None, condition=None):
        """`constants` of the model's other inputs, labels as int32 and
        the small image as float32 whatever their NumPy dtypes: the
        compiled steps take the constants as arguments, and a new dtype
        would trace them again."""
        values = [
            ops.convert_to_tensor(v, dtype)
            for v, dtype in ((labels, "int32"), (condition, "float32"))
            if v is not None
        ]
        return self.constants(values)

    def row(self, constants, state, row, noise, given, mask, options):
        """Samples row `row`. `noise`, `given`: `(n, W, C)`; `mask`: `(n, W)`,
        where `given` is kept; `options`: `(temperature, top_p,
        keep_logits)`.

        Returns `(state, pixels (n, W, C), logits (n, W, C, levels))`
        (logits None without `keep_logits`).
        """
        temperature, top_p, keep_logits = options
        n, channels = noise.shape[0], self.channels
        context, carry, columns = self.start_row(constants, state, row)
        first = lambda t: ops.moveaxis(t, 1, 0)  # noqa: E731
        xs = (columns, first(noise), first(given), first(mask))
        channel = ops.arange(channels)

        def step(carry, x):
            column, noise_j, given_j, mask_j = x
            here = ops.zeros((n, channels), "float32")
            logits = []
            for c in range(channels):
                if c < self.passes:
                    pixel = self.pixel_pass(
                        constants, context, carry, column, here, c
                    )
                out = self.log_probs(pixel, here, c)
                logits.append(out)
                v = draw(out, noise_j[:, c], temperature, top_p)
                v = ops.where(mask_j, given_j[:, c], ops.cast(v, "float32"))
                here = ops.where(channel == c, v[:, None], here)
            carry = self.end_pixel(
                constants, context, carry, column, here, pixel
            )
            ys = (here, self.kept(carry))
            if keep_logits:
                ys = ys + (ops.stack(logits, axis=1),)
            return carry, ys

        # The shapes of the ys: TensorFlow's loop then traces `step` once.
        y_spec = (
            keras.KerasTensor((n, channels), "float32"),
            self.kept(_symbolic(carry)),
        )
        if keep_logits:
            levels = self.model_levels
            y_spec += (keras.KerasTensor((n, channels, levels), "float32"),)
        carry, ys = scan(step, carry, xs, y_spec=y_spec)
        state = self.end_row(constants, context, carry, ys[1])
        last = lambda t: ops.moveaxis(t, 0, 1)  # noqa: E731
        return state, last(ys[0]), last(ys[2]) if keep_logits else None

    def compiled_row(self, n, options):
        """`row` compiled for the backend, once per batch size and options:
        called as `run(constants, state, row, noise, given, mask)`."""
        key = (n, *options)
        if key not in self.compiled:
            self.compiled[key] = compile_for_backend(
                lambda *args: self.row(*args, options),
                self.model(),
                jit_compile=self.jit_compile,
            )
        return self.compiled[key]
