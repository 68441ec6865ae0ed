"""tf.distribute strategies and mixed precision on the training path."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pixel_models.models import build_pixelcnn
from pixel_models.training import compile_model, make_strategy, set_precision

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)

MIRRORED = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    from pixel_models.models import build_pixelcnn
    from pixel_models.training import compile_model, make_strategy

    def first_loss(strategy, weights, x):
        with strategy.scope():
            model = compile_model(
                build_pixelcnn((6, 6, 1), 2, num_layers=1, filters=4)
            )
        model.set_weights(weights)
        loss = float(model.train_on_batch(x, x)[0])
        return loss, strategy.num_replicas_in_sync

    keras.utils.set_random_seed(0)
    model = build_pixelcnn((6, 6, 1), 2, num_layers=1, filters=4)
    weights = model.get_weights()
    x = np.random.default_rng(0).integers(0, 2, (8, 6, 6, 1)).astype("float32")
    one, n1 = first_loss(make_strategy("default"), weights, x)
    two, n2 = first_loss(make_strategy("mirrored"), weights, x)
    print(one, two, n1, n2)
    """
)


def test_mirrored_over_two_cpus_gives_the_one_device_loss():
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    one, two, n1, n2 = out.stdout.split()[-4:]
    assert (int(n1), int(n2)) == (1, 2)
    np.testing.assert_allclose(float(two), float(one), rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_logits(policy):
    set_precision(policy)
    model = compile_model(build_pixelcnn((6, 6, 3), 4, num_layers=1, filters=6))
    assert model.get_layer("input_conv").compute_dtype != "float32"
    assert model.output.dtype == "float32"
    x = np.random.default_rng(0).integers(0, 4, (8, 6, 6, 3)).astype("float32")
    history = model.fit(x, x, epochs=3, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < np.log(4) * 1.2


def test_unknown_strategy_and_precision_are_refused():
    with pytest.raises(ValueError, match="strategy='tpu'"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="precision='float8'"):
        set_precision("float8")
