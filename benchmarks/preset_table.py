"""The presets page: a table of every preset, sample grids, and NLL curves.

Reads the shipped presets' cards (each holds its validation curve), draws
a sample grid from each preset with the fast sampler, plots validation
NLL against training images for the binarized MNIST presets, and writes
`docs/presets.md` with the pictures beside it in `docs/presets/`.

Example:
    python -m benchmarks.preset_table
"""

import argparse
import json
import os

import numpy as np

from benchmarks.common import (
    ROOT,
    TITLES,
    pyplot,
    replace_between_markers,
)
from pixel_models import presets
from pixel_models.losses import bits_per_dim_to_nats_per_image
from pixel_models.plotting import save_grid
from pixel_models.sampling import num_classes, sample

# The targets: within 2 nats of the paper (Gated: 82.0).
TARGETS = {
    "pixelcnn_binarized_mnist": 83.3,
    "row_lstm_binarized_mnist": 82.5,
    "diagonal_bilstm_binarized_mnist": 81.2,
    "gated_pixelcnn_binarized_mnist": 82.0,
}


def validation_nats(card):
    """`(images, nats, hours)` of a card's validation curve, as arrays."""
    shape = card["builder_arguments"]["input_shape"]
    curve = np.array(card["training"]["validation_curve"], dtype=float)
    nats = np.array(
        [bits_per_dim_to_nats_per_image(b, shape) for b in curve[:, 1]]
    )
    return curve[:, 0], nats, curve[:, 2]


def projection(card, target):
    """Where a validation curve is heading, and when it meets `target`.

    NLL curves of these runs fall about linearly in log(images seen): the
    best-so-far validation NLL over the last doubling of images (at least
    three epochs) is fitted as `a - k * log2(images)`, `k` the nats gained
    per doubling of the images seen. At that pace the target is met after
    `2 ** (gap / k)` times the images, and at the run's own images per
    hour that takes `hours_more` more hours. The gains per doubling shrink
    as a model nears its capacity, so this is a lower bound.

    Returns:
        A dict: `best` (nats), `hours` (trained), `per_doubling` (k),
        `images_needed` and `hours_more` (None where the curve is flat,
        0 where the target is met), and `intercept` (a) for plotting.
    """
    images, nats, hours = validation_nats(card)
    best = np.minimum.accumulate(nats)
    first = np.flatnonzero(images >= images[-1] / 2)[0]
    window = np.arange(max(min(first, len(images) - 3), 0), len(images))
    if len(window) >= 2:
        slope, intercept = np.polyfit(np.log2(images[window]), best[window], 1)
    else:
        slope, intercept = 0.0, best[-1]
    # Under a thousandth of a nat per doubling is no progress.
    per_doubling = -slope if -slope > 1e-3 else 0.0
    result = {
        "best": float(best[-1]),
        "hours": float(hours[-1]),
        "per_doubling": float(per_doubling),
        "images_needed": None,
        "hours_more": None,
        "intercept": float(intercept),
    }
    if best[-1] <= target:
        result.update(images_needed=float(images[-1]), hours_more=0.0)
    elif per_doubling > 0:
        needed = images[-1] * 2 ** ((best[-1] - target) / per_doubling)
        per_hour = images[-1] / hours[-1]
        result.update(
            images_needed=float(needed),
            hours_more=float((needed - images[-1]) / per_hour),
        )
    return result


def validation_target(card, target):
    """Test target `target` on the validation curve's scale: moved by the
    kept checkpoint's gap between its validation and test NLL (the
    validation images score 0.7-0.9 nats worse)."""
    _, nats, _ = validation_nats(card)
    return (
        target + float(nats.min()) - card["results"]["test"]["nats_per_image"]
    )


def heading(name, card):
    """A table row: the target, where the curve is, and where it heads.

    The targets are on the test set: a preset whose test NLL meets its
    target shows the hours its kept checkpoint took (measured, not
    projected).
    """
    target = TARGETS.get(name)
    if target is None:
        return None
    test = card["results"]["test"]["nats_per_image"]
    p = projection(card, validation_target(card, target))
    # The target on the validation scale is met exactly when the test NLL
    # meets the target, so the projection's own "met" case shows here.
    if test <= target:
        hours = card["training"]["wall_clock_hours"]
        needed, more = "-", f"reached on the test set, in {hours:.2f} h"
    elif p["hours_more"] is None:
        needed, more = "-", "flat"
    else:
        needed = f"{p['images_needed'] / 1e6:,.1f} M"
        more = f">= {p['hours_more']:,.1f}"
    return (
        f"| `{name}` | {target:.1f} | {test:.2f} | {p['best']:.2f} "
        f"| {p['hours']:.2f} | {p['per_doubling']:.2f} | {needed} | {more} |"
    )


