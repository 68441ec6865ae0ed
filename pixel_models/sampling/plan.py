"""The fast sampler's plan of a model: its graph, split by what varies.

Public Keras API only. The layers that do not depend on the pixels (the
labels' embedding, the condition's maps) run once, eagerly; the ones that
do run one pixel at a time (`fast.py`), each with its own step
(`pixel_models/layers/steps.py`). The plan also knows how many rows back
each map must be kept and the carries at a row's start.
"""

import keras
from keras import ops

from pixel_models.layers.steps import PixelInput, is_stock_step
from pixel_models.sampling.contract import OnePixelSampler


def has_step(layer):
    return hasattr(layer, "pixel_step") or is_stock_step(layer)


class SamplerPlan(OnePixelSampler):
    """What the fast sampler runs for one model, and in which order.

    `constant_nodes` run once per call; `steps` (every layer that depends
    on the pixels) run at every pixel; `history` names the maps whose
    last `reach` rows are kept.
    """

    def __init__(self, model, mixture_levels=None):
        super().__init__(model, mixture_levels)
        for layer, *_ in self.varying_nodes:
            if not has_step(layer):
                raise ValueError(
                    f"The fast sampler cannot run layer {layer.name!r} of "
                    f"type {type(layer).__name__} one pixel at a time. Give "
                    "it pixel_step (see docs/generation.md), or use "
                    "method='naive'."
                )
        self.steps = self.varying_nodes
        if self.output not in self.varying:
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
        self.history &= self.varying
        self.head = self._logits_head()

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
        """The state before row 0: zeros above the image, the layers'
        states, and their carries at a row's start (`"starts"`)."""
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
        return {
            "above": above, "states": states, "carries": carries,
            "starts": starts,
        }  # fmt: skip
