"""Score a saved model: test NLL in bits/dim and nats/image.

Example:
    python examples/evaluate.py runs/mnist/model.keras \
        --dataset binarized_mnist --data-dir ../shared/data
    python examples/evaluate.py --preset pixelcnn_binarized_mnist \
        --per-image nll.csv
"""

import argparse
import os
import sys

import numpy as np

from pixel_models import data
from pixel_models.evaluation import log_prob
from pixel_models.inputs import image_shape, model_levels, num_classes
from pixel_models.presets import preset_card
from pixel_models.training import (
    compile_model,
    evaluate_nll,
    load_model_or_preset,
)


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    model = _load_model(parser, args)
    splits = _load_splits(parser, args, model)
    test, num = splits.test, splits.num_test
    split = "test"
    if not num:
        test, num, split = splits.train, splits.num_train, "all"
    if getattr(model, "optimizer", None) is None:
        compile_model(model)
    results = evaluate_nll(model, test, splits.image_shape, num)
    print(
        f"{model.name} on {args.dataset} ({split} split, {num} images): "
        f"{results['bits_per_dim']:.4f} bits/dim, "
        f"{results['nats_per_image']:.2f} nats/image"
    )
    if args.per_image:
        results["per_image"] = write_per_image(
            model, test, args.per_image, args.batch_size
        )
    return results


def _parser():
    """The command line: what to score, on which data, and how."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model",
        nargs="?",
        help="a .keras file written by training (or give --preset)",
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="a trained model shipped with the package instead, e.g. "
        "pixelcnn_binarized_mnist (see pixel_models.presets.list_presets)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="mnist, binarized_mnist, cifar10, tfds:NAME or a folder "
        "(default with --preset: the preset's data set)",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-test", type=int, default=None, help="score at most N images"
    )
    parser.add_argument(
        "--per-image",
        default=None,
        metavar="OUT.csv",
        help="also write each image's NLL (nats and bits/dim) to this CSV",
    )
    parser.add_argument(
        "--binarization",
        default="stochastic",
        choices=["stochastic", "threshold"],
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="binarization seed (default: the preset's, or 0)",
    )
    return parser


def _load_model(parser, args):
    """Loads the model to score; fills in `args.dataset` and `args.seed`.

    With `--preset` they default to the preset card's; `args.seed` is 0
    if nothing gives one.
    """
    try:
        model = load_model_or_preset(args.model, args.preset)
        if args.preset:
            # The preset's own data set and binarization seed by default.
            card_data = preset_card(args.preset).get("data", {})
            if args.dataset is None:
                args.dataset = card_data.get("name")
            if args.seed is None:
                args.seed = card_data.get("seed")
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if args.dataset is None:
        parser.error("--dataset is required with a model file")
    if args.seed is None:
        args.seed = 0
    return model


def _load_splits(parser, args, model):
    """The data set's splits, checked against the model's inputs."""
    height, width, channels = image_shape(model)
    try:
        splits = data.get_datasets(
            args.dataset,
            data_dir=args.data_dir,
            batch_size=args.batch_size,
            validation_size=0,
            image_size=(height, width)
            if args.dataset not in data.DATASET_NAMES
            else None,
            binarization=args.binarization,
            seed=args.seed,
            max_test=args.max_test,
            with_labels=num_classes(model) is not None,
        )
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    levels = model_levels(model)  # a mixture's, not its outputs'
    if (
        splits.image_shape != (height, width, channels)
        or splits.levels != levels
    ):
        parser.error(
            f"The data set {args.dataset!r} has images of shape "
            f"{splits.image_shape} with {splits.levels} levels, but the model "
            f"expects shape {(height, width, channels)} with {levels} levels."
        )
    return splits


def write_per_image(model, dataset, path, batch_size):
    """Scores every image of `dataset` and writes one CSV row per image.

    Columns: `index` (the image's place in the split), `label` (empty for
    an unconditional model's data), `nats` (-log p(x), or -log p(x | y)
    for a conditional model) and `bits_per_dim`.

    Returns:
        float64 array of the NLL of each image in nats.
    """
    import csv
    import math

    import keras

    nats, labels = [], []
    dims = math.prod(model.inputs[0].shape[1:])
    bar = keras.utils.Progbar(None, unit_name="batch")
    for inputs, _ in dataset.as_numpy_iterator():
        x, y = inputs if isinstance(inputs, tuple) else (inputs, None)
        nats.append(-log_prob(model, x, labels=y, batch_size=batch_size))
        labels.extend([""] * len(x) if y is None else y.tolist())
        bar.add(1)
    nats = np.concatenate(nats)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "nats", "bits_per_dim"])
        for index, (value, label) in enumerate(zip(nats, labels, strict=True)):
            bpd = value / (dims * math.log(2.0))
            writer.writerow([index, label, f"{value:.6f}", f"{bpd:.8f}"])
    print(
        f"Wrote {len(nats)} per-image NLLs to {path} (mean "
        f"{nats.mean():.4f} nats/image)"
    )
    return nats


if __name__ == "__main__":
    main()
