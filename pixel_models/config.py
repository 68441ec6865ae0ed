"""A training run's configuration: a dataclass, and the flags that set it.

`RunConfig` is what the library's training (`pixel_models.trainer`) and
the presets' recipes take: every field a flag of the training scripts
(`--num-layers` sets `num_layers`). `add_training_arguments` declares the
flags, grouped by what they set; `parse_flags` turns command-line words
into a `RunConfig`, over the defaults of a script (`SCRIPTS`) or of a
recipe.
"""

from __future__ import annotations

import argparse
import dataclasses

from pixel_models import data, models
from pixel_models.training import (
    LR_PATIENCE,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
)

# The training scripts' data sets and sizes (examples/train_mnist.py,
# examples/train_cifar.py).
SCRIPTS = {
    "train_mnist": {
        "datasets": ["binarized_mnist", "mnist"],
        "default_dataset": "binarized_mnist",
        "sizes": {"num_layers": 7, "width": 16, "batch_size": 64, "epochs": 20},
    },
    "train_cifar": {
        "datasets": ["cifar10"],
        "default_dataset": "cifar10",
        "sizes": {
            "num_layers": 15,
            "width": 129,
            "batch_size": 32,
            "epochs": 20,
        },
    },
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training session's settings: each field is the flag of the
    same name (see `add_training_arguments` for what each does)."""

    # model
    model: str = "pixelcnn"
    num_layers: int = 7
    width: int = 16
    dropout: float = 0.0
    output: str = "categorical"
    num_mixtures: int | None = None
    unroll: bool = False
    conditional: bool = False
    multiscale: int | None = None
    # data
    dataset: str = "binarized_mnist"
    validation_size: int | None = None
    binarization: str = "stochastic"
    max_train: int | None = None
    max_test: int | None = None
    image_size: int | None = None
    data_dir: str | None = None
    # optimization
    epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-3
    restart_learning_rate: float | None = None
    schedule: str | None = None
    lr_patience: int | None = None
    weight_decay: float = 0.0
    clipnorm: float = 1.0
    ema: float | None = None
    # machine
    strategy: str = "default"
    mixed_precision: str = "float32"
    deterministic: bool = False
    # run
    log_dir: str = "runs/latest"
    resume: str | None = None
    seed: int = 0
    patience: int = 5
    sample_every: int = 1
    quality_every: int = 0
    quality_samples: int = 500
    time_budget: float | None = None

    @classmethod
    def from_dict(cls, values):
        """A config from a dict such as `RUN_ARGS` holds: keys that are no
        field are left out, fields it lacks (a run older than them) keep
        their defaults, and strings (flags as typed) take the field's
        type."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        return cls(
            **{
                name: _typed(fields[name], value)
                for name, value in values.items()
                if name in fields
            }
        )

    @property
    def plateau_patience(self):
        """Epochs without a better validation NLL before the plateau
        schedule halves the rate (`lr_patience`, default `LR_PATIENCE`)."""
        return LR_PATIENCE if self.lr_patience is None else self.lr_patience

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _typed(field, value):
    """`value` (a string, where a flag typed it) as `field`'s type."""
    if not isinstance(value, str) or value == "":
        return value
    kind = field.type.split(" | ")[0] if isinstance(field.type, str) else ""
    if kind == "bool":
        return value.lower() in ("1", "true", "yes")
    return {"int": int, "float": float}.get(kind, str)(value)


def add_training_arguments(parser, *, datasets, default_dataset, sizes):
    """Adds the flags shared by the training scripts to `parser`.

    Args:
        parser: an `argparse.ArgumentParser`.
        datasets: data set names offered by `--dataset`.
        default_dataset: the default `--dataset`.
        sizes: dict of defaults for `--num-layers`, `--width`,
            `--batch-size`, `--epochs`.
    """
    _add_model_arguments(parser.add_argument_group("model"), sizes)
    _add_data_arguments(
        parser.add_argument_group("data"), datasets, default_dataset
    )
    _add_optimizer_arguments(parser.add_argument_group("optimization"), sizes)
    _add_machine_arguments(parser.add_argument_group("machine"))
    _add_run_arguments(parser.add_argument_group("run"))
    return parser


