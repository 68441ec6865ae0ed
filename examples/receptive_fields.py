"""Draw the receptive field of one pixel for each model family.

For a chosen output pixel, every input pixel is coloured by whether the
pixel's logits have a non-zero gradient with respect to it: seen, in the
causal past but unseen (PixelCNN's blind spot, Row LSTM's missing sides),
or in the future. The gradients come from TensorFlow, on freshly
initialised models, exactly as the causality tests compute them.

Example:
    python examples/receptive_fields.py --size 16 \
        --out docs/receptive_fields.png
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from pixel_models.models import build_model  # noqa: E402

FUTURE, UNSEEN, SEEN, PIXEL = 0, 1, 2, 3
COLOURS = ["#f0f0f0", "#e4572e", "#2e86ab", "#111111"]


def receptive_field(model, size, i, j, seed=0):
    """Input pixels the logits of output pixel `(i, j)` depend on."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(0, 1, (1, size, size, 1)), "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x)[0, i, j]
        # A random projection of the logits: zero gradient exactly where
        # every logit has a zero gradient (with probability one).
        w = tf.constant(rng.normal(size=logits.shape), "float32")
        out = tf.reduce_sum(logits * w)
    return tape.gradient(out, x).numpy()[0, :, :, 0] != 0


def field_map(seen, i, j):
    """Integer map: FUTURE, UNSEEN (causal past), SEEN, PIXEL."""
    size = seen.shape[0]
    order = np.arange(size * size).reshape(size, size)
    past = order < order[i, j]
    out = np.where(past, np.where(seen, SEEN, UNSEEN), FUTURE)
    out[i, j] = PIXEL
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--pixelcnn-layers", type=int, default=4)
    parser.add_argument("--row-lstm-layers", type=int, default=2)
    parser.add_argument("--diagonal-layers", type=int, default=1)
    parser.add_argument("--gated-layers", type=int, default=4)
    parser.add_argument("--out", default="docs/receptive_fields.png")
    args = parser.parse_args(argv)

    size = args.size
    i, j = size * 2 // 3, size // 2
    families = [
        ("pixelcnn", args.pixelcnn_layers, "PixelCNN"),
        ("row_lstm", args.row_lstm_layers, "Row LSTM"),
        ("diagonal_bilstm", args.diagonal_layers, "Diagonal BiLSTM"),
        ("gated_pixelcnn", args.gated_layers, "Gated PixelCNN"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14.5, 4.8))
    summary = {}
    for ax, (family, layers, title) in zip(axes, families, strict=True):
        print(f"{title}: {layers} layer(s) ...", flush=True)
        model = build_model(
            family, (size, size, 1), 2, num_layers=layers, width=16
        )
        seen = receptive_field(model, size, i, j)
        fmap = field_map(seen, i, j)
        unseen = int((fmap == UNSEEN).sum())
        summary[family] = unseen
        ax.imshow(fmap, cmap=ListedColormap(COLOURS), vmin=0, vmax=3)
        ax.set_title(f"{title}, {layers} layer(s)\n{unseen} past pixels unseen")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=COLOURS[k])
        for k in (SEEN, UNSEEN, FUTURE, PIXEL)
    ]
    fig.legend(
        handles,
        ["seen", "past, unseen", "future", "predicted pixel"],
        loc="lower center",
        ncol=4,
    )
    fig.suptitle(
        f"Receptive field of pixel ({i}, {j}) of a {size}x{size} image"
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.93))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"Wrote {args.out}; past pixels unseen: {summary}")
    return summary


if __name__ == "__main__":
    main()
