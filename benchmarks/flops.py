"""FLOPs per image of each model family, counted from its weights.

Every kernel does one multiply and one add per weight at each position
where it is applied:

- a convolution kernel, at every pixel (all convolutions here keep the
  image size; masked weights are multiplied too, as hardware does, but a
  `MaskedConv2D` only multiplies the kernel rows down to its centre, the
  rows below being all masked);
- a Row LSTM state-to-state kernel, at every pixel (one row per step);
- a Diagonal BiLSTM state-to-state kernel, at every cell of the skewed
  map, `H * (H + W - 1)`, in each direction;
- a dense kernel (label conditioning), once per image; an embedding is a
  lookup.

Element-wise work (gates, activations, biases, the softmax) is left out:
it is a few per cent of the total at the paper's widths. A training step
costs about three forward passes (the backward pass computes gradients
with respect to both activations and weights).

Example:
    python -m benchmarks.flops
"""

import argparse
import math

from benchmarks.common import DATASETS, FAMILIES, SMALL_SIZES, paper_size
from pixel_models.layers import DiagonalBiLSTM, MaskedConv2D

TRAIN_FLOPS_PER_FORWARD = 3


def _layer_flops(layer, height, width):
    if isinstance(layer, DiagonalBiLSTM):
        total = 0
        for conv in layer.input_to_state:
            total += 2 * math.prod(conv.kernel.shape) * height * width
        skewed = height * (height + width - 1)
        for cell in layer.cells:
            total += 2 * math.prod(cell.state_kernel.shape) * skewed
        return total
    if isinstance(layer, MaskedConv2D):
        rows = layer.kernel_size[0] // 2 + 1
        per_row = math.prod(layer.kernel.shape) // layer.kernel_size[0]
        return 2 * rows * per_row * height * width
    total = 0
    for weight in layer.trainable_weights:
        if len(weight.shape) in (3, 4):  # convolution or state kernel
            total += 2 * math.prod(weight.shape) * height * width
        elif len(weight.shape) == 2 and "embedding" not in weight.path:
            total += 2 * math.prod(weight.shape)  # once per image
    return total


def forward_flops(model):
    """Multiply-add FLOPs of one forward pass, per image."""
    height, width = model.inputs[0].shape[1:3]
    return sum(_layer_flops(layer, height, width) for layer in model.layers)


def train_flops(model):
    """FLOPs of one training step, per image (3 forward passes' worth)."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops(model)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    from pixel_models.models import build_model

    print(
        f"{'family':<16}{'data':<9}{'layers':>7}{'width':>7}{'GFLOP/img':>11}"
    )
    for family in FAMILIES:
        # The small sizes, then the papers' CIFAR-10 size.
        for name, (layers, width) in (
            *SMALL_SIZES.items(),
            ("cifar10", paper_size(family)),
        ):
            shape, levels = DATASETS[name]
            model = build_model(
                family, shape, levels, num_layers=layers, width=width
            )
            gflops = forward_flops(model) / 1e9
            print(f"{family:<16}{name:<9}{layers:>7}{width:>7}{gflops:>11.3f}")


if __name__ == "__main__":
    main()