def parse_flags(words, script="train_mnist", defaults=None, parser=None):
    """The `RunConfig` of command-line `words`.

    Args:
        words: flags, as a script's command line holds them.
        script: whose data sets and sizes are the defaults (`SCRIPTS`).
        defaults: a `RunConfig` whose values the flags not given keep
            (a recipe's), in place of the script's defaults.
        parser: the parser to use (one built by `add_training_arguments`);
            a plain one by default.
    """
    if parser is None:
        parser = add_training_arguments(
            argparse.ArgumentParser(prog=script), **SCRIPTS[script]
        )
    if defaults is not None:  # over the parser's own (it is changed)
        parser.set_defaults(**defaults.to_dict())
    return RunConfig(**vars(parser.parse_args(list(words))))


def to_flags(values):
    """Command-line words for a dict of config fields (a recipe's)."""
    words = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not False and value is not None:
            words += [flag, str(value)]
    return words


def _add_model_arguments(group, sizes):
    """The model: family, size, conditioning."""
    group.add_argument(
        "--model",
        default="pixelcnn",
        choices=sorted(models.MODEL_FAMILIES),
        help="model family",
    )
    group.add_argument(
        "--num-layers",
        type=int,
        default=sizes["num_layers"],
        help="residual blocks / recurrent layers",
    )
    group.add_argument(
        "--width",
        type=int,
        default=sizes["width"],
        help="h: filters of a PixelCNN block / units of a recurrent layer",
    )
    group.add_argument(
        "--dropout", type=float, default=0.0, help="dropout rate in blocks"
    )
    group.add_argument(
        "--output",
        default="categorical",
        choices=["categorical", "logistic_mixture"],
        help="the likelihood: a softmax per sub-pixel, or a discretized "
        "logistic mixture per pixel (PixelCNN++; --model pixelcnn_pp "
        "always has one)",
    )
    group.add_argument(
        "--num-mixtures",
        type=int,
        default=None,
        help="components of the logistic mixture (default 10)",
    )
    group.add_argument(
        "--unroll",
        action="store_true",
        help="Row LSTM / Diagonal BiLSTM: unroll the keras.ops scans "
        "(minutes of tracing before the first step). On TensorFlow on a "
        "CPU in float32 the layers run fused scans instead, faster still "
        "(fused='auto', docs/performance.md), and this has no effect",
    )
    group.add_argument(
        "--conditional",
        action="store_true",
        help="train a class-conditional model on the data set's labels",
    )
    group.add_argument(
        "--multiscale",
        type=int,
        default=None,
        metavar="S",
        help="train a Multi-Scale model: an S x S model of the subsampled "
        "images, then a model of the images given them (each stage gets "
        "--epochs and half of --time-budget); LOG_DIR holds small.keras "
        "and large.keras",
    )


def _add_data_arguments(group, datasets, default_dataset):
    """The data set and its splits."""
    group.add_argument(
        "--dataset",
        default=default_dataset,
        help=f"one of {', '.join(datasets)}, or a folder of images",
    )
    group.add_argument(
        "--validation-size",
        type=int,
        default=None,
        help="training images held out for validation (default: 5000, or "
        "a tenth of a folder of images)",
    )
    group.add_argument(
        "--binarization",
        default="stochastic",
        choices=data.BINARIZATIONS,
        help="for binarized_mnist: stochastic (one fixed draw), threshold, "
        "or dynamic (training images drawn afresh in every pass; "
        "validation and test as stochastic)",
    )
    group.add_argument(
        "--max-train", type=int, default=None, help="use at most N train images"
    )
    group.add_argument(
        "--max-test", type=int, default=None, help="score at most N test images"
    )
    group.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square images made from a folder data set",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help=f"local data folder (default: ${data.DATA_DIR_ENV})",
    )


