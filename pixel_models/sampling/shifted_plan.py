"""The plan of the fast sampler of shifted-convolution networks (PixelCNN++).

PixelCNN++ changes resolution: stride-2 shifted convolutions halve its
maps, transposed ones double them back, so a map at scale `s` (`H / s`
rows) has no value at most pixels. The sampler of `fast.py` runs every
map at every pixel; this one gives each map its own clock. From the
model's graph it learns, for every map, its scale and what it depends on:

- `"row"` maps (the down-shifted stream): their row `a` depends only on
  the image rows above `a * s`, so the whole row is computed once, when
  full-resolution row `a * s` starts (the row phase);
- `"pixel"` maps (the down-right-shifted stream): their value at `(a, b)`
  depends on the pixels before `(a * s, b * s)`, so it is computed at
  that pixel, in the loop over the row's pixels (the pixel phase);
- `"image"` maps (the pixels, rescaled) are known once drawn; a shifted
  convolution of them becomes a row or pixel map through the `Shift`
  that follows it.

The plan also knows how many rows of each map are kept. Its steps, the
values each node computes at a row's start or a pixel, are `shifted.py`.
"""

import keras
from keras import ops

from pixel_models.layers.shifted import Shift, ShiftedConv2D
from pixel_models.layers.shifted import ShiftedConv2DTranspose as Transposed
from pixel_models.sampling.contract import OnePixelSampler

IMAGE, ROW, PIXEL = "image", "row", "pixel"


def uses_shifted_layers(model):
    """Whether `model` is sampled by `ShiftedSampler`."""
    kinds = (ShiftedConv2D, Transposed, Shift)
    return any(isinstance(layer, kinds) for layer in model.layers)


def _segments(nodes):
    """`nodes` in runs of one scale: `[(scale, nodes), ...]`."""
    runs = []
    for node in nodes:
        if runs and runs[-1][0] == node.scale:
            runs[-1][1].append(node)
        else:
            runs.append((node.scale, [node]))
    return runs


class Node:
    """One layer of the graph: its inputs, output, kind, scale and the
    way it is computed (`op`)."""

    def __init__(self, layer, in_keys, out_key, op, kind, scale, source):
        self.layer, self.in_keys, self.out_key = layer, in_keys, out_key
        self.op, self.kind, self.scale = op, kind, scale
        # The map read spatially (convolutions, shifts): its key.
        self.source = source


def _refuse(layer, why):
    raise ValueError(
        f"The fast sampler cannot run layer {layer.name!r} of type "
        f"{type(layer).__name__} in a shifted-convolution network: {why}. "
        "Use method='naive'."
    )


