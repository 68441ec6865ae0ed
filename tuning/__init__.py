"""KerasTuner hypermodels and searches for every model family."""

from tuning.hypermodels import (
    HYPERMODELS,
    DiagonalBiLSTMHyperModel,
    PixelCNNHyperModel,
    PixelHyperModel,
    RowLSTMHyperModel,
)

__all__ = [
    "HYPERMODELS",
    "DiagonalBiLSTMHyperModel",
    "PixelCNNHyperModel",
    "PixelHyperModel",
    "RowLSTMHyperModel",
]
