"""Compress images losslessly with a model, or decompress them.

Compresses a folder of images, a `.npz` (`images`, and `labels` for a
class-conditional model) or a data set's split into one file, and prints
its bits/dim against the model's NLL; decompresses such a file back to
PNGs (a folder) or a `.npz`. Files are written whole or not at all.

Example:
    python examples/compress.py compress \\
        --preset gated_pixelcnn_binarized_mnist --max-images 1000 \\
        --output digits.pxmz
    python examples/compress.py decompress \\
        --preset gated_pixelcnn_binarized_mnist --input digits.pxmz \\
        --output digits/
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from pixel_models import compression, data
from pixel_models.evaluation import log_prob
from pixel_models.inputs import model_levels, num_classes
from pixel_models.presets import preset_card
from pixel_models.training import load_model_or_preset


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        model = load_model_or_preset(args.model, args.preset)
        if args.command == "compress":
            return _compress(model, args)
        return _decompress(model, args)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["compress", "decompress"])
    parser.add_argument("--model", help="a .keras file (or give --preset)")
    parser.add_argument("--preset", help="a shipped preset's name")
    parser.add_argument(
        "--input",
        help="compress: a folder of images or a .npz (or give --dataset); "
        "decompress: the compressed file",
    )
    parser.add_argument(
        "--dataset",
        help="compress a data set's split instead: mnist, binarized_mnist "
        "or cifar10 (default with --preset: the preset's)",
    )
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--output",
        required=True,
        help="compress: the file to write; decompress: a folder (PNGs) or "
        "a .npz",
    )
    return parser


def _load_images(model, args):
    """The images (and labels) to compress, as `(images, labels)`."""
    labels = None
    if args.input and args.input.endswith(".npz"):
        with np.load(args.input) as f:
            images = f["images"]
            labels = f["labels"] if "labels" in f else None
    elif args.input:
        images = _read_folder(args.input, model)
    else:
        name = args.dataset
        card = preset_card(args.preset)["data"] if args.preset else {}
        name = name or card.get("name")
        if name not in ("mnist", "binarized_mnist", "cifar10"):
            raise ValueError(
                "Give --input, or --dataset mnist, binarized_mnist or "
                f"cifar10. Received: --dataset={name!r}"
            )
        loader = {
            "mnist": data.load_mnist,
            "cifar10": data.load_cifar10,
            "binarized_mnist": lambda d: data.load_binarized_mnist(
                d,
                method=card.get("binarization") or "stochastic",
                seed=card.get("binarization_seed") or 0,
            ),
        }[name]
        train, test = loader(args.data_dir)
        images, labels = train if args.split == "train" else test
    if images.ndim == 3:
        images = images[..., None]
    if args.max_images:
        images = images[: args.max_images]
        labels = None if labels is None else labels[: args.max_images]
    if num_classes(model) is None:
        labels = None
    return images, labels


def _read_folder(folder, model):
    from PIL import Image

    names = sorted(
        n for n in os.listdir(folder) if n.lower().endswith((".png", ".bmp"))
    )
    if not names:
        raise ValueError(f"--input {folder!r} holds no .png or .bmp images.")
    images = np.stack(
        [np.asarray(Image.open(os.path.join(folder, n))) for n in names]
    )
    if model_levels(model) == 2 and set(np.unique(images)) <= {0, 255}:
        images = images // 255  # black and white PNGs of binary images
    return images


def _write_atomically(path, write):
    """Calls `write(temporary path)`, then moves the file into place."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".partial")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _compress(model, args):
    images, labels = _load_images(model, args)
    start = time.perf_counter()
    blob = compression.compress(
        model,
        images,
        labels=labels,
        batch_size=args.batch_size,
        preset=args.preset,
        progress=True,
    )
    seconds = time.perf_counter() - start

    def write(path):
        with open(path, "wb") as f:
            f.write(blob)

    _write_atomically(args.output, write)
    dims = images[0].size * len(images)
    nll = -log_prob(model, images, labels=labels).sum() / np.log(2)
    bits = len(blob) * 8
    report = {
        "images": len(images),
        "bytes": len(blob),
        "bits_per_dim": bits / dims,
        "model_bits_per_dim": nll / dims,
        "overhead": bits / nll - 1,
        "images_per_s": len(images) / seconds,
    }
    print(
        f"{args.output}: {len(images)} images, {len(blob):,} bytes, "
        f"{report['bits_per_dim']:.4f} bits/dim (the model's NLL: "
        f"{report['model_bits_per_dim']:.4f}, overhead "
        f"{100 * report['overhead']:.2f}%), "
        f"{report['images_per_s']:.1f} images/s"
    )
    return report


def _decompress(model, args):
    if not args.input:
        raise ValueError("decompress needs --input, the compressed file.")
    with open(args.input, "rb") as f:
        blob = f.read()
    start = time.perf_counter()
    images, labels, _ = compression.decompress(
        model, blob, return_inputs=True, progress=True
    )
    seconds = time.perf_counter() - start
    if args.output.endswith(".npz"):
        arrays = {"images": images}
        if labels is not None:
            arrays["labels"] = labels

        def write(path):
            with open(path, "wb") as f:
                np.savez(f, **arrays)

        _write_atomically(args.output, write)
    else:
        _write_pngs(images, args.output, model_levels(model))
    print(
        f"{args.output}: {len(images)} images decoded, "
        f"{len(images) / seconds:.1f} images/s"
    )
    return {"images": len(images), "images_per_s": len(images) / seconds}


def _write_pngs(images, folder, levels):
    """One PNG per image (binary images as black and white), written to a
    temporary folder first and moved into place whole."""
    from PIL import Image

    if os.path.exists(folder):
        raise ValueError(f"--output {folder!r} exists: give a new folder.")
    parent = os.path.dirname(os.path.abspath(folder))
    temporary = tempfile.mkdtemp(dir=parent, suffix=".partial")
    try:
        scale = 255 if levels == 2 else 1
        width = len(str(len(images) - 1))
        for i, image in enumerate(images):
            pixels = (image * scale).astype("uint8")
            pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            Image.fromarray(pixels).save(
                os.path.join(temporary, f"{i:0{width}d}.png")
            )
        os.replace(temporary, folder)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary)


if __name__ == "__main__":
    main()