def describe(card):
    """`(what, size)` words for a card's model."""
    args = card["builder_arguments"]
    what = TITLES[card["family"]]
    if args["num_classes"]:
        what = f"class-conditional {what}"
    size = f"{args['num_layers']} x h={args['width']}"
    return what, size


def nll_cell(card):
    """The test NLL as the table shows it: nats for MNIST, else bits/dim."""
    test = card["results"]["test"]
    if card["data"]["name"] == "binarized_mnist":
        return f"{test['nats_per_image']:.2f} nats"
    return f"{test['bits_per_dim']:.3f} bits/dim"


def quality_cell(name, card, results_dir=None):
    """The headline sample-quality figure of `benchmarks.sample_quality`
    (its results file), or "-" before that report has run: the Frechet
    distance in the classifier's features on MNIST, KID x 1000 on
    CIFAR-10 (fairer at the few thousand samples drawn there); "-" where
    the report measured other weights than the card's."""
    dataset = card["data"]["name"]
    results_dir = results_dir or os.path.join(ROOT, "benchmarks", "results")
    path = os.path.join(results_dir, f"sample_quality_{dataset}.json")
    if not os.path.exists(path):
        return "-"
    with open(path) as f:
        report = json.load(f)
    rows = [r for r in report["rows"] if r["name"] == name]
    # A figure of other weights (the preset re-exported since) is none;
    # the report gives the NLL in nats (MNIST) or bits/dim (CIFAR-10).
    test = card["results"]["test"]
    scored = (test["nats_per_image"], test["bits_per_dim"])
    if not rows or all(abs(rows[0]["nll"] - x) > 1e-6 for x in scored):
        return "-"
    if dataset == "binarized_mnist":
        return f"FD {rows[0]['frechet_distance']:.2f}"
    return f"KID {1000 * rows[0]['kid']:.1f}"


def plot_curves(cards, path):
    """Validation NLL (nats) against images seen, one line a preset."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for card in cards:
        images, nats, _ = validation_nats(card)
        label = "{} ({})".format(*describe(card))
        (line,) = ax.plot(images / 1e6, nats, marker=".", label=label)
        color = line.get_color()
        if card.get("paper_nats_per_image"):
            ax.axhline(
                card["paper_nats_per_image"],
                color=color,
                linestyle=":",
                linewidth=1,
            )
        target = TARGETS.get(card["name"])
        if target is not None:
            # The projection: on to the target, or to 16x the images.
            p = projection(card, validation_target(card, target))
            end = min(p["images_needed"] or np.inf, 16 * images[-1])
            ahead = np.geomspace(images[-1], end, 20)
            ax.plot(
                ahead / 1e6,
                p["intercept"] - p["per_doubling"] * np.log2(ahead),
                color=color,
                linestyle="--",
                linewidth=1,
            )
    ax.set_xscale("log")
    ax.set_xlabel("training images seen (millions)")
    ax.set_ylabel("validation NLL (nats/image)")
    ax.set_title(
        "Binarized MNIST presets (dotted: the paper's test figure; "
        "dashed: where each curve heads)",
        fontsize=10,
    )
    low = min(min(c.get("paper_nats_per_image") or 99, 99) for c in cards)
    ax.set_ylim(low - 2, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sample_grid(name, card, path, seed=0):
    """16 samples (or 4 of every class) from preset `name`, as a PNG."""
    model = presets.load_preset(name, compile=False)
    classes = num_classes(model)
    labels, cols = None, None
    num = 16
    if classes:
        labels = np.repeat(np.arange(classes), 4)
        num, cols = len(labels), 4
    images = sample(model, num, labels=labels, seed=seed, progress=False)
    levels = card["builder_arguments"]["levels"]
    title = "{} ({})".format(*describe(card))
    if classes:
        title += ": a row per class"
    return save_grid(images, path, levels=levels, cols=cols, title=title)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/presets.md")
    parser.add_argument(
        "--readme",
        default="README.md",
        help="also put the table between this file's presets markers",
    )
    args = parser.parse_args(argv)
    folder = os.path.join(os.path.dirname(args.out), "presets")
    os.makedirs(folder, exist_ok=True)
    names = presets.list_presets()
    cards = {name: presets.preset_card(name) for name in names}

    rows = [
        "| preset | model | params | test NLL | paper | sample quality "
        "| images seen | epochs | hours | test images |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, card in cards.items():
        what, size = describe(card)
        training = card["training"]
        paper = card.get("paper_nats_per_image")
        rows.append(
            f"| `{name}` | {what}, {size} | {card['parameters']:,} "
            f"| **{nll_cell(card)}** | {f'{paper:.2f}' if paper else '-'} "
            f"| {quality_cell(name, card)} "
            f"| {training['images_seen']:,} | {training['epochs']} "
            f"| {training['wall_clock_hours']:.2f} "
            f"| {card['results']['test']['first_images']:,} |"
        )
        print(rows[-1])

    mnist = [
        c for c in cards.values() if c["data"]["name"] == "binarized_mnist"
    ]
    curves = plot_curves(mnist, os.path.join(folder, "nll_vs_images.png"))
    grids = []
    for name, card in cards.items():
        path = os.path.join(folder, f"samples_{name}.png")
        sample_grid(name, card, path)
        grids.append(f"![{name}](presets/{os.path.basename(path)})")
        print(f"Wrote {path}")

    heading_rows = [
        "| preset | target (nats) | test NLL | best validation NLL "
        "| hours trained | nats gained per doubling of images, lately "
        "| images needed | hours more at that pace |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, card in cards.items():
        row = heading(name, card)
        if row:
            heading_rows.append(row)
            print(row)
    machines = {card["training"]["machine"] for card in cards.values()}
    machine = (
        machines.pop()
        if len(machines) == 1
        else "the machines each card names (`training.machine`: which "
        "machine trained which epochs, where a run went on across "
        "sessions)"
    )
    page = PAGE.format(
        table="\n".join(rows),
        heading="\n".join(heading_rows),
        curves=f"presets/{os.path.basename(curves)}",
        grids="\n".join(grids),
        machine=machine,
    )
    with open(args.out, "w") as f:
        f.write(page)
    print(f"Wrote {args.out}")
    if args.readme and os.path.exists(args.readme):
        replace_between_markers(args.readme, "presets table", "\n".join(rows))
    return cards


PAGE = """# Pretrained models (presets)

