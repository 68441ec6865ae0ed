"""Lossless compression: exact round trips, size against the NLL, errors."""

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest

from pixel_models import compression
from pixel_models.evaluation import log_prob, log_prob_map
from pixel_models.models import build_model
from pixel_models.sampling.stepper import PixelStepper


def _model(family, shape, levels, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs = {"num_layers": 2, "width": 6, **kwargs}
    model = build_model(family, shape, levels, **kwargs)
    rng = np.random.default_rng(seed)
    model.set_weights(
        [0.3 * rng.normal(size=w.shape) for w in model.get_weights()]
    )
    return model


def _images(n, shape, levels, seed=1):
    return np.random.default_rng(seed).integers(0, levels, (n, *shape))


# Every family, grey and colour, labels, a small image, mixture heads.
CASES = [
    ("pixelcnn", (4, 4, 3), 4, {}, 3),
    ("gated_pixelcnn", (4, 5, 1), 2, {"num_classes": 3}, 4),
    ("row_lstm", (3, 4, 3), 3, {}, 16),
    ("diagonal_bilstm", (4, 4, 1), 5, {}, 2),
    ("pixelcnn", (4, 4, 3), 8, {"output": "logistic_mixture"}, 4),
    ("gated_pixelcnn", (4, 4, 1), 4, {"condition_shape": (2, 2, 1)}, 5),
    # PixelCNN++ with one block a resolution: its sampler's steps are the
    # suite's slowest to trace, and two blocks add nothing to test here.
    (
        "pixelcnn_pp",
        (4, 4, 3),
        8,
        {"num_mixtures": 2, "num_classes": 3, "num_layers": 1},
        4,
    ),
]


def _case(family, shape, levels, kwargs, n=7):
    """The case's model, `n` images and the model's other inputs."""
    if "output" in kwargs:
        kwargs = {**kwargs, "num_mixtures": 2}
    model = _model(family, shape, levels, **kwargs)
    inputs = {}
    if "num_classes" in kwargs:
        inputs["labels"] = np.arange(n) % 3
    if "condition_shape" in kwargs:
        inputs["condition"] = _images(n, kwargs["condition_shape"], levels, 2)
    return model, _images(n, shape, levels), inputs


@pytest.mark.parametrize("family, shape, levels, kwargs, batch_size", CASES)
def test_round_trips_are_exact(family, shape, levels, kwargs, batch_size):
    model, x, inputs = _case(family, shape, levels, kwargs)
    data = compression.compress(model, x, batch_size=batch_size, **inputs)
    images, labels, condition = compression.decompress(
        model, data, return_inputs=True
    )
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, x)
    if "labels" in inputs:
        np.testing.assert_array_equal(labels, inputs["labels"])
    if "condition" in inputs:
        np.testing.assert_array_equal(condition, inputs["condition"])
    # And what the coder was handed at each sub-pixel, normalised, is the
    # model's own log p(x_i | x_<i) of the full pass: the file's size is
    # the model's likelihood, not some other distribution's (the same
    # batch size: the compiled steps are reused).
    n = min(batch_size, len(x))
    x, inputs = x[:n], {k: v[:n] for k, v in inputs.items()}
    np.testing.assert_allclose(
        _coder_log_probs(model, x, inputs),
        log_prob_map(model, x, **inputs),
        atol=2e-4,
        rtol=1e-5,
    )


def _coder_log_probs(model, x, inputs):
    """log p(x_i | x_<i) of every sub-pixel of `x`, as the stepper hands
    them to the coder (one batch of all of `x`)."""
    got = np.zeros(x.shape)

    def choose(i, j, c, log_probs):
        logits = np.asarray(log_probs, "float64")
        logits -= logits.max(axis=1, keepdims=True)
        normal = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        got[:, i, j, c] = normal[np.arange(len(x)), x[:, i, j, c]]
        return x[:, i, j, c]

    images = PixelStepper(model, len(x)).run(choose, **inputs)
    np.testing.assert_array_equal(images, x)
    return got


def test_thousands_of_images_round_trip_within_1_percent_of_the_nll():
    # A model that has learned something: sizes near its -log2 p(x).
    model = _model("gated_pixelcnn", (4, 4, 1), 2)
    rng = np.random.default_rng(3)
    x = (
        rng.random((2000, 4, 4, 1)) < np.linspace(0.1, 0.9, 16).reshape(4, 4, 1)
    ).astype("int64")
    model.compile()
    model.fit(x, x, epochs=2, batch_size=100, verbose=0)
    data = compression.compress(model, x, batch_size=500)
    np.testing.assert_array_equal(compression.decompress(model, data), x)
    bits = -log_prob(model, x).sum() / np.log(2)
    payload = (len(data) - compression.HEADER.size - 4) * 8
    assert payload <= 1.01 * bits + 32
    assert payload >= bits - 32  # no free lunch: the model's bits
    assert len(data) - payload / 8 <= 64  # the header and its CRC


