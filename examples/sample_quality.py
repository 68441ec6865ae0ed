"""Measure the quality of a model's samples: FID, KID, IS, precision and
recall, pixel statistics and memorisation, printed as a table.

Examples:
    python examples/sample_quality.py --preset gated_pixelcnn_binarized_mnist
    python examples/sample_quality.py runs/mnist/model.keras --num 2000 \
        --temperature 0.9 --json quality.json

The reference is the test set of the data the model was trained on
(binarized MNIST with the project's fixed binarization for 2-level
28 x 28 models, 8-bit MNIST for 256-level ones, CIFAR-10 for 32 x 32
colour ones); the training set gives the memorisation ratio. Features come
from the project's classifier presets (offline) or, with `--features
inception`, from InceptionV3 on ImageNet (its weights must be in Keras's
cache).
"""

import argparse
import json
import sys
import time

from pixel_models import data, quality
from pixel_models.inputs import image_shape, model_levels
from pixel_models.training import load_model_or_preset

# Which test set each kind of model is judged against.
DATASETS = {
    ((28, 28, 1), 2): "binarized_mnist",
    ((28, 28, 1), 256): "mnist",
    ((32, 32, 3), 256): "cifar10",
}
LOADERS = {
    "binarized_mnist": data.load_binarized_mnist,
    "mnist": data.load_mnist,
    "cifar10": data.load_cifar10,
}
# The rows of the printed table: key, label, format.
ROWS = (
    ("frechet_distance", "Frechet distance", "{:.3f}"),
    ("kid", "KID (x 1000)", "{:.3f}"),
    ("inception_score", "Inception Score", "{:.3f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("class_match", "samples in the asked class", "{:.3f}"),
    ("class_entropy", "class entropy (nats)", "{:.3f}"),
    ("histogram_tv", "pixel histogram TV", "{:.4f}"),
    ("mean_image_l2", "mean image L2 (levels)", "{:.3f}"),
    ("ink_mean_samples", "ink share, samples", "{:.4f}"),
    ("ink_mean_reference", "ink share, reference", "{:.4f}"),
    ("artifact_rate", "artifact rate", "{:.4f}"),
    ("memorisation_ratio", "memorisation ratio", "{:.3f}"),
    ("copies", "exact copies of training images", "{:.4f}"),
)


def reference_dataset(model):
    """The name of the data set a model is judged against."""
    key = (tuple(image_shape(model)), model_levels(model))
    if key not in DATASETS:
        raise ValueError(
            "No reference data set for models of shape "
            f"{key[0]} with {key[1]} levels: the known ones are "
            f"{sorted(DATASETS)}."
        )
    return DATASETS[key]


def format_table(result):
    """The figures of `result` as a two-column Markdown table."""
    lines = ["| figure | value |", "|---|---|"]
    for key, label, fmt in ROWS:
        if key not in result:
            continue
        value = result[key]
        if isinstance(value, dict):
            value = value.get("any", 0.0)
        if key == "kid":
            value = 1000 * value
        lines.append(f"| {label} | {fmt.format(value)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .keras file")
    parser.add_argument("--preset", default=None, help="a shipped preset")
    parser.add_argument("--num", type=int, default=1000, help="samples")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--features",
        default="classifier",
        choices=quality.evaluate.FEATURE_KINDS,
    )
    parser.add_argument(
        "--reference", type=int, default=10000, help="test images compared"
    )
    parser.add_argument(
        "--no-memorisation",
        action="store_true",
        help="skip the nearest-training-image search",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the dict")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        model = load_model_or_preset(args.model, args.preset)
        name = reference_dataset(model)
        (x_train, _), (x_test, _) = LOADERS[name](args.data_dir)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(
        f"Model {model.name}: {args.num} samples against {name}'s "
        f"{min(args.reference, len(x_test))} test images "
        f"({args.features} features)"
    )
    start = time.perf_counter()
    try:
        result = quality.sample_quality(
            model,
            x_test[: args.reference],
            num_samples=args.num,
            features=args.features,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            train_images=None if args.no_memorisation else x_train,
        )
    except (FileNotFoundError, OSError, ValueError) as error:
        parser.error(str(error))
    print(f"Measured in {time.perf_counter() - start:.1f} s")
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"Wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
