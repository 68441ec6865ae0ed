"""Tests of the input pipelines, on small data files written in tmp_path."""

import pickle

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from datafiles import write_cifar, write_mnist
from PIL import Image

from pixel_models import data

RED = (255, 0, 0)


pytestmark = pytest.mark.usefixtures("no_downloads")


def write_image(path, pixels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, "uint8"), mode).save(path)


def solid(height, width, color):
    return np.broadcast_to(np.array(color, "uint8"), (height, width, 3))


@pytest.fixture
def image_folder(tmp_path):
    """Four PNGs of different sizes and modes, one in a nested folder."""
    root = tmp_path / "images"
    write_image(root / "a_red.png", solid(20, 40, RED))
    # Black, white, black thirds: the centre square is white.
    stripes = np.zeros((4, 12, 3), "uint8")
    stripes[:, 4:8] = 255
    write_image(root / "b_stripes.png", stripes)
    gray = np.full((10, 10), 100, "uint8")
    write_image(root / "nested" / "deeper" / "c_gray.png", gray)
    rgba = np.zeros((16, 16, 4), "uint8")
    rgba[..., 1] = 200
    rgba[..., 3] = 255
    write_image(root / "nested" / "d_rgba.png", rgba)
    (root / "notes.txt").write_text("not an image")
    return root


def collect(dataset):
    """All batches of a `(x, target)` dataset, concatenated."""
    batches = list(dataset)
    return (
        np.concatenate([x.numpy() for x, _ in batches]),
        np.concatenate([t.numpy() for _, t in batches]),
    )


# Data directory ------------------------------------------------------------


def test_resolve_data_dir(monkeypatch, tmp_path):
    assert data.resolve_data_dir() is None
    monkeypatch.setenv(data.DATA_DIR_ENV, "")
    assert data.resolve_data_dir() is None
    monkeypatch.setenv(data.DATA_DIR_ENV, "/from/env")
    assert data.resolve_data_dir() == "/from/env"
    assert data.resolve_data_dir(tmp_path) == tmp_path


# MNIST ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["mnist.npz", "mnist/mnist.npz"])
def test_load_mnist_reads_npz(tmp_path, where):
    arrays = write_mnist(tmp_path / where)
    (x_train, y_train), (x_test, y_test) = data.load_mnist(tmp_path)
    assert x_train.shape == (20, 28, 28, 1) and x_train.dtype == np.uint8
    assert x_test.shape == (6, 28, 28, 1) and x_test.dtype == np.uint8
    assert y_train.shape == (20,) and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(x_test[..., 0], arrays["x_test"])
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])


def test_load_mnist_uses_env_var(monkeypatch, tmp_path):
    arrays = write_mnist(tmp_path / "mnist" / "mnist.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    (x_train, _), _ = data.load_mnist()
    np.testing.assert_array_equal(x_train[..., 0], arrays["x_train"])


def test_load_mnist_falls_back_to_keras_only_without_file(
    monkeypatch, tmp_path
):
    x = np.full((3, 28, 28), 7, "uint8")
    y = np.arange(3, dtype="uint8")
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: ((x, y), (x[:1], y[:1]))
    )
    (x_train, y_train), (x_test, _) = data.load_mnist(tmp_path)
    assert x_train.shape == (3, 28, 28, 1) and x_test.shape == (1, 28, 28, 1)
    assert y_train.dtype == np.int64
    write_mnist(tmp_path / "mnist.npz")
    (x_train, _), _ = data.load_mnist(tmp_path)
    assert x_train.shape == (20, 28, 28, 1)


def test_load_mnist_missing_names_places_and_remedy(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist.npz") in message
    assert str(tmp_path / "mnist" / "mnist.npz") in message
    assert "data_dir=" in message and "--data-dir" in message
    assert data.DATA_DIR_ENV in message
    with pytest.raises(FileNotFoundError, match=data.DATA_DIR_ENV):
        data.load_mnist()


# Binarization --------------------------------------------------------------


def test_binarize_threshold_exact():
    x = np.array([[0, 1, 127], [128, 200, 255]], "uint8")
    out = data.binarize(x, "threshold")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 1]])


