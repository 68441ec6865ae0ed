"""The model classes: config, saving, compile defaults and methods."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from pixel_models import evaluation, models, presets, sampling
from pixel_models.logistic_mixture import LogisticMixtureNLL
from pixel_models.losses import DiscreteNLL

CLASSES = {
    "pixelcnn": models.PixelCNN,
    "gated_pixelcnn": models.GatedPixelCNN,
    "row_lstm": models.RowLSTMPixelRNN,
    "diagonal_bilstm": models.DiagonalBiLSTMPixelRNN,
}


def small(family, shape=(4, 5, 3), levels=4, **kwargs):
    return models.build_model(
        family, shape, levels, num_layers=1, width=3, **kwargs
    )


@pytest.mark.parametrize("family", sorted(CLASSES))
def test_the_builders_give_the_class_and_its_config_rebuilds_it(family):
    model = small(family, num_classes=3, condition_shape=(2, 5, 3))
    assert type(model) is CLASSES[family]
    assert model.family == family
    assert model.image_shape == (4, 5, 3)
    assert model.levels == 4
    assert model.num_classes == 3
    assert model.condition_shape == (2, 5, 3)
    config = model.get_config()
    json.dumps(config)  # plain values only
    again = CLASSES[family].from_config(config)
    assert type(again) is CLASSES[family]
    assert again.get_config() == config
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]


def test_the_model_knows_itself_from_its_config_not_its_graph():
    model = small("pixelcnn", num_classes=3)
    # The library functions read the config: a graph with another label
    # embedding size would not change what they are told.
    assert sampling.num_classes(model) == 3
    assert sampling.condition_shape(model) is None
    model._arguments["num_classes"] = 5
    assert sampling.num_classes(model) == 5


def test_every_class_saves_and_loads_as_itself_in_a_fresh_process(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for family, cls in CLASSES.items():
        shape = (4, 5, 1) if family in ("pixelcnn", "row_lstm") else (4, 5, 3)
        model = cls(shape, levels=3, num_layers=1, num_classes=2, **{
            "units" if "lstm" in family else "filters": 3
        })  # fmt: skip
        x = rng.integers(0, 3, (2, *shape)).astype("float32")
        labels = np.array([0, 1], "int32")
        model.save(tmp_path / f"{family}.keras")
        np.savez(tmp_path / f"{family}.npz", x=x, labels=labels)
        expected[family] = keras.ops.convert_to_numpy(model([x, labels]))
    script = textwrap.dedent(
        f"""
        import keras, numpy as np
        import pixel_models  # noqa: F401
        for family in {sorted(CLASSES)!r}:
            model = keras.models.load_model(
                {str(tmp_path)!r} + f"/{{family}}.keras", safe_mode=True
            )
            data = np.load({str(tmp_path)!r} + f"/{{family}}.npz")
            out = keras.ops.convert_to_numpy(model([data["x"], data["labels"]]))
            np.save({str(tmp_path)!r} + f"/{{family}}.out.npy", out)
            print(family, type(model).__name__, model.num_classes)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()[-len(CLASSES) :]
    assert lines == [f"{f} {CLASSES[f].__name__} 2" for f in sorted(CLASSES)]
    for family, logits in expected.items():
        np.testing.assert_allclose(
            np.load(tmp_path / f"{family}.out.npy"), logits, atol=1e-5
        )


def test_compile_without_arguments_takes_the_project_defaults():
    model = small("gated_pixelcnn")
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.optimizer.clipnorm == 1.0
    assert isinstance(model.loss, DiscreteNLL)
    x = np.zeros((2, 4, 5, 3), "float32")
    logs = model.evaluate(x, x, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "bits_per_dim"}
    assert logs["bits_per_dim"] == pytest.approx(logs["loss"] / np.log(2))
    # Any argument overrides its default, the others stay.
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert isinstance(model.loss, DiscreteNLL)
    model.compile(loss="mse", metrics=[])
    logs = model.evaluate(x, x[..., None], verbose=0, return_dict=True)
    assert set(logs) == {"loss"}


@pytest.mark.tensorflow_only
def test_compile_builds_the_optimizer_so_the_first_step_is_traced_once():
    model = small("pixelcnn")
    model.compile(jit_compile=False)
    # Two Adam slots for each weight, made at compile, not in the trace.
    assert model.optimizer.built
    assert len(model.optimizer.variables) > 2 * len(model.trainable_weights)
    x = np.ones((4, 4, 5, 3), "float32")
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    traces, train_step = [], model.train_step

    def counted_step(data):  # runs once a trace
        traces.append(data)
        return train_step(data)

    model.train_step = counted_step
    model.fit(x, x, batch_size=2, epochs=2, verbose=0)
    # A step that created variables would be traced again (TensorFlow
    # traces a function anew after its first call made variables).
    assert len(traces) == 1
    assert int(model.optimizer.iterations) == 4
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert all(np.any(a != b) for a, b in zip(after, before, strict=True))


def test_the_methods_equal_the_library_functions():
    model = small("row_lstm", shape=(3, 4, 3), num_classes=2)
    labels = np.array([1, 0, 1])
    generated = model.generate(3, labels=labels, seed=4, temperature=0.8)
    np.testing.assert_array_equal(
        generated,
        sampling.sample(
            model, 3, labels=labels, seed=4, temperature=0.8, progress=False
        ),
    )
    np.testing.assert_array_equal(
        model.log_prob(generated, labels=labels),
        evaluation.log_prob(model, generated, labels=labels),
    )
    completed = model.complete(
        generated, 1, labels=labels, seed=2, progress=False
    )
    np.testing.assert_array_equal(
        completed,
        sampling.complete(model, generated, 1, labels=labels, seed=2),
    )
    np.testing.assert_array_equal(completed[:, 0, :1], generated[:, :1])


def test_the_methods_check_their_arguments():
    model = small("pixelcnn", num_classes=2)
    message = r"labels must be one integer in \[0, 1\]"
    with pytest.raises(ValueError, match=message):
        model.generate(2, labels=[0, 2])
    with pytest.raises(ValueError, match=r"integer pixel values in \[0, 3\]"):
        model.log_prob(np.full((1, 4, 5, 3), 4.0), labels=0)


@pytest.mark.parametrize("name", presets.list_presets())
def test_from_preset_gives_the_family_class(name):
    card = presets.preset_card(name)
    cls = {**CLASSES, "pixelcnn_pp": models.PixelCNNPlusPlus}[card["family"]]
    model = cls.from_preset(name)
    assert type(model) is cls
    assert isinstance(model.loss, (DiscreteNLL, LogisticMixtureNLL))
    assert type(models.PixelModel.from_preset(name, compile=False)) is cls
    other = next(c for f, c in CLASSES.items() if f != card["family"])
    with pytest.raises(ValueError, match=f"{cls.__name__}.from_preset"):
        other.from_preset(name)
