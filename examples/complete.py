"""Complete occluded test images with a model (the PixelRNN paper's Fig. 1).

Each row of the figure is one test image: the occluded image (unknown
pixels in grey), the model's completions, and the original.

Example:
    python examples/complete.py --preset gated_pixelcnn_binarized_mnist \\
        --rows 14 --num 6 --completions 4 --out completions.png
"""

import argparse
import sys

import numpy as np

from pixel_models import data
from pixel_models.inputs import model_levels
from pixel_models.presets import preset_card
from pixel_models.sampling import complete, num_classes
from pixel_models.training import load_model_or_preset


def read_mask(path, height, width):
    """A PNG as a boolean `(H, W)` mask: light pixels are given."""
    from PIL import Image

    image = Image.open(path).convert("L")
    if image.size != (width, height):
        raise ValueError(
            f"--mask must be a {width}x{height} image to match the model. "
            f"Received: {path} of {image.size[0]}x{image.size[1]}"
        )
    return np.asarray(image) >= 128


def figure(images, known, completions, levels, path, title=None):
    """Rows of occluded image, completions and original, as a PNG."""
    from pixel_models.plotting import save_grid

    n, k = completions.shape[:2]
    scale = 255.0 / (levels - 1)
    occluded = np.where(known[..., None], images * scale, 128.0)
    rows = [
        [occluded[i], *(completions[i] * scale), images[i] * scale]
        for i in range(n)
    ]
    tiles = np.stack([tile for row in rows for tile in row])
    return save_grid(
        np.round(tiles).astype("uint8"), path, levels=256, cols=k + 2,
        title=title,
    )  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "model", nargs="?", help="a .keras file written by training"
    )
    parser.add_argument("--preset", default=None, help="or a shipped model")
    parser.add_argument(
        "--dataset",
        default=None,
        help="test images from this data set (default with --preset: the "
        "preset's)",
    )
    parser.add_argument("--data-dir", default=None)
    given = parser.add_mutually_exclusive_group()
    given.add_argument(
        "--rows", type=int, default=None, help="top rows given (default H/2)"
    )
    given.add_argument(
        "--mask", default=None, help="a PNG of the image's size: light = given"
    )
    parser.add_argument("--num", type=int, default=6, help="test images")
    parser.add_argument("--completions", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="completions.png")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    try:
        model = load_model_or_preset(args.model, args.preset)
        seed = 0
        if args.preset:
            card_data = preset_card(args.preset).get("data", {})
            args.dataset = args.dataset or card_data.get("name")
            seed = card_data.get("seed") or 0
        if args.dataset is None:
            raise ValueError("--dataset is required with a model file")
        height, width, _ = model.inputs[0].shape[1:]
        conditional = num_classes(model) is not None
        splits = data.get_datasets(
            args.dataset,
            data_dir=args.data_dir,
            batch_size=args.num,
            validation_size=0,
            seed=seed,
            max_test=args.num,
            with_labels=conditional,
        )
        inputs, _ = next(iter(splits.test.as_numpy_iterator()))
        images, labels = inputs if conditional else (inputs, None)
        if args.mask:
            known = read_mask(args.mask, height, width)
        else:
            known = height // 2 if args.rows is None else args.rows
        completions = complete(
            model,
            images,
            known,
            labels=labels,
            num_completions=args.completions,
            temperature=args.temperature,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError, StopIteration) as error:
        parser.error(str(error) or "the data set has no test images")
    mask = known
    if isinstance(known, int):
        mask = np.zeros((height, width), bool)
        mask[:known] = True
    mask = np.broadcast_to(mask, images.shape[:3])
    title = f"occluded | {args.completions} completions | original"
    figure(images, mask, completions, model_levels(model), args.out, title)
    print(f"Wrote {args.out}")
    return completions


if __name__ == "__main__":
    main()
