"""The sampling and evaluation command-line tools, on tiny local data."""

import os
import sys

import numpy as np
import pytest
from datafiles import write_cifar, write_mnist

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import complete  # noqa: E402
import evaluate  # noqa: E402
import sample  # noqa: E402
import train_cifar  # noqa: E402
import train_mnist  # noqa: E402

# One worker for the module: its tests share one trained model.
pytestmark = [
    pytest.mark.usefixtures("no_downloads"),
    pytest.mark.xdist_group("test_cli"),
]


@pytest.fixture(scope="session")  # the tests using it may be interleaved
def trained(tmp_path_factory, claim_for_this_worker):
    claim_for_this_worker("test_cli")
    root = tmp_path_factory.mktemp("cli")
    write_mnist(root / "data" / "mnist.npz", num_train=48, num_test=12)
    write_cifar(root / "data" / "cifar-10-batches-py", per_batch=4)
    results = train_mnist.main(
        [
            "--data-dir",
            str(root / "data"),
            "--validation-size",
            "16",
            "--epochs",
            "1",
            "--num-layers",
            "1",
            "--width",
            "4",
            "--batch-size",
            "16",
            "--sample-every",
            "1",
            "--log-dir",
            str(root / "run"),
        ]
    )
    return root, results


def test_sample_cli_writes_a_grid(trained, capsys):
    root, _ = trained
    out = root / "grid.png"
    images = sample.main(
        [
            str(root / "run" / "model.keras"),
            "--num",
            "4",
            "--out",
            str(out),
            "--save-npy",
            str(root / "grid.npy"),
        ]
    )
    assert images.shape == (4, 28, 28, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) <= {0, 1}
    assert out.stat().st_size > 1000
    np.testing.assert_array_equal(np.load(root / "grid.npy"), images)
    assert "Wrote" in capsys.readouterr().out


def test_training_wrote_sample_grids_to_tensorboard(trained):
    root, _ = trained
    samples = root / "run" / "tensorboard" / "samples"
    assert any(name.startswith("events") for name in os.listdir(samples))


def test_evaluate_cli_matches_training(trained, capsys):
    root, results = trained
    scored = evaluate.main(
        [
            str(root / "run" / "model.keras"),
            "--dataset",
            "binarized_mnist",
            "--data-dir",
            str(root / "data"),
        ]
    )
    out = capsys.readouterr().out
    assert "12 images" in out and "bits/dim" in out and "nats/image" in out
    assert scored["num_images"] == 12
    np.testing.assert_allclose(
        scored["bits_per_dim"], results["bits_per_dim"], rtol=1e-5
    )


def test_evaluate_cli_writes_per_image_nll(trained, tmp_path):
    import csv

    root, _ = trained
    path = tmp_path / "nll.csv"
    scored = evaluate.main(
        [
            str(root / "run" / "model.keras"),
            "--dataset",
            "binarized_mnist",
            "--data-dir",
            str(root / "data"),
            "--batch-size",
            "5",
            "--per-image",
            str(path),
        ]
    )
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["index"]) for row in rows] == list(range(12))
    nats = np.array([float(row["nats"]) for row in rows])
    assert nats.mean() == pytest.approx(scored["nats_per_image"], rel=1e-5)
    assert float(rows[0]["bits_per_dim"]) == pytest.approx(
        nats[0] / (28 * 28 * np.log(2)), rel=1e-6
    )
    assert len(set(nats.round(3))) > 1  # each image its own figure


def test_complete_cli_keeps_the_given_rows(trained, tmp_path):
    from PIL import Image

    from pixel_models import data

    root, _ = trained
    common = [
        str(root / "run" / "model.keras"),
        "--dataset",
        "binarized_mnist",
        "--data-dir",
        str(root / "data"),
        "--num",
        "2",
        "--completions",
        "3",
    ]
    out = tmp_path / "completions.png"
    completions = complete.main([*common, "--rows", "10", "--out", str(out)])
    test = data.get_datasets(
        "binarized_mnist", data_dir=root / "data", validation_size=0
    ).test
    images = next(iter(test.as_numpy_iterator()))[0][:2]
    assert completions.shape == (2, 3, 28, 28, 1)
    np.testing.assert_array_equal(
        completions[:, :, :10], np.repeat(images[:, None, :10], 3, axis=1)
    )
    assert out.stat().st_size > 1000
    # A mask picture: the left half given.
    mask = np.zeros((28, 28), "uint8")
    mask[:, :14] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    left = complete.main(
        [*common, "--mask", str(tmp_path / "mask.png"), "--out", str(out)]
    )
    np.testing.assert_array_equal(
        left[:, :, :, :14], np.repeat(images[:, None, :, :14], 3, axis=1)
    )
    Image.fromarray(mask[:20]).save(tmp_path / "small.png")
    for bad in (
        ["--rows", "29"],
        ["--mask", str(tmp_path / "small.png")],
        ["--rows", "3", "--mask", str(tmp_path / "mask.png")],
    ):
        with pytest.raises(SystemExit):
            complete.main([*common, *bad, "--out", str(out)])


def test_evaluate_refuses_a_data_set_of_another_shape(trained, capsys):
    root, _ = trained
    with pytest.raises(SystemExit):
        evaluate.main(
            [
                str(root / "run" / "model.keras"),
                "--dataset",
                "cifar10",
                "--data-dir",
                str(root / "data"),
            ]
        )
    err = capsys.readouterr().err
    assert "(32, 32, 3)" in err and "(28, 28, 1)" in err