class ShiftedPlan(OnePixelSampler):
    """The plan of a network of shifted convolutions: every map's kind
    and scale, its nodes in runs of one scale, and how many rows of each
    map are kept."""

    def __init__(self, model, mixture_levels=None):
        super().__init__(model, mixture_levels)
        if not self.mixture:
            raise ValueError(
                f"The fast sampler of shifted-convolution networks needs a "
                f"logistic mixture output; model {model.name!r} has another "
                "head. Use method='naive'."
            )
        self.kinds = {self.pixels: (IMAGE, 1)}
        self.nodes = []
        for layer, in_keys, out_keys in self.varying_nodes:
            varying = [
                k for k in keras.tree.flatten(in_keys) if k in self.varying
            ]
            if len(out_keys) != 1:
                _refuse(layer, "it has more than one output")
            node = self._node(layer, in_keys, out_keys[0], varying)
            self.kinds[out_keys[0]] = (node.kind, node.scale)
            if node.op != "merged":
                self.nodes.append(node)
        if self.kinds.get(self.output, (None,))[0] != PIXEL:
            raise ValueError(
                f"The output of model {model.name!r} is not a map of "
                "earlier pixels only: the fast sampler cannot run it."
            )
        self.scales = sorted({scale for _, scale in self.kinds.values()})
        self.group = self.scales[-1]
        if self.width % self.group or self.height % self.group:
            raise ValueError(
                f"The model's maps reach scale {self.group}: its height and "
                f"width must divide by it. Received: "
                f"{(self.height, self.width)}"
            )
        nodes = {
            kind: [x for x in self.nodes if x.kind == kind]
            for kind in (ROW, PIXEL, IMAGE)
        }
        self.row_segments = _segments(nodes[ROW])
        self.pixel_segments = _segments(nodes[PIXEL])
        self.image_nodes = nodes[IMAGE]  # the pixels, rescaled
        self.depth = self._depths()
        self.image_maps = [k for k in self.depth if self.kinds[k][0] == IMAGE]
        # The maps that the loop over a row's pixels writes.
        self.carried = [
            k for k in self.depth if self.kinds[k][0] in (IMAGE, PIXEL)
        ]

    # The plan ---------------------------------------------------------

    def _scale(self, layer):
        return self.height // layer.output.shape[1]

    def _node(self, layer, in_keys, out_key, varying):
        kinds = [self.kinds[k] for k in varying]
        scale = self._scale(layer)
        if isinstance(layer, (ShiftedConv2D, Transposed, Shift)):
            ((kind, _),) = kinds
            return self._spatial_node(
                layer, in_keys, out_key, kind, scale, varying[0]
            )
        if isinstance(layer, keras.layers.Conv2D) and (
            tuple(layer.kernel_size) != (1, 1) or tuple(layer.strides) != (1, 1)
        ):
            _refuse(layer, "only 1 x 1 convolutions act on one pixel")
        if isinstance(layer, keras.layers.Reshape):
            _refuse(layer, "reshapes are not pointwise")
        scales = {s for _, s in kinds}
        names = {k for k, _ in kinds}
        if len(scales) > 1:
            _refuse(layer, "its inputs are at different resolutions")
        if names & {"image_down", "image_right"}:
            _refuse(layer, "a first convolution is read by its shift only")
        if IMAGE in names and len(names) > 1:
            _refuse(layer, "it mixes the image with maps of earlier pixels")
        kind = IMAGE if IMAGE in names else PIXEL if PIXEL in names else ROW
        return Node(layer, in_keys, out_key, "pointwise", kind, scale, None)

    def _spatial_node(self, layer, in_keys, out_key, kind, scale, src):
        """The kind of a shifted convolution's or a shift's output."""
        if isinstance(layer, Shift):
            pending = self.kinds[src][0]
            wanted = {"down": "image_down", "right": "image_right"}
            if pending != wanted[layer.direction]:
                _refuse(layer, "a shift must follow the first convolution")
            # The convolution and its shift run as one node (its output
            # is the shift's).
            (conv,) = [n for n in self.nodes if n.out_key == src]
            conv.out_key = out_key
            conv.kind = ROW if layer.direction == "down" else PIXEL
            return Node(layer, in_keys, out_key, "merged", conv.kind, 1, src)
        down = layer.shift == "down"
        if kind == IMAGE:
            if isinstance(layer, Transposed) or layer.strides != (1, 1):
                _refuse(layer, "the image is read at its own resolution")
            pending = "image_down" if down else "image_right"
            return Node(layer, in_keys, out_key, pending, pending, 1, src)
        if kind in ("image_down", "image_right"):
            _refuse(layer, "a first convolution must be followed by a Shift")
        if kind == PIXEL and down:
            _refuse(
                layer, "a down-shifted convolution reads pixels to the right"
            )
        if isinstance(layer, Transposed):
            if tuple(layer.kernel_size) != (2, 3 if down else 2):
                _refuse(layer, "transposed kernels are 2 x 3 or 2 x 2 here")
            return Node(layer, in_keys, out_key, "transposed", kind, scale, src)
        op = "strided" if layer.strides != (1, 1) else "conv"
        return Node(layer, in_keys, out_key, op, kind, scale, src)

    def _depths(self):
        """How many rows of each map are kept (the current one last).

        Every row and image map keeps its current row at least; a pixel
        map keeps rows where a convolution reads it, or where a node of
        another run of `_segments` reads it at the same pixel.
        """
        depth = {self.pixels: 1}
        segment = {}
        for index, (_, nodes) in enumerate(self.pixel_segments):
            segment.update({node.out_key: index for node in nodes})
        for node in self.nodes:
            if node.kind != PIXEL:
                depth.setdefault(node.out_key, 1)
            for key in keras.tree.flatten(node.in_keys):
                if segment.get(key, segment.get(node.out_key)) != segment.get(
                    node.out_key
                ):
                    depth.setdefault(key, 1)
            if node.source is not None:
                kh = node.layer.kernel_size[0]
                need = {"image_down": kh + 1, "transposed": 1}.get(node.op, kh)
                depth[node.source] = max(depth.get(node.source, 1), need)
        return depth

    def initial(self, n, constants):
        """The state before row 0: every kept map's rows, zeros above the
        image."""
        state = {}
        for key, depth in self.depth.items():
            kind, scale = self.kinds[key]
            channels = self.channels
            if key != self.pixels:
                node = next(x for x in self.nodes if x.out_key == key)
                channels = node.layer.output.shape[-1]
            state[key] = ops.zeros(
                (n, depth, self.width // scale, channels), "float32"
            )
        return state
