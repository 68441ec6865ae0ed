"""The project's compile defaults, in one place.

`PixelModel.compile()`, `training.compile_model` and
`MultiScale.compile` all take their optimizer and their likelihood from
here: Adam (AdamW with weight decay) at 1e-3 with gradients clipped to
norm 1, and the discrete NLL with bits/dim as its metric (a logistic
mixture output's own NLL and bits/dim).
"""

import keras

from pixel_models.logistic_mixture import (
    LogisticMixtureBitsPerDim,
    LogisticMixtureNLL,
)
from pixel_models.losses import BitsPerDim, DiscreteNLL

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_CLIPNORM = 1.0


def make_optimizer(
    learning_rate=DEFAULT_LEARNING_RATE,
    clipnorm=DEFAULT_CLIPNORM,
    weight_decay=0.0,
    ema_momentum=None,
):
    """Adam, or AdamW when `weight_decay` > 0, optionally keeping a
    moving average of the weights (`use_ema`) with `ema_momentum`.

    Args:
        learning_rate: the learning rate.
        clipnorm: clip each gradient to this norm (None for no clipping).
        weight_decay: decoupled weight decay (AdamW) when > 0.
        ema_momentum: momentum of the weights' moving average, in (0, 1);
            None for none.
    """
    if ema_momentum is not None and not 0 < ema_momentum < 1:
        raise ValueError(
            "ema_momentum must be in (0, 1), or None for no averaging. "
            f"Received: ema_momentum={ema_momentum!r}"
        )
    averaging = {}
    if ema_momentum is not None:
        averaging = {"use_ema": True, "ema_momentum": ema_momentum}
    if weight_decay:
        return keras.optimizers.AdamW(
            learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            **averaging,
        )
    return keras.optimizers.Adam(learning_rate, clipnorm=clipnorm, **averaging)


def default_likelihood(mixture_levels=None):
    """`(loss, metrics)` for a model's output: `DiscreteNLL()` and
    `[BitsPerDim()]`, or for a logistic mixture over `mixture_levels`
    levels its `LogisticMixtureNLL` and `LogisticMixtureBitsPerDim`."""
    if mixture_levels:
        return (
            LogisticMixtureNLL(mixture_levels),
            [LogisticMixtureBitsPerDim(mixture_levels)],
        )
    return DiscreteNLL(), [BitsPerDim()]