def _tampered(data, offset, value):
    """`data` with the header field at `offset` set, the CRC made good."""
    body = bytearray(data[:-4])
    struct.pack_into("<I", body, offset, value)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def test_every_bad_file_is_refused_by_name():
    model = _model("pixelcnn", (4, 4, 1), 2)
    x = _images(3, (4, 4, 1), 2)
    data = compression.compress(model, x)
    with pytest.raises(ValueError, match="not a pixel-models compressed file"):
        compression.decompress(model, b"GIF89a" + data[6:])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        compression.decompress(model, data[:-3])
    flipped = bytearray(data)
    flipped[len(data) // 2 + 20] ^= 1
    with pytest.raises(ValueError, match="truncated or corrupted"):
        compression.decompress(model, bytes(flipped))
    newer = bytearray(data)
    newer[4] = 2
    with pytest.raises(ValueError, match="version 2 file.*version 1"):
        compression.decompress(model, bytes(newer))
    other = _model("pixelcnn", (4, 4, 1), 2, seed=5)
    with pytest.raises(ValueError, match="another model"):
        compression.decompress(other, data)
    # Probabilities that differ from the compressing machine's decode
    # other images: the stored CRC of the originals catches it.
    crc_offset = compression.HEADER.size - 8
    bad = _tampered(data, crc_offset, zlib.crc32(b"other images"))
    with pytest.raises(ValueError, match="do not match the compressed ones"):
        compression.decompress(model, bad)
    with pytest.raises(ValueError, match="images must be an array of shape"):
        compression.compress(model, x[:, :3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compression.compress(model, x + 1)


def test_a_file_written_here_decodes_in_a_fresh_process(tmp_path):
    model = _model("row_lstm", (3, 4, 3), 4)
    x = _images(5, (3, 4, 3), 4)
    model.save(tmp_path / "m.keras")
    (tmp_path / "x.pxmz").write_bytes(compression.compress(model, x))
    script = (
        "import sys, keras, numpy as np\n"
        "from pixel_models import compression\n"
        "m = keras.models.load_model(sys.argv[1], safe_mode=True)\n"
        "data = open(sys.argv[2], 'rb').read()\n"
        "np.save(sys.argv[3], compression.decompress(m, data))\n"
    )
    out = tmp_path / "y.npy"
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "m.keras"),
         str(tmp_path / "x.pxmz"), str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    np.testing.assert_array_equal(np.load(out), x)


def test_the_command_round_trips_through_files_and_writes_nothing_on_error(
    tmp_path, capsys
):
    sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
    import compress as command

    model = _model("gated_pixelcnn", (4, 4, 1), 2, num_classes=2)
    model.save(tmp_path / "m.keras")
    x = _images(6, (4, 4, 1), 2)
    labels = np.arange(6) % 2
    np.savez(tmp_path / "in.npz", images=x, labels=labels)
    flags = ["--model", str(tmp_path / "m.keras"), "--batch-size", "4"]
    report = command.main([
        "compress", *flags, "--input", str(tmp_path / "in.npz"),
        "--output", str(tmp_path / "x.pxmz"),
    ])  # fmt: skip
    # 96 binary pixels: the 57-byte header outweighs the coded bits.
    assert report["images"] == 6 and report["bytes"] == pytest.approx(
        report["bits_per_dim"] * 96 / 8
    )
    assert report["bits_per_dim"] > report["model_bits_per_dim"] > 0
    assert "bits/dim (the model's NLL" in capsys.readouterr().out
    command.main([
        "decompress", *flags, "--input", str(tmp_path / "x.pxmz"),
        "--output", str(tmp_path / "out.npz"),
    ])  # fmt: skip
    with np.load(tmp_path / "out.npz") as f:
        np.testing.assert_array_equal(f["images"], x)
        np.testing.assert_array_equal(f["labels"], labels)
    command.main([
        "decompress", *flags, "--input", str(tmp_path / "x.pxmz"),
        "--output", str(tmp_path / "pngs"),
    ])  # fmt: skip
    pngs = sorted((tmp_path / "pngs").iterdir())
    assert len(pngs) == 6
    from PIL import Image

    assert set(np.unique(np.asarray(Image.open(pngs[0])))) <= {0, 255}
    # A corrupted file stops the command, and nothing is written.
    (tmp_path / "bad.pxmz").write_bytes((tmp_path / "x.pxmz").read_bytes()[:-5])
    with pytest.raises(SystemExit):
        command.main([
            "decompress", *flags, "--input", str(tmp_path / "bad.pxmz"),
            "--output", str(tmp_path / "never"),
        ])  # fmt: skip
    assert "truncated or corrupted" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_benchmark_counts_the_stored_labels_in_the_models_bits():
    from benchmarks.compression import balanced_batch_size, measure_model

    assert [balanced_batch_size(n, 1000) for n in (1017, 1000, 10000)] == [
        509,
        1000,
        1000,
    ]
    assert balanced_batch_size(7, 256) == 7
    model = _model("gated_pixelcnn", (4, 5, 1), 2, num_classes=3)
    x, labels = _images(9, (4, 5, 1), 2).astype("uint8"), np.arange(9) % 3
    row = measure_model(model, "tiny", x, labels, batch_size=5)
    assert row["exact"] and row["preset"] == "tiny"
    assert row["label_bits_per_dim"] == pytest.approx(np.log2(3) / 20)
    # The overhead is against the model of the file: log2 p(y) + log2
    # p(x | y), with p(y) uniform; the unconditional bits alone are less.
    bits = -log_prob(model, x, labels=labels).sum() / np.log(2)
    assert row["model_bits_per_dim"] == pytest.approx(bits / x.size)
    stored = bits + 9 * np.log2(3)
    assert row["overhead"] == pytest.approx(8 * row["bytes"] / stored - 1)
    assert 8 * row["bytes"] > stored
