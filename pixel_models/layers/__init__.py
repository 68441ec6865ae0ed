"""Keras layers of pixel-models, all registered for `.keras` save/load."""

from pixel_models.layers.masked_conv import MaskedConv2D

__all__ = ["MaskedConv2D"]