def test_binarize_stochastic_fixed_per_seed():
    x = np.random.default_rng(1).integers(0, 256, (50, 28, 28), "uint8")
    first = data.binarize(x, seed=3)
    assert first.dtype == np.uint8 and first.shape == x.shape
    assert set(np.unique(first)) <= {0, 1}
    np.testing.assert_array_equal(first, data.binarize(x, seed=3))
    assert not np.array_equal(first, data.binarize(x, seed=4))


@pytest.mark.parametrize("value", [0, 64, 128, 200, 255])
def test_binarize_stochastic_probability(value):
    x = np.full((200, 200), value, "uint8")
    mean = data.binarize(x, "stochastic", seed=0).mean()
    # 40000 draws: the standard error is at most 0.0025.
    assert abs(mean - value / 255) < 0.01
    if value in (0, 255):
        assert mean == value / 255


def test_binarize_rejects_unknown_method():
    with pytest.raises(ValueError, match="method") as info:
        data.binarize(np.zeros((2, 2), "uint8"), method="otsu")
    assert "Received: method='otsu'" in str(info.value)


def test_load_binarized_mnist(tmp_path):
    write_mnist(tmp_path / "mnist.npz")
    (x_train, y_train), (x_test, _) = data.load_binarized_mnist(tmp_path)
    assert x_train.shape == (20, 28, 28, 1) and x_train.dtype == np.uint8
    assert set(np.unique(x_train)) == {0, 1}
    again = data.load_binarized_mnist(tmp_path, seed=0)
    np.testing.assert_array_equal(again[0][0], x_train)
    np.testing.assert_array_equal(again[1][0], x_test)
    other = data.load_binarized_mnist(tmp_path, seed=1)
    assert not np.array_equal(other[0][0], x_train)
    (x_raw, _), _ = data.load_mnist(tmp_path)
    (x_thr, _), _ = data.load_binarized_mnist(tmp_path, method="threshold")
    np.testing.assert_array_equal(x_thr, x_raw >= 128)


def test_load_binarized_mnist_train_and_test_streams_differ(tmp_path):
    grey = np.full((4, 28, 28), 128, "uint8")
    labels = np.zeros(4, "uint8")
    np.savez(
        tmp_path / "mnist.npz",
        x_train=grey,
        y_train=labels,
        x_test=grey,
        y_test=labels,
    )
    (x_train, _), (x_test, _) = data.load_binarized_mnist(tmp_path)
    assert not np.array_equal(x_train, x_test)


