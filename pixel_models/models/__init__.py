"""The model families: one class each, and its builder function.

Each class is a functional `keras.Model` subclass built from its
arguments (`PixelCNN(input_shape, levels=..., ...)`), with `compile()`
defaults, `generate`, `log_prob`, `complete` and `from_preset`; each
builder (`build_pixelcnn`, ...) returns its class.
"""

from pixel_models.models.base import MODEL_CLASSES, PixelModel
from pixel_models.models.diagonal_bilstm import (
    DiagonalBiLSTMPixelRNN,
    build_diagonal_bilstm,
)
from pixel_models.models.gated_pixelcnn import (
    GatedPixelCNN,
    build_gated_pixelcnn,
)
from pixel_models.models.pixelcnn import PixelCNN, build_pixelcnn
from pixel_models.models.pixelcnn_pp import PixelCNNPlusPlus, build_pixelcnn_pp
from pixel_models.models.row_lstm import RowLSTMPixelRNN, build_row_lstm

# Family name -> (builder, name of its width argument).
MODEL_FAMILIES = {
    "pixelcnn": (build_pixelcnn, "filters"),
    "row_lstm": (build_row_lstm, "units"),
    "diagonal_bilstm": (build_diagonal_bilstm, "units"),
    "gated_pixelcnn": (build_gated_pixelcnn, "filters"),
    "pixelcnn_pp": (build_pixelcnn_pp, "filters"),
}
# Families whose depth argument is not `num_layers`: `build_model` passes
# `num_layers` under this name (PixelCNN++: blocks per resolution).
DEPTH_NAMES = {"pixelcnn_pp": "num_resnet"}


def build_model(family, input_shape, levels=256, *, width=None, **kwargs):
    """Builds a model of the named family.

    Args:
        family: one of `MODEL_FAMILIES` (e.g. `"pixelcnn"`).
        input_shape: `(H, W, C)`.
        levels: number of pixel values.
        width: h, passed as the family's width argument (`filters` for
            PixelCNN, `units` for the recurrent models); the builder's
            default when None.
        **kwargs: other builder arguments (`num_layers`, `dropout`, ...).

    Returns:
        The family's model class (`PixelCNN`, ...).
    """
    if family not in MODEL_FAMILIES:
        raise ValueError(
            f"model family must be one of {sorted(MODEL_FAMILIES)}. "
            f"Received: family={family!r}"
        )
    builder, width_name = MODEL_FAMILIES[family]
    if width is not None:
        kwargs[width_name] = width
    if family in DEPTH_NAMES and "num_layers" in kwargs:
        kwargs[DEPTH_NAMES[family]] = kwargs.pop("num_layers")
    return builder(input_shape, levels=levels, **kwargs)


__all__ = [
    "MODEL_CLASSES",
    "MODEL_FAMILIES",
    "DiagonalBiLSTMPixelRNN",
    "GatedPixelCNN",
    "PixelCNN",
    "PixelCNNPlusPlus",
    "PixelModel",
    "RowLSTMPixelRNN",
    "build_diagonal_bilstm",
    "build_gated_pixelcnn",
    "build_model",
    "build_pixelcnn",
    "build_pixelcnn_pp",
    "build_row_lstm",
]
