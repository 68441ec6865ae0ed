"""tf.data input pipelines for autoregressive image models.

Loaders return uint8 NumPy arrays `(N, H, W, C)`; `make_dataset` turns them
into `tf.data.Dataset`s of `(x, x)` batches (the model predicts its own
input, one sub-pixel at a time); `get_datasets` does both for the data sets
the training scripts know by name. Where TensorFlow is not installed (a
JAX or PyTorch machine, such as a GPU server's), the same batches come from
`ArrayBatches`, a `keras.utils.PyDataset`, so training runs there too.

Pixels stay integers `0 .. levels - 1` (cast to float32): the models
rescale internally and the discrete NLL needs the integer targets.

Real data lives in a data directory: the `data_dir` argument, else the
`PIXEL_MODELS_DATA_DIR` environment variable. It holds `mnist.npz` (or
`mnist/mnist.npz`) and a `cifar-10-batches-py` folder (directly or one level
down). Files are read as they are, never checksum-verified: local copies may
legitimately differ from the official downloads. Only when no local file is
found do the loaders fall back to the Keras downloaders.
"""

import copy
import dataclasses
import importlib.util
import math
import numbers
import os
import pathlib
import pickle
import re
import sys
import warnings

import keras
import numpy as np

from pixel_models.checks import check_int
from pixel_models.inputs import (
    check_values,
    labels_expected,
    pixel_values_expected,
)

DATA_DIR_ENV = "PIXEL_MODELS_DATA_DIR"

# The formats `keras.utils.image_dataset_from_directory` accepts.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

DATASET_NAMES = ("mnist", "binarized_mnist", "cifar10", "tfds:NAME")
# How `get_datasets` binarizes "binarized_mnist".
BINARIZATIONS = ("stochastic", "threshold", "dynamic")

_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_BATCH = "test_batch"


def tensorflow_installed():
    """True where TensorFlow can be imported (Keras 3 runs without it)."""
    return importlib.util.find_spec("tensorflow") is not None


def resolve_data_dir(data_dir=None):
    """Returns the data directory to read local data sets from.

    Args:
        data_dir: explicit directory, or `None`.

    Returns:
        `data_dir` if given, else the value of `$PIXEL_MODELS_DATA_DIR`,
        else `None`.

    Example:
    >>> resolve_data_dir("/data")
    '/data'
    """
    if data_dir is not None:
        return data_dir
    return os.environ.get(DATA_DIR_ENV) or None


def _missing_data_error(dataset, searched, download_error):
    if searched:
        places = ", ".join(str(p) for p in searched)
        where = f"No local copy found (searched: {places})"
    else:
        where = f"No data directory given and ${DATA_DIR_ENV} is not set"
    return FileNotFoundError(
        f"Could not load {dataset}. {where}, and the download failed "
        f"({type(download_error).__name__}: {download_error}). Pass "
        f"data_dir= (or --data-dir in the scripts) or set {DATA_DIR_ENV} "
        "to a directory holding the data."
    )


def load_mnist(data_dir=None):
    """Loads the MNIST digits as 8-bit images.

    Reads `mnist.npz` (the file format of `keras.datasets.mnist`) from
    `DATA_DIR/mnist.npz` or `DATA_DIR/mnist/mnist.npz`; only if neither
    exists does it fall back to `keras.datasets.mnist.load_data()`, which
    downloads.

    Args:
        data_dir: data directory; defaults to `$PIXEL_MODELS_DATA_DIR`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: `x` uint8 of shape
        `(N, 28, 28, 1)`, `y` int64 of shape `(N,)`.

    Example:
    >>> (x_train, _), (x_test, _) = load_mnist("/data")  # doctest: +SKIP
    >>> x_train.shape, x_test.shape  # doctest: +SKIP
    ((60000, 28, 28, 1), (10000, 28, 28, 1))
    """
    root = resolve_data_dir(data_dir)
    searched = []
    if root is not None:
        root = pathlib.Path(root).expanduser()
        searched = [root / "mnist.npz", root / "mnist" / "mnist.npz"]
    path = next((p for p in searched if p.is_file()), None)
    if path is not None:
        # Plain np.load, not keras' loader: local copies need not match the
        # sha256 keras checks.
        with np.load(path) as f:
            splits = [(f[f"x_{s}"], f[f"y_{s}"]) for s in ("train", "test")]
    else:
        try:
            splits = keras.datasets.mnist.load_data()
        except Exception as err:
            raise _missing_data_error("MNIST", searched, err) from err
    return tuple(
        (np.asarray(x, "uint8")[..., None], np.asarray(y, "int64"))
        for x, y in splits
    )