# CIFAR-10 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder, data_dir",
    [
        ("cifar-10-batches-py", "cifar-10-batches-py"),
        ("cifar-10-batches-py", "."),
        ("cifar10-jpeg/cifar-10-batches-py", "."),
    ],
)
def test_load_cifar10_layouts(tmp_path, folder, data_dir):
    (x, y), (x_t, y_t) = write_cifar(tmp_path / folder)
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(
        tmp_path / data_dir
    )
    assert x_train.shape == (30, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (6, 32, 32, 3)
    assert y_train.shape == (30,) and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(x_test, x_t)
    np.testing.assert_array_equal(y_train, y)
    np.testing.assert_array_equal(y_test, y_t)


def test_load_cifar10_channel_major_rows(tmp_path):
    # Written by hand, independently of write_cifar's transpose.
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    row = np.zeros((1, 3072), "uint8")
    row[0, 0 * 1024 + 0 * 32 + 1] = 11  # red at (y=0, x=1)
    row[0, 1 * 1024 + 2 * 32 + 0] = 22  # green at (y=2, x=0)
    row[0, 2 * 1024 + 31 * 32 + 31] = 33  # blue at (y=31, x=31)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for label, name in enumerate(names):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": row, b"labels": [label]}, f)
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(tmp_path)
    image = x_test[0]
    assert image[0, 1, 0] == 11 and image[2, 0, 1] == 22
    assert image[31, 31, 2] == 33 and image.sum() == 66
    np.testing.assert_array_equal(y_train, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y_test, [5])


def test_load_cifar10_missing_names_places(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.load_cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert data.DATA_DIR_ENV in message and "data_dir=" in message


# Image folders -------------------------------------------------------------


def test_load_image_folder_rgb(image_folder):
    x = data.load_image_folder(image_folder, (8, 8))
    assert x.shape == (4, 8, 8, 3) and x.dtype == np.uint8
    # Sorted paths: a_red, b_stripes, nested/d_rgba, nested/deeper/c_gray.
    np.testing.assert_array_equal(x[0], solid(8, 8, RED))
    np.testing.assert_array_equal(x[1], np.full((8, 8, 3), 255))
    np.testing.assert_array_equal(x[2], solid(8, 8, (0, 200, 0)))
    np.testing.assert_array_equal(x[3], np.full((8, 8, 3), 100))


def test_load_image_folder_grayscale_and_rectangular(image_folder):
    x = data.load_image_folder(image_folder, (4, 6), color_mode="grayscale")
    assert x.shape == (4, 4, 6, 1)
    # PIL's ITU-R 601-2 luma of pure red: 255 * 0.299 = 76.2.
    np.testing.assert_array_equal(x[0], np.full((4, 6, 1), 76))
    np.testing.assert_array_equal(x[3], np.full((4, 6, 1), 100))


def test_load_image_folder_crop_to_aspect_ratio(image_folder):
    cropped = data.load_image_folder(image_folder, (4, 4))[1]
    np.testing.assert_array_equal(cropped, np.full((4, 4, 3), 255))
    squeezed = data.load_image_folder(
        image_folder, (4, 4), crop_to_aspect_ratio=False
    )[1]
    # Bilinear, 3x down: output columns sample input columns 1, 4, 7, 10.
    np.testing.assert_array_equal(squeezed[0, :, 0], [0, 255, 255, 0])


def test_load_image_folder_rounds_resized_values(tmp_path):
    pixels = np.array([[0, 255], [0, 255]], "uint8")
    write_image(tmp_path / "ramp" / "ramp.png", pixels)
    x = data.load_image_folder(
        tmp_path / "ramp", (2, 4), color_mode="grayscale"
    )
    # Half-pixel bilinear: input x = -0.25, 0.25, 0.75, 1.25, so 63.75 and
    # 191.25 in between, rounded to the nearest integer.
    np.testing.assert_array_equal(x[0, :, :, 0], [[0, 64, 191, 255]] * 2)


def test_load_image_folder_errors(tmp_path, image_folder):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load_image_folder(missing, (8, 8))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=str(empty)):
        data.load_image_folder(empty, (8, 8))
    for bad in [(8,), (0, 8), (8.0, 8), "8x8", 8]:
        with pytest.raises(ValueError, match="image_size") as info:
            data.load_image_folder(image_folder, bad)
        assert f"Received: image_size={bad!r}" in str(info.value)
    with pytest.raises(ValueError) as info:
        data.load_image_folder(image_folder, (8, 8), color_mode="cmyk")
    assert str(info.value) == (
        "color_mode must be 'rgb' or 'grayscale'. Received: color_mode='cmyk'"
    )


@pytest.mark.parametrize("contents", ["garbage", "truncated"])
def test_load_image_folder_corrupt_file(image_folder, contents):
    good = (image_folder / "a_red.png").read_bytes()
    raw = b"not a png at all" if contents == "garbage" else good[:60]
    bad = image_folder / "nested" / "zz_bad.png"
    bad.write_bytes(raw)
    with pytest.raises(ValueError, match="zz_bad.png"):
        data.load_image_folder(image_folder, (8, 8))


# make_dataset --------------------------------------------------------------


def test_make_dataset_yields_x_x_float32():
    images = np.arange(10 * 4 * 4, dtype="uint8").reshape(10, 4, 4, 1)
    ds = data.make_dataset(images, 4)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    for x, target in batches:
        assert x.dtype == "float32" and target.dtype == "float32"
        assert tuple(x.shape[1:]) == (4, 4, 1)
    x, target = collect(ds)
    # In order, not rescaled.
    np.testing.assert_array_equal(x, images.astype("float32"))
    np.testing.assert_array_equal(target, x)
    dropped = data.make_dataset(images, 4, drop_remainder=True)
    assert [b[0].shape[0] for b in dropped] == [4, 4]


def test_make_dataset_with_labels():
    images = np.arange(6, dtype="uint8").reshape(6, 1, 1, 1)
    labels = np.array([5, 4, 3, 2, 1, 0], "int64")
    (x, label), target = next(iter(data.make_dataset(images, 6, labels=labels)))
    assert label.dtype == "int32" and x.dtype == "float32"
    np.testing.assert_array_equal(label, labels)
    np.testing.assert_array_equal(target, x)


def test_make_dataset_shuffle_seeded_and_complete():
    images = np.arange(50, dtype="uint8").reshape(50, 1, 1, 1)
    labels = np.arange(50) + 100

    def order(seed):
        ds = data.make_dataset(
            images, 8, labels=labels, shuffle=True, seed=seed
        )
        pairs = [(x.numpy().ravel(), y.numpy()) for (x, y), _ in ds]
        x = np.concatenate([p[0] for p in pairs])
        y = np.concatenate([p[1] for p in pairs])
        np.testing.assert_array_equal(y, x + 100)  # labels follow images
        return x

    first = order(1)
    np.testing.assert_array_equal(np.sort(first), np.arange(50))
    assert not np.array_equal(first, np.arange(50))
    np.testing.assert_array_equal(first, order(1))
    assert not np.array_equal(first, order(2))


def test_make_dataset_repeat():
    images = np.zeros((3, 2, 2, 1), "uint8")
    ds = data.make_dataset(images, 2, repeat=True)
    assert len(list(ds.take(5))) == 5


def test_array_batches_match_make_dataset():
    # Where TensorFlow is not installed, make_dataset returns these.
    images = np.arange(10 * 4, dtype="uint8").reshape(10, 2, 2, 1)
    labels = np.arange(10) % 3
    for drop in (False, True):
        made = data.make_dataset(images, 4, labels=labels, drop_remainder=drop)
        arrays = data.ArrayBatches(
            images, 4, labels=labels, drop_remainder=drop
        )
        assert len(arrays) == arrays.num_batches == len(list(made))
        for index, ((x, label), _) in enumerate(made):
            (ax, alabel), atarget = arrays[index]
            assert ax.dtype == "float32" and alabel.dtype == "int32"
            np.testing.assert_array_equal(ax, x.numpy())
            np.testing.assert_array_equal(alabel, label.numpy())
            np.testing.assert_array_equal(atarget, ax)
        with pytest.raises(IndexError):
            arrays[len(arrays)]


def test_array_batches_shuffle_each_pass_and_repeat():
    images = np.arange(12, dtype="uint8").reshape(12, 1, 1, 1)

    def passes(seed, count):
        batches = data.ArrayBatches(images, 4, shuffle=True, seed=seed)
        batches = batches.repeat()
        assert batches.num_batches is None  # no end: fit's steps decide
        x = [batches[i][0].ravel() for i in range(3 * count)]
        return np.concatenate(x).reshape(count, 12)

    first, second = passes(1, 2)
    # Each pass holds every image once, in a new order.
    np.testing.assert_array_equal(np.sort(first), np.arange(12))
    np.testing.assert_array_equal(np.sort(second), np.arange(12))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(12))
    np.testing.assert_array_equal(passes(1, 2), [first, second])
    assert not np.array_equal(passes(2, 1)[0], first)
    # A finite one too, pass after pass, as Keras ends each epoch.
    finite = data.ArrayBatches(images, 4, shuffle=True, seed=1)
    for expected in (first, second):
        x = np.concatenate([batch[0].ravel() for batch in finite])
        np.testing.assert_array_equal(x, expected)
        finite.on_epoch_end()


