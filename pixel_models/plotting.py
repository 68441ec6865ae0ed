"""Pictures of samples: grids for files and for TensorBoard."""

import math

import numpy as np


def image_grid(images, levels=256, cols=None, pad=1):
    """Tiles images into one uint8 picture, scaled to 0..255.

    Args:
        images: `(n, H, W, C)` pixel values in `[0, levels - 1]`.
        levels: number of pixel values (2 for binarized images).
        cols: images per row (default: about square).
        pad: pixels of white between images.

    Returns:
        uint8 array `(rows * (H + pad) + pad, cols * (W + pad) + pad, C)`.

    Example:
    >>> image_grid(np.ones((4, 2, 2, 1)), levels=2).shape
    (7, 7, 1)
    """
    images = np.asarray(images, "float32")
    n, height, width, channels = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    scaled = np.round(images * (255.0 / (levels - 1))).astype("uint8")
    grid = np.full(
        (rows * (height + pad) + pad, cols * (width + pad) + pad, channels),
        255,
        "uint8",
    )
    for k in range(n):
        r, c = divmod(k, cols)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top : top + height, left : left + width] = scaled[k]
    return grid


def save_grid(images, path, levels=256, cols=None, title=None):
    """Writes a grid of images to a PNG with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, levels, cols)
    size = max(3.0, grid.shape[1] / 40)
    fig, ax = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1]))
    cmap = "gray" if grid.shape[-1] == 1 else None
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap=cmap)
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
