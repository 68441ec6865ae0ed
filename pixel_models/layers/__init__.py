"""Keras layers of pixel-models, all registered for `.keras` save/load."""

from pixel_models.layers.conditioning import ConditionBias, ConditionMap
from pixel_models.layers.diagonal_bilstm import DiagonalBiLSTM
from pixel_models.layers.dropout import FastDropout
from pixel_models.layers.gated import GatedPixelCNNBlock
from pixel_models.layers.lstm_cell import LineLSTMCell
from pixel_models.layers.masked_conv import MaskedConv2D
from pixel_models.layers.row_lstm import RowLSTM
from pixel_models.layers.shifted import (
    ConcatELU,
    Gate,
    Shift,
    ShiftedConv2D,
    ShiftedConv2DTranspose,
)
from pixel_models.layers.skew import Skew, Unskew
from pixel_models.layers.steps import PixelInput

__all__ = [
    "ConcatELU",
    "ConditionBias",
    "ConditionMap",
    "DiagonalBiLSTM",
    "FastDropout",
    "Gate",
    "GatedPixelCNNBlock",
    "LineLSTMCell",
    "MaskedConv2D",
    "PixelInput",
    "RowLSTM",
    "Shift",
    "ShiftedConv2D",
    "ShiftedConv2DTranspose",
    "Skew",
    "Unskew",
]