def binarized_passes(batches, count):
    """`count` passes of a dynamically binarized `make_dataset` result (a
    `tf.data.Dataset` or `ArrayBatches`), each `(N, ...)`, in order."""
    passes = []
    for _ in range(count):
        passes.append(np.concatenate([np.asarray(x) for x, _ in batches]))
        if isinstance(batches, data.ArrayBatches):
            batches.on_epoch_end()  # as Keras ends each epoch
    return np.stack(passes)


@pytest.mark.parametrize("make", [data.make_dataset, data.ArrayBatches])
def test_dynamic_binarization_draws_afresh_each_pass(make):
    # Columns of 0, 51 (probability 0.2), 204 (0.8) and 255.
    row = np.array([0, 51, 204, 255], "uint8")
    images = np.broadcast_to(row, (8, 16, 4)).copy()[..., None]
    passes = binarized_passes(make(images, 3, seed=4, binarize=True), 6)
    assert set(np.unique(passes)) == {0.0, 1.0}
    for column, expected in enumerate([0.0, 0.2, 0.8, 1.0]):
        # 6 x 8 x 16 = 768 draws each: a standard error of 0.015.
        assert abs(passes[..., column, 0].mean() - expected) < 0.06
    # Each pass draws anew; a seed repeats its draws.
    assert not np.array_equal(passes[0], passes[1])
    again = binarized_passes(make(images, 3, seed=4, binarize=True), 2)
    np.testing.assert_array_equal(again, passes[:2])
    other = binarized_passes(make(images, 3, seed=5, binarize=True), 1)
    assert not np.array_equal(other[0], passes[0])


