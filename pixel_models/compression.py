"""Lossless image compression with any model: a range coder driven by the
model's own sub-pixel probabilities.

`compress(model, images)` runs the fast sampler one sub-pixel at a time
(`sampling.stepper.PixelStepper`) with the images' own values, and codes
each value with `constriction`'s range coder under the model's
distribution at that sub-pixel; `decompress(model, data)` runs the same
steps with the decoder choosing each value. Both sides compute every
probability the same way (the same compiled steps, the same batch of
`batch_size` images, the last one padded; float32 log-probabilities
turned into float64 probabilities by the same NumPy code, quantised by
`constriction.stream.model.Categorical(perfect=False)`), so the decoder
sees the encoder's probabilities bit for bit, on the same backend,
versions and kind of CPU (docs/compression.md). A file's size is the
model's `-log2 p(x)` plus the coder's fraction of a word and a header
of 57 bytes (the labels and small images, if any, are coded first, each
value uniform over its range).

The file: magic `PXMZ`, a version byte, flags, 16 bytes of the sha256 of
the model's weights, a CRC-32 of the preset's name (0 without one), of
the environment (backend and versions) and of the original images, the
shape, levels, count and batch size, the coded words (the labels and
small images first, when the model takes them), and a CRC-32 of the
whole file.
Another model, a truncated or corrupted file, another version, or
decoded images whose CRC-32 differs (probabilities that differed between
the two machines) raise a `ValueError` that says which.
"""

import hashlib
import platform
import struct
import zlib

import keras
import numpy as np

from pixel_models.checks import check_int
from pixel_models.inputs import (
    check_condition,
    check_images,
    check_labels,
    condition_shape,
    image_shape,
    model_levels,
    num_classes,
)
from pixel_models.sampling.stepper import PixelStepper

MAGIC = b"PXMZ"
VERSION = 1
# magic, version, flags, model sha256[:16], preset CRC, environment CRC,
# H, W, C, levels, count, batch size, images CRC, coded words.
HEADER = struct.Struct("<4sBB16sIIHHBHIIII")
CRC = struct.Struct("<I")
LABELS, CONDITION = 1, 2


def model_sha256(model):
    """The sha256 of a model's weights (their float32 bytes, in order)."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, "float32").tobytes())
    return digest.hexdigest()


def environment():
    """What must match between the machine that compresses and the one
    that decompresses: the backend, the versions, the CPU's kind."""
    import constriction

    versions = [keras.backend.backend(), keras.__version__]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions.append(tf.__version__)
    versions.append(getattr(constriction, "__version__", "?"))
    return "|".join([*versions, platform.machine(), platform.processor()])


def _probabilities(log_probs):
    """float32 log-probabilities `(n, levels)`, up to a constant per row
    (logits), as the float64 probabilities the coder quantises, the same
    way on both sides."""
    log_probs = np.asarray(log_probs, "float64")
    p = np.exp(log_probs - log_probs.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _uniform(n, size):
    """`n` uniform distributions over `size` values, for the coder."""
    return np.full((n, size), 1.0 / size)


def _inputs(model, labels, condition):
    """`(flag, values, range)` of the labels and small images to store."""
    stored = []
    if labels is not None:
        stored.append((LABELS, labels.astype("int32"), num_classes(model)))
    if condition is not None:
        values = condition.astype("int32").reshape(-1)
        stored.append((CONDITION, values, model_levels(model)))
    return stored


def _crc(array):
    return zlib.crc32(np.ascontiguousarray(array, "uint8").tobytes())


def _chunks(count, batch_size):
    return [
        (s, min(s + batch_size, count)) for s in range(0, count, batch_size)
    ]


def _padded(array, start, stop, size):
    """Rows `start:stop` of `array`, padded to `size` rows with the first
    of them (None stays None)."""
    if array is None:
        return None
    rows = array[start:stop]
    return np.concatenate([rows, np.repeat(rows[:1], size - len(rows), 0)])


def _run(model, count, batch_size, choose, labels, condition, progress):
    """Runs the stepper over every chunk of `batch_size` images, the last
    one padded: `choose(start, real, i, j, c, probabilities)` gets the
    chunk's first image, its real images and their float64
    probabilities `(real, levels)`, and returns their values."""
    stepper = PixelStepper(model, batch_size)
    chunks = _chunks(count, batch_size)
    bar = keras.utils.Progbar(
        len(chunks) * stepper.shape[0], verbose=int(progress), unit_name="row"
    )
    for start, stop in chunks:
        real = stop - start

        def step(i, j, c, log_probs, start=start, real=real):
            probabilities = _probabilities(log_probs[:real])
            values = choose(start, real, i, j, c, probabilities)
            return np.concatenate([values, np.zeros(batch_size - real, int)])

        stepper.run(
            step,
            labels=_padded(labels, start, stop, batch_size),
            condition=_padded(condition, start, stop, batch_size),
            on_row=lambda: bar.add(1),
        )


def compress(
    model,
    images,
    labels=None,
    condition=None,
    batch_size=256,
    preset=None,
    progress=False,
):
    """Compresses `images` losslessly with `model`'s likelihood.

    Args:
        model: any model of `pixel_models.models`.
        images: `(n, H, W, C)` integer pixel values in `[0, levels - 1]`.
        labels, condition: the model's other inputs, as for `log_prob`;
            stored in the file.
        batch_size: images coded side by side (the decoder uses the same).
        preset: the preset's name, if the model is one (stored as a CRC).
        progress: show a progress bar (rows of each batch).

    Returns:
        The compressed bytes.
    """
    import constriction

    x = check_images(model, images).astype("int64")
    count = len(x)
    labels = check_labels(model, labels, count)
    condition = check_condition(model, condition, count)
    check_int("batch_size", batch_size)
    batch_size = min(batch_size, count)
    coder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)
    flags = 0
    # The labels and the small images first, each value uniform over
    # its range (log2 of the class count, of the levels, bits each).
    for flag, values, size in _inputs(model, labels, condition):
        flags |= flag
        coder.encode(values, family, _uniform(len(values), size))

    def choose(start, real, i, j, c, probabilities):
        values = x[start : start + real, i, j, c]
        coder.encode(values.astype("int32"), family, probabilities)
        return values

    _run(model, count, batch_size, choose, labels, condition, progress)
    words = coder.get_compressed().astype("<u4").tobytes()
    header = HEADER.pack(
        MAGIC,
        VERSION,
        flags,
        bytes.fromhex(model_sha256(model))[:16],
        zlib.crc32(preset.encode()) if preset else 0,
        zlib.crc32(environment().encode()),
        *image_shape(model),
        model_levels(model),
        count,
        batch_size,
        _crc(x),
        len(words) // 4,
    )
    body = header + words
    return body + CRC.pack(zlib.crc32(body))


