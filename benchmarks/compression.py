"""Lossless compression with the presets against classical codecs, on the
same images.

For every preset of the data set: the bits/dim of `pixel_models.
compression` (the whole file: header, labels and coded words), the
model's own NLL on the images (`-log2 p(x)`), the overhead between them,
and encoding and decoding images/s (every round trip checked exact).
For the classical codecs, on the same images: PNG (Pillow, optimised;
1-bit for binary images), WebP lossless and JPEG XL lossless
(`imagecodecs`), one file per image; and gzip, bz2 and lzma of the whole
set in one archive (the bits packed, for binary images). The machine and
its dense float32 matmul roof are measured in the same run. Writes JSON
and prints a table.

Example:
    python -m benchmarks.compression --dataset binarized_mnist
    python -m benchmarks.compression --dataset cifar10  # 1,017 exact images
"""

import argparse
import bz2
import gzip
import io
import lzma
import time

import numpy as np

from benchmarks.common import describe_cpu, matmul_roof, write_report

# The images: all of binarized MNIST's test set; CIFAR-10's first 1,017
# test images, the ones with the exact official pixels.
DEFAULT_IMAGES = {"binarized_mnist": 10000, "cifar10": 1017}


def load_images(dataset, data_dir, count, seed):
    from pixel_models import data

    if dataset == "binarized_mnist":
        _, (x, y) = data.load_binarized_mnist(data_dir, seed=seed)
    elif dataset == "cifar10":
        _, (x, y) = data.load_cifar10(data_dir)
    else:
        raise ValueError(
            "dataset must be 'binarized_mnist' or 'cifar10'. "
            f"Received: dataset={dataset!r}"
        )
    x = x[:count]
    x = x[..., None] if x.ndim == 3 else x
    # Contiguous: the codecs refuse strided views (CIFAR-10's batches are
    # read channels-first and transposed).
    return np.ascontiguousarray(x, dtype="uint8"), y[:count]


def classical(images, binary):
    """Bytes of every classical codec on `images` `(n, H, W, C)` uint8."""
    import imagecodecs
    from PIL import Image

    def png(image):
        buffer = io.BytesIO()
        if binary:
            picture = Image.fromarray(image[..., 0].astype(bool))
        else:
            picture = Image.fromarray(image.squeeze())
        picture.save(buffer, format="PNG", optimize=True)
        return len(buffer.getvalue())

    visible = images * 255 if binary else images
    colour = visible if visible.shape[-1] == 3 else np.repeat(visible, 3, -1)
    sizes = {
        "PNG (Pillow, optimised)": sum(png(i) for i in images),
        "WebP lossless": sum(
            len(imagecodecs.webp_encode(i, lossless=True, level=100))
            for i in colour
        ),
        "JPEG XL lossless": sum(
            len(imagecodecs.jpegxl_encode(i.squeeze(), lossless=True, effort=9))
            for i in visible
        ),
    }
    raw = np.packbits(images).tobytes() if binary else images.tobytes()
    what = "packed bits" if binary else "bytes"
    sizes[f"gzip -9 of all the {what}"] = len(gzip.compress(raw, 9))
    sizes[f"bz2 -9 of all the {what}"] = len(bz2.compress(raw, 9))
    sizes[f"lzma (xz -9e) of all the {what}"] = len(
        lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    )
    return sizes


def balanced_batch_size(count, limit):
    """The size of the fewest equal batches of at most `limit` images that
    hold `count` (the coder pads the last batch to the batch size)."""
    batches = -(-count // limit)
    return -(-count // batches)


def measure_preset(name, images, labels, batch_size):
    """One preset's file: size, its model's NLL, speed, exactness."""
    from pixel_models.presets import load_preset

    model = load_preset(name, compile=False)
    return measure_model(model, name, images, labels, batch_size)


def measure_model(model, name, images, labels, batch_size):
    """`model`'s file of `images`: size, the model's NLL, speed,
    exactness (the preset's `name` goes in the file and the row)."""
    from pixel_models import compression
    from pixel_models.evaluation import log_prob
    from pixel_models.inputs import num_classes

    labels = labels if num_classes(model) else None
    start = time.perf_counter()
    blob = compression.compress(
        model, images, labels=labels, batch_size=batch_size, preset=name
    )
    encode = time.perf_counter() - start
    start = time.perf_counter()
    decoded = compression.decompress(model, blob)
    decode = time.perf_counter() - start
    if not np.array_equal(decoded, images):
        raise AssertionError(f"{name}: the round trip is not exact")
    dims = images.size
    bits = -log_prob(model, images, labels=labels).sum() / np.log(2)
    # The file stores the labels too, each uniform over the classes: the
    # model of what it holds is p(y) p(x | y) with that p(y).
    label_bits = 0.0
    if labels is not None:
        label_bits = len(images) * float(np.log2(num_classes(model)))
    return {
        "preset": name,
        "bytes": len(blob),
        "bits_per_dim": 8 * len(blob) / dims,
        "model_bits_per_dim": bits / dims,
        "label_bits_per_dim": label_bits / dims,
        "overhead": 8 * len(blob) / (bits + label_bits) - 1,
        "encode_images_per_s": len(images) / encode,
        "decode_images_per_s": len(images) / decode,
        "exact": True,
    }


def table(rows, codecs, dims):
    lines = [
        "| method | bits/dim | model NLL | overhead | encode img/s | "
        "decode img/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        model = f"{r['model_bits_per_dim']:.4f}"
        if r["label_bits_per_dim"]:
            model += f" + {r['label_bits_per_dim']:.4f} (labels)"
        lines.append(
            f"| {r['preset']} | **{r['bits_per_dim']:.4f}** | "
            f"{model} | {100 * r['overhead']:.2f}% | "
            f"{r['encode_images_per_s']:.1f} | {r['decode_images_per_s']:.1f} |"
        )
    for codec, size in codecs.items():
        lines.append(f"| {codec} | {8 * size / dims:.4f} | | | | |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="binarized_mnist")
    parser.add_argument("--presets", nargs="*", default=None)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from pixel_models.presets import list_presets, preset_card

    names = args.presets
    if names is None:
        names = [
            n
            for n in list_presets()
            if preset_card(n)["data"]["name"] == args.dataset
        ]
    seed = preset_card(names[0])["data"].get("binarization_seed") or 0
    count = args.max_images or DEFAULT_IMAGES.get(args.dataset, 1000)
    images, labels = load_images(args.dataset, args.data_dir, count, seed)
    roof = matmul_roof(False)["flops_per_s"]
    codecs = classical(images, binary=args.dataset == "binarized_mnist")
    batch_size = balanced_batch_size(len(images), args.batch_size)
    rows = []
    for name in names:
        rows.append(measure_preset(name, images, labels, batch_size))
        print(rows[-1], flush=True)
    text = table(rows, codecs, images.size)
    print(text)
    print(
        f"{len(images)} {args.dataset} test images; {describe_cpu()}; dense "
        f"float32 matmul roof {roof / 1e9:.0f} GFLOP/s in the same run."
    )
    out = args.out or f"benchmarks/results/compression_{args.dataset}.json"
    return write_report(
        out,
        rows,
        dataset=args.dataset,
        images=len(images),
        classical={k: 8 * v / images.size for k, v in codecs.items()},
        batch_size=batch_size,
        machine_description=describe_cpu(),
        matmul_flops=roof,
        table=text,
    )


if __name__ == "__main__":
    main()