def test_dynamic_binarization_takes_8_bit_images():
    images = np.full((2, 2, 2, 1), 200, "uint8")
    with pytest.raises(ValueError, match="levels=256"):
        data.make_dataset(images, 2, binarize=True, levels=256)
    with pytest.raises(ValueError, match=r"\[0, 255\] \(8-bit"):
        data.make_dataset(-images.astype("int32"), 2, binarize=True)
    # levels=2 describes the output: 8-bit input passes, 0/1 comes out.
    x, _ = next(iter(data.make_dataset(images, 2, binarize=True, levels=2)))
    assert set(np.unique(x)) <= {0.0, 1.0} and x.shape == (2, 2, 2, 1)


def test_dynamic_binarization_draws_afresh_when_repeated():
    # As `fit` gets it: one repeated dataset, `steps_per_epoch` a pass.
    images = np.full((4, 8, 8, 1), 128, "uint8")
    batches = data.make_dataset(images, 2, seed=0, binarize=True, repeat=True)
    x = np.stack([np.asarray(x) for x, _ in batches.take(6)])
    passes = x.reshape(3, 4, 8, 8, 1)
    assert not np.array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[1], passes[2])


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None])
def test_make_dataset_rejects_bad_batch_size(batch_size):
    for make in (data.make_dataset, data.ArrayBatches):
        with pytest.raises(ValueError, match="batch_size") as info:
            make(np.zeros((2, 2, 2, 1), "uint8"), batch_size)
        assert f"Received: batch_size={batch_size!r}" in str(info.value)


def test_make_dataset_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        data.make_dataset(np.zeros((4, 2, 2, 1), "uint8"), 2, labels=[1, 2])


# get_datasets --------------------------------------------------------------


def test_get_datasets_mnist(tmp_path):
    arrays = write_mnist(tmp_path / "mnist.npz")
    splits = data.get_datasets(
        "mnist", data_dir=tmp_path, batch_size=4, validation_size=5
    )
    assert splits.image_shape == (28, 28, 1) and splits.levels == 256
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        15,
        5,
        6,
    )
    x_val, _ = collect(splits.validation)
    # The last training images, in order.
    np.testing.assert_array_equal(x_val[..., 0], arrays["x_train"][15:])
    x_train, _ = collect(splits.train)
    np.testing.assert_array_equal(
        np.sort(x_train.reshape(15, -1), axis=0),
        np.sort(arrays["x_train"][:15].reshape(15, -1), axis=0),
    )
    x_test, _ = collect(splits.test)
    np.testing.assert_array_equal(x_test[..., 0], arrays["x_test"])


def test_get_datasets_mnist_labels_and_limits(tmp_path):
    arrays = write_mnist(tmp_path / "mnist.npz")
    splits = data.get_datasets(
        "mnist",
        data_dir=tmp_path,
        batch_size=32,
        validation_size=5,
        with_labels=True,
        max_train=7,
        max_test=3,
    )
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        7,
        3,
        3,
    )
    (x, label), target = next(iter(splits.validation))
    assert x.shape == (3, 28, 28, 1) and label.dtype == "int32"
    np.testing.assert_array_equal(label, arrays["y_train"][15:18])
    np.testing.assert_array_equal(target, x)
    (x, label), _ = next(iter(splits.train))
    assert x.shape == (7, 28, 28, 1) and label.shape == (7,)


def test_get_datasets_binarized_mnist_via_env_var(monkeypatch, tmp_path):
    write_mnist(tmp_path / "mnist" / "mnist.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    splits = data.get_datasets(
        "binarized_mnist", batch_size=64, validation_size=4, seed=5
    )
    assert splits.levels == 2 and splits.image_shape == (28, 28, 1)
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        16,
        4,
        6,
    )
    x_test, _ = collect(splits.test)
    _, (expected, _) = data.load_binarized_mnist(seed=5)
    np.testing.assert_array_equal(x_test, expected)
    resized = data.get_datasets(
        "binarized_mnist", validation_size=4, image_size=(14, 14)
    )
    x_test, _ = collect(resized.test)
    assert resized.image_shape == (14, 14, 1)
    assert set(np.unique(x_test)) <= {0.0, 1.0}