@pytest.mark.parametrize("tool", [sample, evaluate])
def test_missing_and_corrupt_model_files(tool, tmp_path, capsys, trained):
    root, _ = trained
    extra = ["--dataset", "mnist"] if tool is evaluate else []
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "nope.keras"), *extra])
    assert "No model file" in capsys.readouterr().err
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((root / "run" / "model.keras").read_bytes()[:500])
    with pytest.raises(SystemExit):
        tool.main([str(truncated), *extra])
    err = capsys.readouterr().err
    assert "truncated.keras" in err and "not a valid .keras" in err


def test_conditional_training_sampling_and_evaluation(tmp_path, capsys):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=48, num_test=12)
    results = train_mnist.main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--model",
            "gated_pixelcnn",
            "--conditional",
            "--validation-size",
            "16",
            "--epochs",
            "1",
            "--num-layers",
            "2",
            "--width",
            "4",
            "--batch-size",
            "16",
            "--log-dir",
            str(tmp_path / "run"),
        ]
    )
    path = str(tmp_path / "run" / "model.keras")
    images = sample.main(
        [path, "--per-class", "2", "--out", str(tmp_path / "grid.png")]
    )
    assert images.shape == (20, 28, 28, 1)
    scored = evaluate.main(
        [
            path,
            "--dataset",
            "binarized_mnist",
            "--data-dir",
            str(tmp_path / "data"),
        ]
    )
    np.testing.assert_allclose(
        scored["bits_per_dim"], results["bits_per_dim"], rtol=1e-5
    )
    with pytest.raises(SystemExit):
        sample.main([path, "--num", "2", "--label", "10"])
    assert "labels" in capsys.readouterr().err


def test_unroll_is_refused_for_a_convolutional_model(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit):
        train_mnist.main(
            ["--model", "pixelcnn", "--unroll", "--log-dir", str(run)]
        )
    assert "--model='pixelcnn'" in capsys.readouterr().err
    assert not run.exists()


def test_training_scripts_end_a_users_mistake_with_one_error_line(
    tmp_path, capsys
):
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=48, num_test=12)
    base = ["--data-dir", str(tmp_path / "data"), "--log-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        train_mnist.main([*base])  # 5000 validation images of 48
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert "error: --validation-size must be smaller" in err
    assert "Received: --validation-size=5000" in err
    with pytest.raises(SystemExit):
        train_mnist.main([*base, "--dataset", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert "error: Unknown data set" in err and "--dataset=" in err
    with pytest.raises(SystemExit):
        train_mnist.main(
            [*base, "--dataset", "mnist", "--binarization", "dynamic"]
        )
    err = capsys.readouterr().err
    assert "error: --binarization must be 'stochastic'" in err
    assert "--dataset='mnist'" in err
    with pytest.raises(SystemExit):
        train_mnist.main(["--help"])
    assert "(default: 7)" in capsys.readouterr().out


def test_a_small_folder_gets_a_tenth_for_validation(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(30):
        pixels = rng.integers(0, 256, (8, 8, 3), "uint8")
        Image.fromarray(pixels).save(folder / f"{k}.png")
    results = train_cifar.main(
        [
            "--dataset", str(folder), "--image-size", "8", "--epochs", "1",
            "--num-layers", "1", "--width", "6", "--batch-size", "8",
            "--sample-every", "0", "--log-dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert "train=27, validation=3" in capsys.readouterr().out
    assert results["split"] == "validation" and results["num_images"] == 3


def test_the_output_flags_choose_the_likelihood(tmp_path, capsys):
    from pixel_models.cli.arguments import parse_args
    from pixel_models.trainer import _likelihood_arguments

    def chosen(*flags):
        sizes = {"num_layers": 1, "width": 4, "batch_size": 8, "epochs": 1}
        args = parse_args(
            "t", [*flags], datasets=["x"], default_dataset="x", sizes=sizes
        )
        return _likelihood_arguments(args)

    assert chosen() == {}
    assert chosen("--output", "logistic_mixture", "--num-mixtures", "3") == {
        "output": "logistic_mixture",
        "num_mixtures": 3,
    }
    assert chosen("--model", "pixelcnn_pp", "--num-mixtures", "4") == {
        "num_mixtures": 4
    }
    write_mnist(tmp_path / "data" / "mnist.npz", num_train=48, num_test=12)
    with pytest.raises(SystemExit):
        train_mnist.main(
            [
                "--data-dir", str(tmp_path / "data"),
                "--validation-size", "8", "--multiscale", "14",
                "--output", "logistic_mixture",
                "--log-dir", str(tmp_path / "run"),
            ]
        )  # fmt: skip
    assert "--multiscale trains two categorical models" in (
        capsys.readouterr().err
    )


def test_evaluate_cli_scores_a_mixture_model_on_its_levels(tmp_path):
    """A PixelCNN++ file's outputs are mixture parameters, not its 256
    levels: the CLI takes its levels from the model and scores it."""
    from pixel_models import models
    from pixel_models.evaluation import log_prob

    _, (test, _) = write_cifar(tmp_path / "cifar-10-batches-py", per_batch=2)
    model = models.build_model(
        "pixelcnn_pp", (32, 32, 3), 256, num_layers=1, width=4, num_mixtures=2
    )
    assert model.output_shape[-1] != 256
    path = str(tmp_path / "pp.keras")
    model.save(path)
    scored = evaluate.main(
        [path, "--dataset", "cifar10", "--data-dir", str(tmp_path)]
    )
    expected = -np.mean(np.asarray(log_prob(model, test))) / (32 * 32 * 3)
    np.testing.assert_allclose(
        scored["bits_per_dim"], expected / np.log(2), rtol=1e-4
    )
