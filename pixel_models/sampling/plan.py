"""The fast sampler's plan of a model: its graph, split by what varies.

Public Keras API only. The layers that do not depend on the pixels (the
labels' embedding, the condition's maps) run once, eagerly; the ones that
do run one pixel at a time in the compiled row (`fast.py`), each with its
own step (`pixel_models/layers/steps.py`). The plan also knows how many
rows back each map must be kept and the carries at a row's start.
"""

import weakref

import keras
from keras import ops

from pixel_models.layers.steps import PixelInput, is_stock_step


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


def has_step(layer):
    return hasattr(layer, "pixel_step") or is_stock_step(layer)


class SamplerPlan:
    """What the fast sampler runs for one model, and in which order.

    `constant_nodes` run once per call; `steps` (every layer that depends
    on the pixels) run at every pixel; `history` names the maps whose
    last `reach` rows are kept.
    """

    def __init__(self, model, mixture_levels=None):
        # A weak reference: the sampler is kept with the model (in a
        # WeakKeyDictionary), so it must not keep the model alive.
        self.model = weakref.ref(model)
        inputs, nodes, self.output = model_graph(model)
        self.pixels = inputs[0]
        self.constant_inputs = inputs[1:]
        self.height, self.width, self.channels = model.inputs[0].shape[1:]
        # A logistic mixture head gives a pixel's parameters, from which
        # each channel's distribution over `mixture_levels` is computed.
        self.mixture = mixture_levels is not None
        self.model_levels = mixture_levels or model.output_shape[-1]
        varying = {self.pixels}
        self.constant_nodes, self.steps = [], []
        for layer, in_keys, out_keys in nodes:
            if not varying.intersection(keras.tree.flatten(in_keys)):
                self.constant_nodes.append((layer, in_keys, out_keys))
                continue
            if not has_step(layer):
                raise ValueError(
                    f"The fast sampler cannot run layer {layer.name!r} of "
                    f"type {type(layer).__name__} one pixel at a time. Give "
                    "it pixel_step (see docs/generation.md), or use "
                    "method='naive'."
                )
            varying.update(out_keys)
            self.steps.append((layer, in_keys, out_keys))
        if self.output not in varying:
            raise ValueError(
                f"The output of model {model.name!r} does not depend on "
                "its pixels input."
            )
        reach = [getattr(layer, "pixel_reach", 0) for layer, *_ in self.steps]
        self.reach = max(1, *reach)
        # Maps read above or left of the pixel keep their last rows.
        self.history = set()
        for layer, in_keys, _ in self.steps:
            if getattr(layer, "pixel_reach", 0):
                self.history.update(keras.tree.flatten(in_keys))
        self.history &= varying
        self.head = self._logits_head()
        self.compiled = {}

    def _logits_head(self):
        """The layer whose output the logits `Reshape` reshapes, if it
        can compute a slice of its output channels (`pixel_step_slice`):
        then a colour's pass computes only that colour's logits."""
        reshape, in_keys, out_keys = self.steps[-1]
        if out_keys != [self.output] or not isinstance(
            reshape, keras.layers.Reshape
        ):
            return None
        for layer, layer_in, layer_out in self.steps[:-1]:
            if in_keys in layer_out:
                readers = [
                    n for n in self.steps if in_keys in keras.tree.flatten(n[1])
                ]
                if hasattr(layer, "pixel_step_slice") and len(readers) == 1:
                    return layer, layer_in
        return None

    # Eager set-up -----------------------------------------------------

    def constants(self, values):
        """Every tensor that does not depend on the pixels (the labels and
        their embedding), computed once."""
        known = dict(zip(self.constant_inputs, values, strict=True))
        for layer, in_keys, out_keys in self.constant_nodes:
            out = layer(keras.tree.map_structure(known.get, in_keys))
            known.update(zip(out_keys, keras.tree.flatten(out), strict=True))
        return known

    def row_inputs(self, in_keys, above, constants):
        return keras.tree.map_structure(
            lambda k: constants[k] if k in constants else above.get(k), in_keys
        )

    def pixel_inputs(self, in_keys, values, left, constants):
        return keras.tree.map_structure(
            lambda k: (
                constants[k]
                if k in constants
                else PixelInput(values.get(k), left.get(k))
            ),
            in_keys,
        )

    def initial(self, n, constants):
        """The state before row 0, and the carries at a row's start."""
        r, w = self.reach, self.width
        channels = {self.pixels: self.channels}
        for layer, _, out_keys in self.steps:
            shapes = keras.tree.flatten(layer.output)
            channels.update(
                {k: t.shape[-1] for k, t in zip(out_keys, shapes, strict=True)}
            )
        above = {
            k: ops.zeros((n, r, w, channels[k]), "float32")
            for k in self.history
        }
        states, carries, starts = {}, {}, {}
        for layer, in_keys, _ in self.steps:
            inputs = self.row_inputs(in_keys, above, constants)
            init = getattr(layer, "pixel_init", None)
            state, carry = init(inputs) if init else ({}, {})
            states[layer.name], starts[layer.name] = state, carry
            carries[layer.name] = keras.tree.map_structure(
                lambda t: ops.repeat(t[:, None], w, axis=1), carry
            )
        state = {"above": above, "states": states, "carries": carries}
        return state, starts