def test_get_datasets_dynamic_binarization(tmp_path):
    arrays = write_mnist(tmp_path / "mnist.npz")
    # Every image: a black first row and a white second one.
    arrays["x_train"][:, 0], arrays["x_train"][:, 1] = 0, 255
    np.savez(tmp_path / "mnist.npz", **arrays)
    fixed, dynamic = (
        data.get_datasets(
            "binarized_mnist",
            data_dir=tmp_path,
            validation_size=4,
            seed=3,
            binarization=binarization,
            with_labels=True,
        )
        for binarization in ("stochastic", "dynamic")
    )
    assert dynamic.levels == 2 and dynamic.num_train == 16
    # Validation and test: the fixed draw, pixel for pixel.
    for split in ("validation", "test"):
        for ((x, y), _), ((fx, fy), _) in zip(
            getattr(dynamic, split), getattr(fixed, split), strict=True
        ):
            np.testing.assert_array_equal(x, fx)
            np.testing.assert_array_equal(y, fy)
    # Training: 0/1 images drawn from the 8-bit ones, anew each pass.
    first, second = (
        np.concatenate([np.asarray(x) for (x, _), _ in dynamic.train])
        for _ in range(2)
    )
    assert first.shape == (16, 28, 28, 1)
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    assert np.all(first[:, 0] == 0) and np.all(first[:, 1] == 1)
    # 16 x 26 x 28 draws: a standard error of 0.004.
    expected = arrays["x_train"][:16, 2:].mean() / 255
    assert abs(first[:, 2:].mean() - expected) < 0.02


def test_a_resumed_session_draws_other_orders_and_pixels(tmp_path):
    write_mnist(tmp_path / "mnist.npz")

    def splits(first_pass):
        return data.get_datasets(
            "binarized_mnist",
            data_dir=tmp_path,
            validation_size=4,
            binarization="dynamic",
            first_pass=first_pass,
        )

    def first(split_name, *runs):
        return [np.asarray(next(iter(getattr(r, split_name)))[0]) for r in runs]

    new, again, resumed = splits(0), splits(0), splits(7)
    np.testing.assert_array_equal(*first("train", new, again))
    assert not np.array_equal(*first("train", new, resumed))
    for split in ("validation", "test"):
        np.testing.assert_array_equal(*first(split, new, resumed))
    with pytest.raises(ValueError, match="first_pass=-1"):
        splits(-1)


def test_get_datasets_cifar10(tmp_path):
    (x, _), (x_t, _) = write_cifar(
        tmp_path / "cifar10-jpeg/cifar-10-batches-py"
    )
    splits = data.get_datasets("cifar10", data_dir=tmp_path, validation_size=6)
    assert splits.image_shape == (32, 32, 3) and splits.levels == 256
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        24,
        6,
        6,
    )
    np.testing.assert_array_equal(collect(splits.validation)[0], x[24:])
    np.testing.assert_array_equal(collect(splits.test)[0], x_t)
    small = data.get_datasets(
        "cifar10", data_dir=tmp_path, validation_size=6, image_size=(16, 16)
    )
    assert small.image_shape == (16, 16, 3)
    assert collect(small.train)[0].shape == (24, 16, 16, 3)


def test_get_datasets_folder(tmp_path, image_folder):
    splits = data.get_datasets(
        str(image_folder), image_size=(8, 8), validation_size=1
    )
    assert splits.image_shape == (8, 8, 3) and splits.levels == 256
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        3,
        1,
        0,
    )
    np.testing.assert_array_equal(
        collect(splits.validation)[0], np.full((1, 8, 8, 3), 100)
    )
    assert list(splits.test) == []
    # A name relative to the data directory.
    relative = data.get_datasets(
        "images", data_dir=tmp_path, image_size=(8, 8), validation_size=1
    )
    assert relative.num_train == 3


def test_get_datasets_folder_with_train_and_test(tmp_path):
    for split, count in (("train", 5), ("test", 2)):
        for i in range(count):
            write_image(tmp_path / split / f"{i}.png", solid(6, 6, RED))
    splits = data.get_datasets(tmp_path, image_size=(4, 4), validation_size=1)
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        4,
        1,
        2,
    )