def binarize(images, method="stochastic", seed=0):
    """Binarizes 8-bit images to 0/1.

    Args:
        images: uint8 array of pixel values in `[0, 255]`, any shape.
        method: `"stochastic"`: each pixel is 1 with probability
            `pixel / 255`, drawn once from `np.random.default_rng(seed)`,
            so the binarization is fixed, as in the binarized-MNIST
            literature; `"threshold"`: 1 where `pixel >= 128`.
        seed: seed (or `np.random.SeedSequence`) of the stochastic draw.

    Returns:
        uint8 array of the same shape, values 0 and 1.

    Example:
    >>> binarize(np.array([0, 127, 128, 255], "uint8"), "threshold")
    array([0, 0, 1, 1], dtype=uint8)
    """
    images = np.asarray(images)
    if method == "threshold":
        return (images >= 128).astype("uint8")
    if method != "stochastic":
        raise ValueError(
            "method must be 'stochastic' or 'threshold'. "
            f"Received: method={method!r}"
        )
    rng = np.random.default_rng(seed)
    # u uniform on {0, ..., 254}: P(u < pixel) = pixel / 255 exactly, and
    # uint8 draws take an eighth of the memory of float64 ones.
    u = rng.integers(0, 255, size=images.shape, dtype="uint8")
    return (u < images).astype("uint8")


def load_binarized_mnist(data_dir=None, method="stochastic", seed=0):
    """Loads MNIST and binarizes it (see `binarize`).

    Train and test images get different random streams, both derived from
    `seed`, so a given `seed` always yields the same data set.

    Args:
        data_dir: data directory; defaults to `$PIXEL_MODELS_DATA_DIR`.
        method: `"stochastic"` or `"threshold"`.
        seed: seed of the stochastic binarization.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as `load_mnist`, with `x`
        values 0 and 1.

    Example:
    >>> (x_train, _), _ = load_binarized_mnist("/data")  # doctest: +SKIP
    >>> int(x_train.max())  # doctest: +SKIP
    1
    """
    if method not in ("stochastic", "threshold"):
        # Fail before reading 55 MB of pixels.
        binarize(np.zeros((1,), "uint8"), method)
    return _binarize_splits(load_mnist(data_dir), method, seed)


def _binarize_splits(splits, method, seed):
    (x_train, y_train), (x_test, y_test) = splits
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    return (
        (binarize(x_train, method, train_seed), y_train),
        (binarize(x_test, method, test_seed), y_test),
    )


def _is_cifar_folder(path):
    return all(
        (path / name).is_file()
        for name in (*_CIFAR_TRAIN_BATCHES, _CIFAR_TEST_BATCH)
    )


def _read_cifar_batch(path):
    # The official "python version" pickles: bytes keys, so encoding="bytes".
    # Only point data_dir at files you trust: unpickling runs code.
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], "uint8")
    # Rows are channel-major (1024 R, 1024 G, 1024 B values); move to HWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[b"labels"], "int64")


def load_cifar10(data_dir=None):
    """Loads CIFAR-10 from the official "python version" pickles.

    Looks for the `cifar-10-batches-py` folder (`data_batch_1` ..
    `data_batch_5`, `test_batch`) at `DATA_DIR` itself, at
    `DATA_DIR/cifar-10-batches-py`, then at `DATA_DIR/*/cifar-10-batches-py`.
    Only if none exists does it fall back to
    `keras.datasets.cifar10.load_data()`, which downloads.

    Args:
        data_dir: data directory; defaults to `$PIXEL_MODELS_DATA_DIR`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: `x` uint8 of shape
        `(N, 32, 32, 3)` in RGB order, `y` int64 of shape `(N,)`.

    Example:
    >>> (x_train, _), (x_test, _) = load_cifar10("/data")  # doctest: +SKIP
    >>> x_train.shape, x_test.shape  # doctest: +SKIP
    ((50000, 32, 32, 3), (10000, 32, 32, 3))
    """
    root = resolve_data_dir(data_dir)
    searched = []
    if root is not None:
        root = pathlib.Path(root).expanduser()
        searched = [root, root / _CIFAR_FOLDER]
        if root.is_dir():
            searched += sorted(root.glob(f"*/{_CIFAR_FOLDER}"))
    folder = next((p for p in searched if _is_cifar_folder(p)), None)
    if folder is None:
        try:
            splits = keras.datasets.cifar10.load_data()
        except Exception as err:
            raise _missing_data_error("CIFAR-10", searched, err) from err
        splits = [(_to_channels_last(x), np.reshape(y, -1)) for x, y in splits]
    else:
        train = [_read_cifar_batch(folder / n) for n in _CIFAR_TRAIN_BATCHES]
        x_train = np.concatenate([x for x, _ in train])
        y_train = np.concatenate([y for _, y in train])
        splits = [
            (x_train, y_train),
            _read_cifar_batch(folder / _CIFAR_TEST_BATCH),
        ]
    return tuple(
        (np.asarray(x, "uint8"), np.asarray(y, "int64")) for x, y in splits
    )