Generated by `python -m benchmarks.preset_table` from the shipped model cards
(`pixel_models/presets/NAME/card.json`).

Every preset loads in one line, with no data download:

```python
from pixel_models import presets
from pixel_models.sampling import sample

presets.list_presets()
model = presets.load_preset("gated_pixelcnn_binarized_mnist")
images = sample(model, 16, seed=0)  # uint8 (16, 28, 28, 1)
card = presets.preset_card("gated_pixelcnn_binarized_mnist")
```

or from the command line:
`python examples/sample.py --preset pixelcnn_binarized_mnist --out grid.png`
and `python examples/evaluate.py --preset pixelcnn_binarized_mnist`
(which needs the data set).

## The presets

Binarized MNIST: the project's fixed stochastic binarization (each pixel
is 1 with probability pixel/255, drawn once with seed 0), trained on the
first 55,000 training images, validated on the last 5,000, scored on all
10,000 test images; NLL in nats/image, the PixelRNN paper's figure
(table 4) beside it. CIFAR-10: bits/dim on the whole test batch; its
training images are partly decoded from a JPEG copy, so the figure is not
comparable with published ones (see the card). "Images seen" and "hours"
are those up to the kept checkpoint (the epoch of lowest validation NLL),
trained on {machine}.

{table}

The sizes are chosen to reach a good NLL on two CPU cores in hours, and
the runs are not finished: each goes on in later sessions with
`python -m pixel_models.presets.recipes train NAME`, which resumes a run
where it stopped (its resumable state is under `runs/presets/NAME/`), and
`python -m pixel_models.presets.recipes export NAME` writes the preset
and its card again.

## Validation NLL against training images

![Validation NLL against images seen]({curves})

Where each curve is heading, against the targets (within 2 nats of the
paper; Gated PixelCNN 82.0). The NLL of these runs falls about linearly
in log(images seen), so the best validation NLL over the last doubling
of the images is fitted by a line in log2(images) (dashed in the plot):
its slope is the nats gained per doubling of the images, and the gap to
the target (on the test set, so moved by the kept checkpoint's gap
between its validation and test NLL), at that pace and at the run's
images per hour, gives the images and hours still needed. The gains
per doubling shrink as a model nears what its size can reach, so these
are lower bounds; where they run to hundreds of hours, the size is what
has to change, not the length of the run. A preset that meets its
target on the test set shows the hours its kept checkpoint took,
measured.

{heading}

## Samples

Drawn with the fast sampler, seed 0, temperature 1.

{grids}
"""


if __name__ == "__main__":
    main()