def test_get_datasets_errors(tmp_path, image_folder):
    write_mnist(tmp_path / "mnist.npz")
    with pytest.raises(ValueError) as info:
        data.get_datasets("imagenet", data_dir=tmp_path)
    message = str(info.value)
    for valid in ("'mnist'", "'binarized_mnist'", "'cifar10'", "tfds:"):
        assert valid in message
    assert "Received: name='imagenet'" in message
    with pytest.raises(ValueError, match="image_size"):
        data.get_datasets(str(image_folder), validation_size=1)
    with pytest.raises(ValueError, match="with_labels"):
        data.get_datasets(
            str(image_folder),
            image_size=(8, 8),
            validation_size=1,
            with_labels=True,
        )
    with pytest.raises(ValueError, match="validation_size=20"):
        data.get_datasets("mnist", data_dir=tmp_path, validation_size=20)
    with pytest.raises(ValueError, match="binarization='otsu'"):
        data.get_datasets(
            "binarized_mnist", data_dir=tmp_path, binarization="otsu"
        )
    with pytest.raises(ValueError, match="only 'binarized_mnist' is binarized"):
        data.get_datasets("mnist", data_dir=tmp_path, binarization="dynamic")
    with pytest.raises(ValueError, match="batch_size=0"):
        data.get_datasets("mnist", data_dir=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="max_train=0"):
        data.get_datasets("mnist", data_dir=tmp_path, max_train=0)


# tensorflow_datasets -------------------------------------------------------


class PixelModelsTinyImages(tfds.core.GeneratorBasedBuilder):
    """A 4x4 grey-level data set prepared locally: tests never download."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=(4, 4, 1)),
                "label": tfds.features.ClassLabel(num_classes=3),
            }
        )
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(range(10)),
            "test": self._generate_examples(range(100, 104)),
        }

    def _generate_examples(self, values):
        for value in values:
            image = np.full((4, 4, 1), value, "uint8")
            yield value, {"image": image, "label": value % 3}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    PixelModelsTinyImages(data_dir=str(root)).download_and_prepare()
    return root


def test_load_tfds(tfds_dir):
    name = "pixel_models_tiny_images"
    x = data.load_tfds(name, "test", data_dir=str(tfds_dir))
    assert x.shape == (4, 4, 4, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.sort(x[:, 0, 0, 0]), [100, 101, 102, 103])
    splits = data.get_datasets(
        f"tfds:{name}",
        data_dir=str(tfds_dir),
        validation_size=2,
        with_labels=True,
    )
    assert splits.image_shape == (4, 4, 1) and splits.levels == 256
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        8,
        2,
        4,
    )
    (x, label), _ = next(iter(splits.test))
    np.testing.assert_array_equal(label, x.numpy()[:, 0, 0, 0] % 3)
    # The class count is the data set's own (its ClassLabel), not MNIST's.
    assert splits.num_classes == 3
    unlabelled = data.get_datasets(
        f"tfds:{name}", data_dir=str(tfds_dir), validation_size=2
    )
    assert unlabelled.num_classes is None


def test_load_tfds_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="no_such_pixels_set"):
        data.load_tfds("no_such_pixels_set", data_dir=str(tmp_path))


def test_mixed_grey_and_colour_folder_is_converted_and_says_so(tmp_path):
    write_image(tmp_path / "imgs" / "a.png", solid(4, 4, RED))
    write_image(tmp_path / "imgs" / "b.png", np.full((4, 4), 7, "uint8"))
    with pytest.warns(UserWarning, match=r"Converted 1 of 2 .*b\.png \(L\)"):
        images = data.load_image_folder(tmp_path / "imgs", (4, 4))
    assert images.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(images[1], 7)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((2, 2, 2, 1), 2.0), "values in [2.0, 2.0]"),
        (np.full((2, 2, 2, 1), -1.0), "values in [-1.0, -1.0]"),
        (np.full((2, 2, 2, 1), 0.5), "not all integers"),
    ],
)
def test_pixel_values_outside_the_levels_are_refused(images, message):
    with pytest.raises(ValueError, match="levels=2") as info:
        data.make_dataset(images, 2, levels=2)
    assert message in str(info.value)
    assert len(list(data.make_dataset(np.ones((2, 2, 2, 1)), 2, levels=2))) == 1