def _to_channels_last(x):
    # keras.datasets.cifar10 follows keras.config.image_data_format().
    return x.transpose(0, 2, 3, 1) if x.shape[1] == 3 else x


def _check_image_size(image_size):
    ok = (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool)
            for s in image_size
        )
        and min(image_size) > 0
    )
    if not ok:
        raise ValueError(
            "image_size must be a tuple of two positive integers "
            f"(height, width). Received: image_size={image_size!r}"
        )
    return tuple(int(s) for s in image_size)


def _resize(images, image_size, crop_to_aspect_ratio=True):
    """Resizes a uint8 `(H, W, C)` image or `(N, H, W, C)` batch."""
    if images.shape[-3:-1] == image_size:
        return images
    resized = keras.ops.image.resize(
        images.astype("float32"),
        image_size,
        crop_to_aspect_ratio=crop_to_aspect_ratio,
        data_format="channels_last",
    )
    resized = np.round(keras.ops.convert_to_numpy(resized))
    return np.clip(resized, 0, 255).astype("uint8")


def _resize_all(images, image_size, chunk=2048):
    if len(images) == 0:
        return np.zeros((0, *image_size, images.shape[-1]), "uint8")
    # Chunks bound the float32 copy (600 MB for all 50000 CIFAR images).
    return np.concatenate(
        [
            _resize(images[i : i + chunk], image_size)
            for i in range(0, len(images), chunk)
        ]
    )


def load_image_folder(
    directory, image_size, *, color_mode="rgb", crop_to_aspect_ratio=True
):
    """Loads every image file under a folder as one uint8 array.

    Files are found recursively and read in sorted path order, so the
    result is deterministic. Like `keras.utils.image_dataset_from_directory`
    it reads `.bmp`, `.gif` (first frame), `.jpeg`, `.jpg` and `.png`
    files and resizes bilinearly.

    Args:
        directory: folder to search.
        image_size: `(height, width)` of the output images.
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).
        crop_to_aspect_ratio: if `True`, centre-crop each image to the
            aspect ratio of `image_size` before resizing, so nothing is
            distorted; if `False`, stretch it.

    Returns:
        uint8 array of shape `(N, height, width, C)`.

    Example:
    >>> x = load_image_folder("faces/", (32, 32))  # doctest: +SKIP
    >>> x.shape  # doctest: +SKIP
    (1000, 32, 32, 3)
    """
    image_size = _check_image_size(image_size)
    pil_modes = {"rgb": "RGB", "grayscale": "L"}
    if color_mode not in pil_modes:
        raise ValueError(
            "color_mode must be 'rgb' or 'grayscale'. "
            f"Received: color_mode={color_mode!r}"
        )
    root = pathlib.Path(directory).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder not found: {directory}")
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not paths:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under "
            f"{directory}"
        )
    # Imported here: only this loader needs PIL.
    from PIL import Image

    images = []
    converted = []
    target = pil_modes[color_mode]
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.mode != target:
                    converted.append(f"{path} ({image.mode})")
                pixels = np.asarray(image.convert(target))
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(
                f"Could not read image file {path}: {err}"
            ) from err
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        images.append(_resize(pixels, image_size, crop_to_aspect_ratio))
    if converted:
        # Mixed grey and colour folders are converted, and said so.
        warnings.warn(
            f"Converted {len(converted)} of {len(paths)} images under "
            f"{directory} to color_mode={color_mode!r}: "
            + ", ".join(converted[:3])
            + (", ..." if len(converted) > 3 else ""),
            stacklevel=2,
        )
    return np.stack(images)


def _load_tfds_arrays(name, split, data_dir, with_labels=False):
    # Imported here: tensorflow_datasets is slow to import and only this
    # loader needs it.
    import tensorflow_datasets as tfds

    try:
        # An explicit data_dir means "use what is prepared there": never
        # download into it. Without one, tfds behaves as usual.
        data = tfds.load(
            name,
            split=split,
            data_dir=data_dir,
            download=data_dir is None,
            batch_size=-1,
        )
    except tfds.core.registered.DatasetNotFoundError as err:
        # tfds' own message lists every known data set: hundreds of lines.
        raise ValueError(
            "Unknown tensorflow_datasets data set (see "
            f"tfds.list_builders() for the known names). Received: "
            f"name={name!r}"
        ) from err
    data = tfds.as_numpy(data)
    key = "image" if "image" in data else None
    if key is None:
        key = next((k for k, v in data.items() if np.ndim(v) == 4), None)
    if key is None:
        raise ValueError(
            f"The tfds data set {name!r} has no image feature. "
            f"Features: {sorted(data)}"
        )
    images = np.asarray(data[key])
    if images.dtype != np.uint8:
        raise ValueError(
            f"The images of the tfds data set {name!r} must be uint8. "
            f"Received: dtype={images.dtype}"
        )
    if not with_labels:
        return images, None
    if "label" not in data:
        raise ValueError(
            f"The tfds data set {name!r} has no 'label' feature, so "
            "with_labels=True is not possible. "
            f"Features: {sorted(data)}"
        )
    return images, np.asarray(data["label"], "int64")