def read_header(data):
    """The fields of a compressed file's header, checked: a dict.

    Raises:
        ValueError: not such a file, another version, truncated or
            corrupted.
    """
    data = bytes(data)
    if len(data) < HEADER.size + CRC.size or data[:4] != MAGIC:
        raise ValueError(
            "data is not a pixel-models compressed file (it must start with "
            f"{MAGIC!r} and hold at least {HEADER.size + CRC.size} bytes). "
            f"Received: {len(data)} bytes starting {data[:4]!r}"
        )
    fields = HEADER.unpack_from(data)
    keys = ("magic", "version", "flags", "model", "preset", "environment",
            "height", "width", "channels", "levels", "count", "batch_size",
            "images_crc", "words")  # fmt: skip
    header = dict(zip(keys, fields, strict=True))
    if header["version"] != VERSION:
        raise ValueError(
            f"data is a version {header['version']} file; this pixel-models "
            f"reads version {VERSION}."
        )
    (stored,) = CRC.unpack_from(data, len(data) - CRC.size)
    if zlib.crc32(data[: -CRC.size]) != stored:
        raise ValueError(
            "data is truncated or corrupted: its CRC-32 does not match "
            f"({len(data)} bytes)."
        )
    return header


def decompress(model, data, return_inputs=False, progress=False):
    """The images `compress` coded in `data`, with the same `model`.

    Args:
        model: the model that compressed them (its weights are checked).
        data: the bytes `compress` returned.
        return_inputs: also return the stored labels and small images.
        progress: show a progress bar (rows of each batch).

    Returns:
        uint8 images `(n, H, W, C)`; with `return_inputs`, `(images,
        labels, condition)` (None where the model takes none).

    Raises:
        ValueError: another model, a truncated or corrupted file, another
            version, or decoded images that do not match the originals.
    """
    import constriction

    data = bytes(data)
    header = read_header(data)
    sha = model_sha256(model)
    if bytes.fromhex(sha)[:16] != header["model"]:
        raise ValueError(
            "data was compressed with another model: its weights' sha256 "
            f"starts {header['model'].hex()}, model {model.name!r}'s is "
            f"{sha[:32]}."
        )
    shape = (header["height"], header["width"], header["channels"])
    if shape != image_shape(model) or header["levels"] != model_levels(model):
        raise ValueError(
            f"data holds {shape} images of {header['levels']} levels; model "
            f"{model.name!r} models {image_shape(model)} images of "
            f"{model_levels(model)} levels."
        )
    count, batch_size = header["count"], header["batch_size"]
    words = np.frombuffer(data, "<u4", header["words"], HEADER.size)
    decoder = constriction.stream.queue.RangeDecoder(words.astype("uint32"))
    family = constriction.stream.model.Categorical(perfect=False)
    labels = condition = None
    if header["flags"] & LABELS:
        classes = num_classes(model)
        labels = decoder.decode(family, _uniform(count, classes)).astype(
            "int32"
        )
    if header["flags"] & CONDITION:
        small = (count, *condition_shape(model))
        size = int(np.prod(small))
        values = decoder.decode(family, _uniform(size, header["levels"]))
        condition = values.reshape(small).astype("float32")
    images = np.zeros((count, *shape), "uint8")

    def choose(start, real, i, j, c, probabilities):
        values = decoder.decode(family, probabilities)
        images[start : start + real, i, j, c] = values
        return values

    _run(model, count, batch_size, choose, labels, condition, progress)
    if _crc(images) != header["images_crc"]:
        same = header["environment"] == zlib.crc32(environment().encode())
        raise ValueError(
            "The decoded images do not match the compressed ones (CRC-32): "
            "the model's probabilities differed from the compressing "
            "machine's. "
            + (
                "The backend and versions match; the CPU may differ."
                if same
                else "It ran another backend or other versions "
                "(docs/compression.md says what must match)."
            )
        )
    if return_inputs:
        return images, labels, condition
    return images
