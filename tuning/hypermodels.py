"""KerasTuner hypermodels: they pick numbers and call the plain builders.

Each hypermodel takes its fixed arguments in `__init__` and, for every
tunable value, either a fixed value, a list of choices, or None for the
default search space. `build(hp)` only chooses values and calls the
builder from `pixel_models.models`; the defaults of every search space are
the paper's configuration for the data at hand (binarized MNIST when
`levels == 2`, CIFAR-10 otherwise).
"""

import keras_tuner

from pixel_models.models import (
    build_diagonal_bilstm,
    build_pixelcnn,
    build_row_lstm,
)
from pixel_models.training import compile_model

# (layers, width) of the paper's models. Widths for RGB are divisible
# by 3, so h = 128 becomes 129.
PAPER_SIZES = {
    "pixelcnn": {"mnist": (7, 16), "cifar10": (15, 128)},
    "row_lstm": {"mnist": (7, 16), "cifar10": (12, 128)},
    "diagonal_bilstm": {"mnist": (7, 16), "cifar10": (12, 128)},
}


def _rgb_width(width):
    return 3 * round(width / 3)


def _pick(hp, name, spec, default, choices):
    """A fixed value, a choice among `spec`, or the default space."""
    if spec is None:
        choices = sorted(set(choices) | {default})
        return hp.Choice(name, choices, default=default)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(
                f"{name} must be a value, a non-empty list of choices or "
                f"None. Received: {name}={spec!r}"
            )
        return hp.Choice(name, list(spec), default=spec[0])
    return hp.Fixed(name, spec)


class PixelHyperModel(keras_tuner.HyperModel):
    """Base of the three hypermodels; `family` names the builder.

    Args:
        input_shape: `(H, W, C)`.
        levels: number of pixel values (2 for binarized data).
        num_layers: fixed value, list of choices, or None (default space).
        width: h (`filters` or `units`); as `num_layers`.
        dropout: as `num_layers`.
        weight_decay: as `num_layers` (AdamW when > 0).
        learning_rate: as `num_layers`.
        name: hypermodel name.
        **builder_kwargs: other fixed builder arguments.
    """

    family = None
    builder = None
    width_name = None

    def __init__(
        self,
        input_shape,
        levels=256,
        *,
        num_layers=None,
        width=None,
        dropout=None,
        weight_decay=None,
        learning_rate=None,
        name=None,
        **builder_kwargs,
    ):
        super().__init__(name=name or self.family, tunable=True)
        self.input_shape = tuple(input_shape)
        self.levels = levels
        self.specs = {
            "num_layers": num_layers,
            "width": width,
            "dropout": dropout,
            "weight_decay": weight_decay,
            "learning_rate": learning_rate,
        }
        self.builder_kwargs = builder_kwargs

    def paper_size(self):
        """(layers, width) of the paper's model for this data."""
        data = "mnist" if self.levels == 2 else "cifar10"
        layers, width = PAPER_SIZES[self.family][data]
        if self.input_shape[-1] == 3:
            width = _rgb_width(width)
        return layers, width

    def build(self, hp):
        layers, width = self.paper_size()
        rgb = self.input_shape[-1] == 3
        widths = [16, 32, 64, 128]
        if rgb:
            widths = [_rgb_width(w) for w in widths]
        s = self.specs
        num_layers = _pick(
            hp, "num_layers", s["num_layers"], layers, [1, 3, 7, 12, 15]
        )
        width = _pick(hp, "width", s["width"], width, widths)
        dropout = _pick(hp, "dropout", s["dropout"], 0.0, [0.0, 0.1, 0.25, 0.5])
        weight_decay = _pick(
            hp, "weight_decay", s["weight_decay"], 0.0, [0.0, 1e-5, 1e-4, 1e-3]
        )
        learning_rate = _pick(
            hp, "learning_rate", s["learning_rate"], 1e-3, [1e-4, 3e-4, 1e-3]
        )
        model = type(self).builder(
            self.input_shape,
            levels=self.levels,
            num_layers=num_layers,
            dropout=dropout,
            **{self.width_name: width},
            **self.builder_kwargs,
        )
        return compile_model(model, learning_rate, weight_decay=weight_decay)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, **kwargs)


class PixelCNNHyperModel(PixelHyperModel):
    """Hypermodel of `build_pixelcnn`. Arguments: see `PixelHyperModel`.

    Example:
    >>> hm = PixelCNNHyperModel((28, 28, 1), levels=2, dropout=[0.0, 0.5])
    >>> model = hm.build(keras_tuner.HyperParameters())  # doctest: +SKIP
    """

    family = "pixelcnn"
    builder = staticmethod(build_pixelcnn)
    width_name = "filters"


class RowLSTMHyperModel(PixelHyperModel):
    """Hypermodel of `build_row_lstm`. Arguments: see `PixelHyperModel`."""

    family = "row_lstm"
    builder = staticmethod(build_row_lstm)
    width_name = "units"


class DiagonalBiLSTMHyperModel(PixelHyperModel):
    """Hypermodel of `build_diagonal_bilstm`. Arguments: see
    `PixelHyperModel`."""

    family = "diagonal_bilstm"
    builder = staticmethod(build_diagonal_bilstm)
    width_name = "units"


HYPERMODELS = {
    "pixelcnn": PixelCNNHyperModel,
    "row_lstm": RowLSTMHyperModel,
    "diagonal_bilstm": DiagonalBiLSTMHyperModel,
}
