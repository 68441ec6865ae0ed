"""The training scripts' command line: help, and errors in flag terms.

`examples/train_mnist.py` and `examples/train_cifar.py` parse the flags
of `pixel_models.config` (`make_parser`) into a `RunConfig`; an error met
while setting up a run is reworded in the flags' terms (`in_flag_terms`).
"""

import argparse
import re

from pixel_models.config import add_training_arguments, parse_flags


class _ShowDefaults(argparse.HelpFormatter):
    """Help that ends with each flag's default, unless it says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        hidden = action.default is None or action.default is False
        if "default" in text or hidden or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def make_parser(description, **kwargs):
    """The parser of a training script (`add_training_arguments`)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=_ShowDefaults
    )
    return add_training_arguments(parser, **kwargs)


def parse_args(description, argv, **kwargs):
    """Builds the parser of a training script and parses `argv` into a
    `RunConfig`."""
    return parse_flags(argv, parser=make_parser(description, **kwargs))


# Library argument names and the training scripts' flags for them, so
# that an error met while setting up a run names the flag the user typed.
FLAG_NAMES = {
    "validation_size": "--validation-size",
    "max_train": "--max-train",
    "max_test": "--max-test",
    "batch_size": "--batch-size",
    "image_size": "--image-size",
    "steps_per_epoch": "--steps-per-epoch",
    "data_dir": "--data-dir",
    "name": "--dataset",
    "binarization": "--binarization",
    "ema_momentum": "--ema",
    "num_mixtures": "--num-mixtures",
}


def in_flag_terms(message):
    """`message` with library argument names turned into flag names."""
    pattern = r"\b(" + "|".join(FLAG_NAMES) + r")\b(?==| must| is)"
    return re.sub(pattern, lambda m: FLAG_NAMES[m.group(1)], message)
