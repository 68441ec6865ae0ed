"""Draw samples from a saved model and write them as a grid (PNG).

Example:
    python examples/sample.py runs/mnist/model.keras --num 16 --out grid.png

A Multi-Scale run's folder (holding small.keras and large.keras, from
`--multiscale S`) draws the small images first, then the large ones given
them; both grids are written (the small one as OUT_small.png).
"""

import argparse
import os
import sys
import time

import numpy as np

from pixel_models.inputs import model_levels
from pixel_models.plotting import save_grid
from pixel_models.sampling import num_classes, sample
from pixel_models.training import load_model_or_preset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model",
        nargs="?",
        help="a .keras file written by training, a Multi-Scale run's "
        "folder (or give --preset)",
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="a trained model shipped with the package instead, e.g. "
        "pixelcnn_binarized_mnist (see pixel_models.presets.list_presets)",
    )
    parser.add_argument("--num", type=int, default=16, help="images to draw")
    parser.add_argument("--out", default="samples.png")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="fast", choices=["fast", "naive"])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--cols", type=int, default=None, help="grid columns")
    parser.add_argument(
        "--save-npy", default=None, help="also save the uint8 images here"
    )
    parser.add_argument(
        "--label", type=int, default=None, help="class of every image"
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="N images of every class, one row per class (ignores --num)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    if args.model and os.path.isdir(args.model):
        return sample_multiscale(args, parser)
    try:
        model = load_model_or_preset(args.model, args.preset)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(f"Model {model.name}: {model.count_params():,} parameters")
    labels, cols, num = args.label, args.cols, args.num
    if args.per_class:
        classes = num_classes(model)
        if classes is None:
            parser.error(
                "--per-class needs a class-conditional model; "
                f"{args.model or args.preset} "
                "is not one."
            )
        labels = np.repeat(np.arange(classes), args.per_class)
        num, cols = len(labels), args.per_class
    start = time.perf_counter()
    try:
        images = sample(
            model,
            num,
            labels=labels,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            method=args.method,
            batch_size=args.batch_size,
        )
    except ValueError as error:
        parser.error(str(error))
    seconds = time.perf_counter() - start
    print(f"Drew {num} images in {seconds:.1f} s ({args.method})")
    save_grid(images, args.out, levels=model_levels(model), cols=cols)
    print(f"Wrote {args.out}")
    if args.save_npy:
        np.save(args.save_npy, images)
    return images


def sample_multiscale(args, parser):
    """Both stages of a Multi-Scale model, with the fast sampler."""
    from pixel_models.multiscale import MultiScale

    if args.method != "fast" or args.per_class:
        parser.error(
            "a Multi-Scale folder samples with --method fast and --label "
            "only (no --per-class)."
        )
    try:
        pair = MultiScale.load(args.model, compile=False)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(
        f"Multi-Scale model: {pair.small_shape} -> {pair.image_shape}, "
        f"{pair.count_params():,} parameters"
    )
    start = time.perf_counter()
    try:
        images, small = pair.sample(
            args.num,
            labels=args.label,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            return_small=True,
        )
    except ValueError as error:
        parser.error(str(error))
    print(f"Drew {args.num} images in {time.perf_counter() - start:.1f} s")
    stem, ext = os.path.splitext(args.out)
    save_grid(images, args.out, levels=pair.levels, cols=args.cols)
    save_grid(small, f"{stem}_small{ext}", levels=pair.levels, cols=args.cols)
    print(f"Wrote {args.out} and {stem}_small{ext}")
    if args.save_npy:
        np.save(args.save_npy, images)
    return images


if __name__ == "__main__":
    main()