def load_tfds(name, split="train", data_dir=None):
    """Loads the images of a `tensorflow_datasets` data set.

    Args:
        name: tfds name, e.g. `"mnist"` or `"cifar10"` (a version or config
            may be appended, as `tfds.load` allows).
        split: tfds split, e.g. `"train"`, `"test"` or `"train[:10%]"`.
        data_dir: a tfds data directory holding the prepared data set; it
            is then read as it is, without downloading. If `None`, tfds uses
            its default directory and may download and prepare the data.

    Returns:
        uint8 array of shape `(N, H, W, C)`; the images of the data set must
        all have one shape (else use `load_image_folder`).

    Example:
    >>> x = load_tfds("mnist", "test")  # doctest: +SKIP
    >>> x.shape  # doctest: +SKIP
    (10000, 28, 28, 1)
    """
    images, _ = _load_tfds_arrays(name, split, data_dir)
    return images


def make_dataset(
    images,
    batch_size,
    *,
    labels=None,
    shuffle=False,
    seed=None,
    repeat=False,
    drop_remainder=False,
    levels=None,
    binarize=False,
):
    """Builds a `tf.data.Dataset` of `(x, x)` batches for `model.fit`.

    Args:
        images: uint8 array `(N, H, W, C)` of pixel values.
        batch_size: images per batch, a positive integer.
        labels: optional integer array `(N,)`; if given, the dataset yields
            `((x, label), x)` for class-conditional models.
        shuffle: shuffle the images, anew each epoch.
        seed: shuffle seed, for a reproducible order.
        repeat: repeat indefinitely (then pass `steps_per_epoch` to `fit`).
        drop_remainder: drop the last batch if smaller than `batch_size`.
        levels: if given, check that every pixel value is an integer in
            `[0, levels - 1]` (the models' input convention).
        binarize: binarize every batch afresh (dynamic binarization):
            `images` are 8-bit, and each time an image is drawn each of
            its pixels is 1 with probability `pixel / 255`, from a new
            draw in every pass (seeded by `seed`). Then `levels` is 2.

    Returns:
        `tf.data.Dataset` yielding `(x, x)` or `((x, label), x)`, with `x`
        float32 pixel values `0 .. levels - 1` (not rescaled: the models
        rescale internally) and `label` int32; where TensorFlow is not
        installed, an `ArrayBatches` of the same batches.

    Example:
    >>> x = np.zeros((10, 8, 8, 1), "uint8")
    >>> ds = make_dataset(x, batch_size=4)
    >>> [tuple(b.shape) for b, _ in ds]
    [(4, 8, 8, 1), (4, 8, 8, 1), (2, 8, 8, 1)]
    """
    check_int("batch_size", batch_size)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "images must have shape (N, H, W, C). "
            f"Received: images.shape={images.shape}"
        )
    _check_pixel_values(images, levels, binarize)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(
                "labels must have one entry per image "
                f"({len(images)}). Received: labels of length {len(labels)}"
            )
    if not tensorflow_installed():
        return ArrayBatches(
            images,
            batch_size,
            labels=labels,
            shuffle=shuffle,
            seed=seed,
            repeat=repeat,
            drop_remainder=drop_remainder,
            binarize=binarize,
        )
    import tensorflow as tf

    num = len(images)
    # Keep the pixels in memory once, as uint8, and shuffle indices: the
    # shuffle buffer then covers the whole data set at 8 bytes an image,
    # and each batch is one gather plus one cast.
    # On the CPU, where tf.data runs, not on an accelerator.
    with tf.device("/cpu:0"):
        images = tf.constant(images)
        if labels is not None:
            labels = tf.constant(labels.astype("int32"))

    def to_batch(indices, draw=None):
        x = tf.gather(images, indices)
        if binarize:
            # u uniform on {0, ..., 254}: P(u < pixel) = pixel / 255, as
            # `binarize` draws it, from this batch's own stateless seed.
            u = tf.random.stateless_uniform(
                tf.shape(x), tf.stack([draw, 0]), 0, 255, "int32"
            )
            x = tf.cast(u < tf.cast(x, "int32"), "uint8")
        x = tf.cast(x, "float32")
        if labels is None:
            return x, x
        return (x, tf.gather(labels, indices)), x

    ds = tf.data.Dataset.range(num)
    if shuffle:
        ds = ds.shuffle(max(num, 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if binarize:
        # One seed a batch, new ones in every pass over the data set; a
        # stream apart from the shuffle's.
        draws = tf.data.Dataset.random(
            seed=None if seed is None else seed + 1,
            rerandomize_each_iteration=True,
        )
        ds = tf.data.Dataset.zip(ds, draws)
    ds = ds.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_pixel_values(images, levels, binarize):
    """Raises ValueError unless `images` suit `make_dataset`'s `levels`
    (integers in `[0, levels - 1]`) or, with `binarize`, are 8-bit."""
    if binarize and levels not in (None, 2):
        raise ValueError(
            "binarize=True yields 0/1 pixels, so levels must be 2 (or "
            f"None). Received: levels={levels}"
        )
    if (levels is None and not binarize) or not images.size:
        return
    top = 255 if binarize else levels - 1
    expected = f"images must hold integer pixel values in [0, {top}] " + (
        "(8-bit: binarize=True draws from them)"
        if binarize
        else f"for levels={levels}"
    )
    check_values(images, "images", top, expected)


class ArrayBatches(keras.utils.PyDataset):
    """The batches of `make_dataset`, from NumPy, without TensorFlow.

    `make_dataset` returns one where TensorFlow is not installed; it
    takes the same arguments. A shuffled one draws a new order for each
    pass over the images (a finite one at each `on_epoch_end`, which
    Keras calls after every epoch); a repeated one has no end (give
    `fit` its `steps_per_epoch`), and its `repeat()` is itself repeated.

    Example:
    >>> x = np.zeros((10, 8, 8, 1), "uint8")
    >>> [tuple(b[0].shape) for b in ArrayBatches(x, batch_size=4)]
    [(4, 8, 8, 1), (4, 8, 8, 1), (2, 8, 8, 1)]
    """

    def __init__(
        self,
        images,
        batch_size,
        *,
        labels=None,
        shuffle=False,
        seed=None,
        repeat=False,
        drop_remainder=False,
        binarize=False,
    ):
        super().__init__()
        check_int("batch_size", batch_size)
        self.images = np.asarray(images)
        if labels is not None:
            labels = np.asarray(labels).reshape(-1).astype("int32")
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.repeats = repeat
        self.drop_remainder = drop_remainder
        self.binarize = binarize
        rounding = math.floor if drop_remainder else math.ceil
        self.per_pass = rounding(len(images) / batch_size)
        self._order = (None, None)  # (pass, its image order)
        self._passes = 0  # of a finite one, ended by `on_epoch_end`

    def repeat(self):
        """These batches, without end (as `tf.data.Dataset.repeat`)."""
        repeated = copy.copy(self)  # the same arrays, not copies
        repeated.repeats = True
        return repeated

    def on_epoch_end(self):
        if not self.repeats:
            self._passes += 1

    @property
    def num_batches(self):
        return None if self.repeats else self.per_pass

    def __len__(self):
        return self.per_pass

    def __getitem__(self, index):
        if not self.per_pass or (not self.repeats and index >= self.per_pass):
            raise IndexError(f"batch {index} of {self.per_pass}")
        epoch, index = divmod(index, self.per_pass)
        epoch += self._passes
        order = self._pass_order(epoch)
        chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.images[chosen]
        if self.binarize:
            # As `binarize` draws, seeded by the pass and the batch.
            rng = np.random.default_rng([self.seed or 0, epoch, index, 1])
            x = rng.integers(0, 255, size=x.shape, dtype="uint8") < x
        x = x.astype("float32")
        if self.labels is None:
            return x, x
        return (x, self.labels[chosen]), x

    def _pass_order(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.images))
        if self._order[0] != epoch:
            rng = np.random.default_rng([self.seed or 0, epoch])
            self._order = (epoch, rng.permutation(len(self.images)))
        return self._order[1]


@dataclasses.dataclass
class DatasetSplits:
    """The datasets and facts `get_datasets` returns.

    Attributes:
        train: shuffled training batches.
        validation: validation batches, in a fixed order.
        test: test batches, in a fixed order.
        image_shape: `(H, W, C)`.
        levels: number of pixel values: 256 for 8-bit, 2 for binarized.
        num_train: number of training images.
        num_validation: number of validation images.
        num_test: number of test images.
        num_classes: the class count of the labels the batches carry
            (`with_labels`), from the data set's own description; None
            without labels.
    """

    train: object
    validation: object
    test: object
    image_shape: tuple
    levels: int
    num_train: int
    num_validation: int
    num_test: int
    num_classes: int | None = None


def _find_folder(name, data_dir):
    """The image folder `name` stands for, or `None`."""
    candidates = [pathlib.Path(name).expanduser()]
    root = resolve_data_dir(data_dir)
    if root is not None and not os.path.isabs(name):
        candidates.append(pathlib.Path(root).expanduser() / name)
    return next((p for p in candidates if p.is_dir()), None)


def get_datasets(
    name,
    *,
    data_dir=None,
    batch_size=64,
    validation_size=None,
    image_size=None,
    binarization="stochastic",
    seed=0,
    with_labels=False,
    max_train=None,
    max_test=None,
    first_pass=0,
):
    """Loads a data set by name and returns its train/validation/test splits.

    The validation split is the last `validation_size` training images, in
    their stored order, so it is the same for every seed. Only the training
    split is shuffled.

    Args:
        name: `"mnist"` (8-bit), `"binarized_mnist"`, `"cifar10"`,
            `"tfds:NAME"` (the train and test splits of any
            `tensorflow_datasets` image data set), or the path of a folder
            of images (absolute, or relative to the working directory or
            to the data directory). A folder has no test split: `test` is
            empty unless the folder holds `train/` and `test/` subfolders,
            which are then used as the two splits.
        data_dir: data directory; defaults to `$PIXEL_MODELS_DATA_DIR`. For
            `"tfds:NAME"` it is the tfds data directory, and only the
            argument is used (the environment variable names the directory
            of raw files, which tfds cannot read).
        batch_size: images per batch.
        validation_size: number of training images held out for
            validation; None holds out 5000 of a named data set, and a
            tenth of a folder of images.
        image_size: `(height, width)`; required for a folder, which is
            centre-cropped and resized to it. For the other data sets the
            images are resized to it if given.
        binarization: for `"binarized_mnist"`: `"stochastic"` (a fixed
            random draw, see `binarize`), `"threshold"`, or `"dynamic"`:
            training images drawn afresh in every pass (see
            `make_dataset`'s `binarize`), validation and test images as
            `"stochastic"` (the same pixels). Other data sets take only
            the default.
        seed: seed of the training-set shuffle and of the binarization.
        with_labels: yield `((x, label), x)` for class-conditional models.
        max_train: keep at most this many training images (quick runs).
        max_test: keep at most this many validation and test images each.
        first_pass: passes over the training images made before, by the
            earlier sessions of a resumed run. From the seed and it, the
            training batches take a seed of their own (for the shuffle
            and dynamic binarization), so that a resumed run does not
            replay the orders and draws its first session saw.

    Returns:
        A `DatasetSplits`.

    Example:
    >>> splits = get_datasets("binarized_mnist", batch_size=32,
    ...                       max_train=1000)  # doctest: +SKIP
    >>> splits.image_shape, splits.levels, splits.num_train  # doctest: +SKIP
    ((28, 28, 1), 2, 1000)
    """
    image_size = _check_dataset_arguments(
        name,
        batch_size,
        validation_size,
        image_size,
        binarization,
        max_train,
        max_test,
    )
    check_int("first_pass", first_pass, 0)
    (x_train, y_train), (x_test, y_test), folder = _load_splits(
        name, data_dir, image_size, with_labels
    )
    if image_size is not None and folder is None:
        x_train = _resize_all(x_train, image_size)
        x_test = _resize_all(x_test, image_size)
    levels = 256
    dynamic = name == "binarized_mnist" and binarization == "dynamic"
    eight_bit_train = x_train
    if name == "binarized_mnist":
        # After resizing, which would blur 0/1 pixels into grey ones; with
        # the seeds of load_binarized_mnist, so both give the same pixels.
        levels = 2
        (x_train, y_train), (x_test, y_test) = _binarize_splits(
            ((x_train, y_train), (x_test, y_test)),
            "stochastic" if dynamic else binarization,
            seed,
        )

    if validation_size is None:
        validation_size = 5000
        if folder is not None:
            validation_size = max(1, len(x_train) // 10)
    (x_train, y_train), (x_val, y_val) = _hold_out_validation(
        x_train, y_train, validation_size, with_labels
    )
    if dynamic:
        x_train = eight_bit_train[: len(x_train)]  # binarized each pass
    num_classes = None
    if with_labels:
        num_classes = _class_count(name, data_dir)
        _check_labels_in_range(name, num_classes, y_train, y_test)
    else:
        y_test = None
    # Cut after the validation split, so it does not depend on max_train.
    x_train, y_train = _head(x_train, y_train, max_train)
    x_val, y_val = _head(x_val, y_val, max_test)
    x_test, y_test = _head(x_test, y_test, max_test)
    splits = _batch_splits(
        (x_train, y_train),
        (x_val, y_val),
        (x_test, y_test),
        batch_size=batch_size,
        seed=_pass_seed(seed, first_pass),
        levels=levels,
        binarize_train=dynamic,
    )
    return dataclasses.replace(splits, num_classes=num_classes)


def _pass_seed(seed, first_pass):
    """The training batches' seed for a session that starts after
    `first_pass` passes: `seed` itself for the first session."""
    if seed is None or not first_pass:
        return seed
    return int(np.random.SeedSequence([seed, first_pass]).generate_state(1)[0])


def _class_count(name, data_dir):
    """The number of classes of data set `name`'s labels."""
    if not name.startswith("tfds:"):
        return 10  # MNIST's digits, CIFAR-10's classes
    import tensorflow_datasets as tfds

    builder = tfds.builder(name[len("tfds:") :], data_dir=data_dir)
    feature = builder.info.features["label"]
    count = getattr(feature, "num_classes", None)
    if not count:
        raise ValueError(
            f"The 'label' feature of the tfds data set {name!r} is not a "
            "ClassLabel with a class count, so with_labels=True is not "
            f"possible. Received: {type(feature).__name__}"
        )
    return int(count)


def _check_labels_in_range(name, num_classes, *labels):
    for part in labels:
        if len(part) and (part.min() < 0 or part.max() >= num_classes):
            raise ValueError(
                f"The labels of {name!r} must be in [0, {num_classes - 1}] "
                f"({num_classes} classes). Received: labels in "
                f"[{part.min()}, {part.max()}]"
            )


def _check_dataset_arguments(
    name,
    batch_size,
    validation_size,
    image_size,
    binarization,
    max_train,
    max_test,
):
    """Validates `get_datasets`' arguments; returns `image_size` checked."""
    check_int("batch_size", batch_size, 1)
    check_int("validation_size", validation_size, 0, allow_none=True)
    for arg, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None:
            check_int(arg, value, 1)
    if image_size is not None:
        image_size = _check_image_size(image_size)

    if name == "binarized_mnist" and binarization not in BINARIZATIONS:
        raise ValueError(
            f"binarization must be one of {BINARIZATIONS}. "
            f"Received: binarization={binarization!r}"
        )
    if name != "binarized_mnist" and binarization != "stochastic":
        raise ValueError(
            "binarization must be 'stochastic' (the default) for "
            f"name={name!r}: only 'binarized_mnist' is binarized. "
            f"Received: binarization={binarization!r}"
        )
    return image_size


def _load_splits(name, data_dir, image_size, with_labels):
    """Reads the train and test arrays of data set `name`.

    Returns:
        `((x_train, y_train), (x_test, y_test), folder)`: `folder` is the
        image folder `name` stands for, or `None` for a named data set.
    """
    if name in ("mnist", "binarized_mnist"):
        return (*load_mnist(data_dir), None)
    if name == "cifar10":
        return (*load_cifar10(data_dir), None)
    if isinstance(name, str) and name.startswith("tfds:"):
        tfds_name = name[len("tfds:") :]
        train = _load_tfds_arrays(tfds_name, "train", data_dir, with_labels)
        test = _load_tfds_arrays(tfds_name, "test", data_dir, with_labels)
        return train, test, None
    folder = _find_folder(os.fspath(name), data_dir)
    if folder is None:
        raise ValueError(
            f"Unknown data set. name must be one of {DATASET_NAMES} or "
            f"an existing folder of images. Received: name={name!r}"
        )
    return (*_load_folder_splits(name, folder, image_size, with_labels), folder)


def _load_folder_splits(name, folder, image_size, with_labels):
    """The unlabelled train and test images of a folder of images.

    `folder/train` and `folder/test` when both exist, else the whole
    folder as training images and an empty test split.
    """
    if image_size is None:
        raise ValueError(
            "image_size is required for a folder of images. "
            f"Received: image_size=None for name={name!r}"
        )
    if with_labels:
        raise ValueError(
            "A folder of images has no labels, so with_labels must be "
            f"False. Received: with_labels=True for name={name!r}"
        )
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        x_train = load_image_folder(folder / "train", image_size)
        x_test = load_image_folder(folder / "test", image_size)
    else:
        x_train = load_image_folder(folder, image_size)
        x_test = x_train[:0]
    return (x_train, None), (x_test, None)


def _hold_out_validation(x_train, y_train, validation_size, with_labels):
    """Splits the last `validation_size` training images off for validation.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, the labels `None` unless
        `with_labels`.
    """
    if validation_size >= len(x_train):
        raise ValueError(
            "validation_size must be smaller than the number of training "
            f"images ({len(x_train)}). Received: "
            f"validation_size={validation_size}"
        )
    split = len(x_train) - validation_size
    x_val, x_train = x_train[split:], x_train[:split]
    y_val = None
    if with_labels:
        y_val, y_train = y_train[split:], y_train[:split]
    else:
        y_train = None
    return (x_train, y_train), (x_val, y_val)


def _batch_splits(
    train, validation, test, *, batch_size, seed, levels, binarize_train=False
):
    """Wraps the `(x, y)` arrays of each split in a `DatasetSplits`."""

    def batches(split, shuffle, binarize=False):
        x, y = split
        return make_dataset(
            x,
            batch_size,
            labels=y,
            shuffle=shuffle,
            seed=seed,
            levels=levels,
            binarize=binarize,
        )

    return DatasetSplits(
        train=batches(train, shuffle=True, binarize=binarize_train),
        validation=batches(validation, shuffle=False),
        test=batches(test, shuffle=False),
        image_shape=tuple(int(s) for s in train[0].shape[1:]),
        levels=levels,
        num_train=len(train[0]),
        num_validation=len(validation[0]),
        num_test=len(test[0]),
    )


def _head(x, y, limit):
    if limit is None:
        return x, y
    return x[:limit], None if y is None else y[:limit]


# The checks of `check_batches` raise inside tf.data, where only a
# `tf.errors.InvalidArgumentError` gets out; its message carries the
# check's name and the batch's range, and `check_failure` turns it back
# into the `ValueError` that `pixel_models.inputs` raises for arrays.
_CHECK_PREFIX = "pixel_models.check:"


def check_batches(dataset, levels, num_classes=None, condition_index=None):
    """`dataset` with every batch checked before a step can use it.

    The models' data convention: targets (and images) are integer pixel
    values in `[0, levels - 1]`, labels integers in `[0, num_classes -
    1]`. A batch that breaks it stops `fit` or `evaluate` (on every
    backend: tf.data feeds them all) with an error that `check_failure`
    turns into a `ValueError` naming the argument.

    Args:
        dataset: batches of `(inputs, targets)` (a third element, sample
            weights, passes unchecked); `inputs` the images, or a tuple
            of the images, then the labels if `num_classes`, then the
            small images at `condition_index`.
        levels: the model's levels.
        num_classes: the model's class count, or None.
        condition_index: where the small images are in `inputs`, or None.

    Returns:
        The checked `tf.data.Dataset`.
    """
    import tensorflow as tf

    def check(values, name, high):
        values = tf.cast(values, "float32")
        ok = tf.reduce_all(
            (values >= 0)
            & (values <= high)
            & tf.equal(values, tf.round(values))
        )
        low, top = tf.reduce_min(values), tf.reduce_max(values)
        tf.debugging.Assert(ok, [f"{_CHECK_PREFIX}{name}", low, top])

    def checked(inputs, targets, *rest):
        check(targets, "y", levels - 1)
        parts = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        check(parts[0], "x", levels - 1)
        if num_classes is not None:
            check(parts[1], "labels", num_classes - 1)
        if condition_index is not None:
            check(parts[condition_index], "condition", levels - 1)
        return (inputs, targets, *rest)

    return dataset.map(checked)


def check_failure(error, levels, num_classes=None):
    """The `ValueError` for a failed `check_batches` check, else None.

    Args:
        error: an exception raised by `fit` or `evaluate`.
        levels, num_classes: as given to `check_batches`.
    """
    tf = sys.modules.get("tensorflow")  # the checks ran in tf.data
    if tf is None or not isinstance(error, tf.errors.InvalidArgumentError):
        return None
    found = re.search(
        re.escape(_CHECK_PREFIX) + r"(\w+)\] \[([^\]]*)\] \[([^\]]*)\]",
        str(error),
    )
    if found is None:
        return None
    name, low, high = found.groups()
    if name == "labels":
        expected = labels_expected(num_classes)
    else:
        expected = pixel_values_expected(name, levels)
    top = num_classes - 1 if name == "labels" else levels - 1
    inside = 0 <= float(low) and float(high) <= top
    return ValueError(
        f"{expected}. Received: a batch with values in [{low}, {high}]"
        + (", not all integers" if inside else "")
    )


def classifier_dataset(images, labels, dataset, batch_size, seed=0):
    """Shuffled, augmented one-hot batches for training a classifier.

    MNIST (`dataset="mnist"`): 8-bit digits scaled to [0, 1], half of them
    (at random) binarized afresh (each pixel 1 with probability
    `pixel / 255`), shifted by up to 2 pixels. CIFAR-10: random crops of
    the image padded by 4 reflected pixels, and horizontal flips. The
    classifiers of `pixel_models.quality` train on these.

    Args:
        images: uint8 `(n, H, W, C)`.
        labels: integer classes `(n,)`, 10 of them.
        dataset: `"mnist"` or `"cifar10"`.
        batch_size: images a batch (the last partial batch is dropped).
        seed: seed of the shuffling and the augmentation.

    Returns:
        A `tf.data.Dataset` of `(float32 images, one-hot labels)`.
    """
    import tensorflow as tf

    if dataset not in ("mnist", "cifar10"):
        raise ValueError(
            "dataset must be 'mnist' or 'cifar10'. "
            f"Received: dataset={dataset!r}"
        )
    shape = tuple(int(d) for d in images.shape[1:])
    pad = 2 if dataset == "mnist" else 4

    def augment(image, label):
        x = tf.cast(image, "float32") / 255.0
        if dataset == "mnist":
            binary = tf.cast(tf.random.uniform(tf.shape(x)) < x, "float32")
            x = tf.where(tf.random.uniform(()) < 0.5, binary, x)
            x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]])
        else:
            x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            x = tf.image.random_flip_left_right(x)
        return tf.image.random_crop(x, shape), tf.one_hot(label, 10)

    tf.random.set_seed(seed)
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