def _add_optimizer_arguments(group, sizes):
    """Steps, batches, the optimizer and weight averaging."""
    group.add_argument(
        "--epochs", type=int, default=sizes["epochs"], help="epochs to train"
    )
    group.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="train steps per epoch (default: one pass over the data)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=sizes["batch_size"],
        help="images per step",
    )
    group.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's"
    )
    group.add_argument(
        "--restart-learning-rate",
        type=float,
        default=None,
        metavar="RATE",
        help="with --resume: set the resumed optimizer's learning rate to "
        "RATE (a warm restart of a run whose rate has decayed on "
        "plateaus; weights, Adam's moments and any moving average kept)",
    )
    group.add_argument(
        "--schedule",
        default=None,
        choices=SCHEDULES,
        help="plateau (default): halve the learning rate after "
        "--lr-patience epochs without a better validation NLL; cosine: "
        "plan it for the run's length, half a cosine from the starting "
        "rate (--learning-rate; with --resume the model's own rate, or "
        "--restart-learning-rate) towards zero over --epochs. A killed "
        "run resumes on the schedule it started",
    )
    group.add_argument(
        "--lr-patience",
        type=int,
        default=None,
        help="--schedule plateau only: epochs without a better validation "
        "NLL before the learning rate is halved (default 2)",
    )
    group.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="decoupled weight decay (AdamW when > 0)",
    )
    group.add_argument(
        "--clipnorm", type=float, default=1.0, help="0: no clipping"
    )
    group.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="MOMENTUM",
        help="keep an exponential moving average of the weights (Polyak "
        "averaging, e.g. 0.999): validation, the best checkpoint's choice "
        "and the final model use the averaged weights",
    )


def _add_machine_arguments(group):
    """Devices, precision, determinism."""
    group.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="tf.distribute strategy; --batch-size is the global batch",
    )
    group.add_argument(
        "--mixed-precision",
        default="float32",
        choices=PRECISIONS,
        help="Keras dtype policy (logits and loss stay float32). On a CPU "
        "with bfloat16 instructions (avx512_bf16 or amx_bf16 in lscpu), "
        "mixed_bfloat16 trained the PixelCNN and Gated PixelCNN 1.3-1.9x "
        "faster, to the same NLL per image; the Row LSTM and Diagonal "
        "BiLSTM lose their fused scans under it and ran 0.8x and 0.4x: "
        "keep float32 for them. Without those instructions bfloat16 is "
        "emulated, about 10x slower than float32 (training warns) "
        "(docs/performance.md)",
    )
    group.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic ops: same --seed, same losses (slower)",
    )


def _add_run_arguments(group):
    """The run folder, resuming, stopping, logging."""
    group.add_argument(
        "--log-dir",
        default="runs/latest",
        help="run folder: TensorBoard logs, checkpoints, model.keras",
    )
    group.add_argument(
        "--resume",
        default=None,
        metavar="MODEL",
        help="continue training this .keras file (weights and optimizer "
        "state; its architecture and learning rate replace the model "
        "flags) for --epochs more epochs; epochs and counters go on from "
        "the run's history in LOG_DIR. A killed run needs no flag: rerun "
        "the same command and it resumes from its backup in LOG_DIR",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, the shuffle and the binarization",
    )
    group.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without a better validation NLL before stopping",
    )
    group.add_argument(
        "--sample-every",
        type=int,
        default=1,
        help="epochs between sample grids in TensorBoard (0: none)",
    )
    group.add_argument(
        "--quality-every",
        type=int,
        default=0,
        help="epochs between sample-quality figures (KID and the Frechet "
        "distance in the classifier preset's features, against test "
        "images) in TensorBoard (0: none; MNIST and CIFAR-10 shapes)",
    )
    group.add_argument(
        "--quality-samples",
        type=int,
        default=500,
        help="samples drawn for each --quality-every measurement",
    )
    group.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="stop after this many minutes of training, validation not "
        "counted (equal-budget runs)",
    )
