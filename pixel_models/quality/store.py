"""The classifier presets' folders: one class reads and writes them.

Each preset is `pixel_models/quality/presets/NAME/` holding `model.keras`
(the classifier, saved uncompiled, loaded with `safe_mode=True`) and
`card.json` (its test accuracies, data, hours, machine and the model
file's sha256). `ClassifierPreset` names these files, writes them
atomically and is their only reader.
"""

import json
import os

from pixel_models.runs import replacing, write_json

PRESETS_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "presets"
)
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
# The classifier presets the project trains (pixel_models.quality.recipes).
CLASSIFIER_PRESETS = ("cifar10_classifier", "mnist_classifier")


class ClassifierPreset:
    """The folder of classifier preset `name`.

    Args:
        name: one of `CLASSIFIER_PRESETS`.
        root: the folder of the presets (`PRESETS_DIR` if None).

    Raises:
        ValueError: an unknown name (the message lists the known ones).

    Example:
    >>> preset = ClassifierPreset("mnist_classifier")
    >>> preset.card()["test_accuracy"]  # doctest: +SKIP
    {'mnist': 0.9956, 'binarized_mnist': 0.9931}
    """

    def __init__(self, name, root=None):
        if name not in CLASSIFIER_PRESETS:
            raise ValueError(
                "Unknown classifier preset. name must be one of "
                f"{list(CLASSIFIER_PRESETS)}. Received: name={name!r}"
            )
        self.name = name
        self.folder = os.path.join(root or PRESETS_DIR, name)
        self.model_path = os.path.join(self.folder, MODEL_FILE)
        self.card_path = os.path.join(self.folder, CARD_FILE)

    def card(self):
        """The card, a dict."""
        if not os.path.isfile(self.card_path):
            raise FileNotFoundError(
                f"Classifier preset {self.name!r} has no card at "
                f"{self.card_path!r}: train it with `python -m "
                f"pixel_models.quality.recipes {self.name}`."
            )
        with open(self.card_path) as f:
            return json.load(f)

    def load_model(self):
        """The classifier, its file checked against the card's sha256."""
        import keras

        from pixel_models.presets import check_sha256

        card = self.card()
        if not os.path.isfile(self.model_path):
            raise FileNotFoundError(
                f"Classifier preset {self.name!r} has a card but no model "
                f"file at {self.model_path!r}: reinstall pixel-models."
            )
        check_sha256(
            self.model_path, card["sha256"], f"classifier preset {self.name!r}"
        )
        return keras.models.load_model(
            self.model_path, compile=False, safe_mode=True
        )

    def write(self, model, card):
        """Writes `model` (uncompiled: weights and architecture only) and
        `card` with the model file's sha256; returns the card."""
        import keras

        from pixel_models.presets import sha256

        os.makedirs(self.folder, exist_ok=True)
        # The architecture alone: a compiled model would carry its
        # optimizer (and the recipe's schedule) into the file.
        plain = keras.Model.from_config(model.get_config())
        plain.set_weights(model.get_weights())
        # Written beside, then renamed over: a crash keeps the old file.
        with replacing(self.model_path) as partial:
            plain.save(partial)
        card = {**card, "sha256": sha256(self.model_path)}
        write_json(self.card_path, card)
        return card


def list_classifier_presets(root=None):
    """The names of the classifier presets installed, sorted."""
    return sorted(
        name
        for name in CLASSIFIER_PRESETS
        if os.path.isfile(ClassifierPreset(name, root).card_path)
    )


def classifier_card(name):
    """The card of classifier preset `name`, a dict."""
    return ClassifierPreset(name).card()
