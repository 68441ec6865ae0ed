"""Trained models shipped with the package, each with a model card.

Each preset is a folder beside this file: `model.keras` (loaded with
`safe_mode=True`) and `card.json` (what was trained, on what, for how
long, the test NLL, the command that reproduces it, and the sha256 of the
model file). `recipes.py` holds how each one is trained and exported.

Example:
>>> from pixel_models import presets
>>> "pixelcnn_binarized_mnist" in presets.list_presets()
True
>>> model = presets.load_preset("pixelcnn_binarized_mnist")  # doctest: +SKIP
>>> from pixel_models.sampling import sample
>>> images = sample(model, 16, seed=0)  # doctest: +SKIP
"""

import hashlib
import json
import os

from pixel_models.presets.table import RECIPES

PRESETS_DIR = os.path.dirname(os.path.abspath(__file__))
# The files of a preset's folder.
PRESET_MODEL = "model.keras"
PRESET_CARD = "card.json"


def list_presets():
    """The names of the presets shipped with this installation, sorted."""
    return sorted(
        name
        for name in os.listdir(PRESETS_DIR)
        if os.path.isfile(os.path.join(PRESETS_DIR, name, PRESET_CARD))
    )


def sha256(path):
    """The sha256 of the file at `path`, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, expected, what):
    """Raises ValueError unless the file at `path` has sha256 `expected`.

    Args:
        path: the model file.
        expected: the sha256 its card gives, in hex.
        what: whose file it is, in words (`"preset 'x'"`).
    """
    digest = sha256(path)
    if digest != expected:
        raise ValueError(
            f"The model file of {what} at {path!r} is corrupted or was "
            f"replaced: its sha256 is {digest}, the card expects "
            f"{expected}. Reinstall pixel-models."
        )


def _folder(name):
    known = list_presets()
    if not isinstance(name, str) or name not in set(known) | set(RECIPES):
        raise ValueError(
            f"Unknown preset. name must be one of {known}. "
            f"Received: name={name!r}"
        )
    return os.path.join(PRESETS_DIR, name)


def preset_card(name):
    """The model card of preset `name`, as a dict.

    Raises:
        ValueError: `name` is not a preset (the message lists them).
        FileNotFoundError: the preset's `card.json` is missing.
    """
    path = os.path.join(_folder(name), PRESET_CARD)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Preset {name!r} has no card at {path!r}: it is not part of "
            "this installation (reinstall pixel-models, or export it with "
            "`python -m pixel_models.presets.recipes export "
            f"{name}`)."
        )
    with open(path) as f:
        return json.load(f)


def load_preset(name, compile=True):
    """Loads preset `name` as a `keras.Model`.

    The model file's sha256 is checked against the card before loading,
    and the model is loaded with `safe_mode=True`.

    Args:
        name: one of `list_presets()`.
        compile: compile the model with the project's loss (discrete NLL)
            and bits/dim metric, ready for `model.evaluate` or more
            training with a fresh Adam optimizer.

    Returns:
        The model, an instance of its family's class
        (`pixel_models.models.PixelCNN`, ...).

    Raises:
        ValueError: an unknown name (the message lists the known ones), or
            a model file whose sha256 is not the card's (corrupted or
            replaced).
        FileNotFoundError: the preset's card or model file is missing.

    Example:
    >>> model = load_preset("pixelcnn_binarized_mnist")  # doctest: +SKIP
    """
    import keras

    card = preset_card(name)
    path = os.path.join(_folder(name), PRESET_MODEL)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Preset {name!r} has a card but no model file at {path!r}: "
            "reinstall pixel-models."
        )
    check_sha256(path, card["sha256"], f"preset {name!r}")
    model = keras.models.load_model(path, compile=False, safe_mode=True)
    if getattr(model, "family", None) != card["family"]:
        raise ValueError(
            f"The model file of preset {name!r} at {path!r} holds a "
            f"{type(model).__name__}, not a model of family "
            f"{card['family']!r}: reinstall pixel-models."
        )
    if compile:
        model.compile()
    return model


__all__ = ["list_presets", "load_preset", "preset_card"]
