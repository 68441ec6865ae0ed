"""tf.distribute strategies and mixed precision on the training path."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

from pixel_models import training
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


# Each worker of a two-process MultiWorkerMirroredStrategy cluster trains
# from the same start on its half of every global batch; a one-device
# model trains on the whole batches for reference.
MULTI_WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    index, ports = int(sys.argv[1]), sys.argv[2:]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })
    from pixel_models.training import make_strategy
    strategy = make_strategy("multi_worker")  # before any other TF op
    import numpy as np
    import tensorflow as tf
    import keras
    from pixel_models.losses import DiscreteNLL
    from pixel_models.models import build_pixelcnn
    from pixel_models.multi_worker import fit_multi_worker

    def build():
        # Plain SGD: unlike Adam, its step scales with the gradient, so a
        # wrongly scaled all-reduce shows.
        model = build_pixelcnn((6, 6, 3), 4, num_layers=1, filters=6)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=DiscreteNLL())
        return model

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).integers(0, 4, (24, 6, 6, 3))
    data = tf.data.Dataset.from_tensor_slices((x, x)).batch(8).repeat()
    reference = build()
    start = reference.get_weights()
    reference.fit(data, epochs=1, steps_per_epoch=3, verbose=0)
    with strategy.scope():
        model = build()
    model.set_weights(start)
    history = fit_multi_worker(
        model, data, strategy=strategy, epochs=1, steps_per_epoch=3,
        validation_data=tf.data.Dataset.from_tensor_slices((x, x)).batch(8),
        verbose=0,
    )

    class StopOnWorkerZero(keras.callbacks.Callback):
        # Only worker 0 asks to stop, as when its own clock runs out.
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if index == 0 and batch == 1:
                self.model.stop_training = True

    stopper = StopOnWorkerZero()
    with strategy.scope():
        other = build()
    fit_multi_worker(
        other, data, strategy=strategy, epochs=2, steps_per_epoch=5,
        callbacks=[stopper], verbose=0,
    )
    weights = model.get_weights()
    gap = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(weights, reference.get_weights())
    )
    digest = hashlib.sha256(b"".join(w.tobytes() for w in weights))
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "steps_before_stop": stopper.steps,
        "digest": digest.hexdigest(),
        "gap": gap,
        "moved": float(max(np.max(np.abs(a - b))
                           for a, b in zip(weights, start))),
        "val_loss": history.history["val_loss"][-1],
        "expected_val_loss": reference.evaluate(
            x, x, batch_size=8, verbose=0, return_dict=True)["loss"],
    }))
    """
)


def _unused_ports(count, rng):
    """`count` ports free now, below the kernel's ephemeral range.

    The kernel hands out ephemeral ports (other processes' outgoing
    connections) only inside that range, so none of those can take a
    port picked below it before the workers bind it. TensorFlow's gRPC
    server binds without SO_REUSEPORT, so a port cannot be held for it.
    """
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    ports = []
    while len(ports) < count:
        port = int(rng.integers(10000, low))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return [str(port) for port in ports]


def _run_workers(command, extra=(), timeout=240):
    """Runs `command INDEX PORT0 PORT1 *extra` as workers 0 and 1.

    Returns their stdouts. If a worker could not bind its port (another
    program bound it first), the pair runs again on other ports.
    """
    rng = np.random.default_rng()
    for attempt in range(3):
        ports = _unused_ports(2, rng)
        processes = [
            subprocess.Popen(
                [*command, str(index), *ports, *extra],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for index in range(2)
        ]
        try:
            results = [p.communicate(timeout=timeout) for p in processes]
        finally:
            for process in processes:
                process.kill()
        taken = any("Could not start gRPC server" in e for _, e in results)
        if not taken or attempt == 2:
            break
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-3000:]
    return [out for out, _ in results]


def test_two_workers_agree_and_match_one_device_training():
    outputs = _run_workers([sys.executable, "-c", MULTI_WORKER])
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert [r["replicas"] for r in results] == [2, 2]
    # One worker's stop request stops both, at the same step.
    assert [r["steps_before_stop"] for r in results] == [2, 2]
    # Both workers hold the very same weights...
    assert results[0]["digest"] == results[1]["digest"]
    # ...which moved, exactly as one device training on whole batches.
    assert results[0]["moved"] > 1e-3
    assert results[0]["gap"] < 1e-5
    for r in results:
        np.testing.assert_allclose(
            r["val_loss"], r["expected_val_loss"], rtol=1e-5
        )


TRAIN_WORKER = textwrap.dedent(
    """
    import json, os, sys
    index, ports = int(sys.argv[1]), sys.argv[2:4]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })
    sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "examples"))
    import train_mnist
    train_mnist.main(sys.argv[4:])
    """
)


def test_training_script_runs_on_two_workers(tmp_path):
    from datafiles import write_mnist

    write_mnist(tmp_path / "data" / "mnist.npz", num_train=64, num_test=8)
    log_dir = tmp_path / "run"
    args = [
        "--data-dir", str(tmp_path / "data"), "--validation-size", "16",
        "--num-layers", "1", "--width", "2", "--batch-size", "16",
        "--epochs", "2", "--log-dir", str(log_dir),
        "--strategy", "multi_worker",
    ]  # fmt: skip
    _run_workers([sys.executable, "-c", TRAIN_WORKER], extra=args)
    chief = json.loads((log_dir / "results.json").read_text())
    other = json.loads((log_dir / "worker-1" / "results.json").read_text())
    assert chief["bits_per_dim"] == pytest.approx(other["bits_per_dim"])
    assert 0 < chief["bits_per_dim"] < 8
    assert (log_dir / "checkpoints" / "best.keras").exists()
    assert (log_dir / "tensorboard").is_dir()
    saved = [
        keras.models.load_model(path).get_weights()
        for path in (
            log_dir / "model.keras",
            log_dir / "worker-1" / "model.keras",
        )
    ]
    for a, b in zip(*saved, strict=True):
        np.testing.assert_array_equal(a, b)


RESUME = textwrap.dedent(
    """
    import json, sys
    from pixel_models.training import compile_model, make_strategy
    strategy = make_strategy("multi_worker")  # one worker: no TF_CONFIG
    import numpy as np
    import tensorflow as tf
    import keras
    from pixel_models.models import build_pixelcnn
    from pixel_models.multi_worker import fit_multi_worker

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("crash after the second epoch")

    x = np.random.default_rng(0).integers(0, 2, (16, 6, 6, 1))
    data = tf.data.Dataset.from_tensor_slices((x, x)).batch(8).repeat()

    def run(extra):
        with strategy.scope():
            model = compile_model(build_pixelcnn((6, 6, 1), 2, 1, filters=2))
        backup = keras.callbacks.BackupAndRestore(sys.argv[1])
        # Callbacks run in list order: the backup is written first.
        history = fit_multi_worker(
            model, data, strategy=strategy, epochs=4, steps_per_epoch=2,
            callbacks=[backup, *extra], verbose=0,
        )
        return history.epoch

    try:
        run([Crash()])
    except KeyboardInterrupt:
        pass
    print(json.dumps(run([])))
    """
)


def test_multi_worker_training_resumes_from_its_backup(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", RESUME, str(tmp_path / "backup")],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # Epochs 0 and 1 were done before the crash; the rerun does 2 and 3.
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [2, 3]


def test_multi_worker_steps_use_the_compiled_loss():
    # A Multi-Scale second stage counts only the pixels not in its small
    # image: the custom loop must train and score what `fit` would.
    from pixel_models import multiscale
    from pixel_models.losses import RestNLL
    from pixel_models.models import build_model
    from pixel_models.multi_worker import per_image_loss

    model = build_model(
        "pixelcnn",
        (4, 4, 1),
        3,
        num_layers=1,
        width=4,
        condition_shape=(2, 2, 1),
    )
    model.compile(**multiscale.conditional_loss(model))
    x = np.random.default_rng(0).integers(0, 3, (5, 4, 4, 1)).astype("f4")
    logits = model([x, x[:, ::2, ::2]])
    got = keras.ops.convert_to_numpy(per_image_loss(model, x, logits))
    expected = RestNLL((2, 2)).call(x, logits)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(expected))
    # ... which is not the mean over every sub-pixel.
    model.compile()
    every = keras.ops.convert_to_numpy(per_image_loss(model, x, logits))
    assert np.abs(every - got).max() > 1e-3


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert training.cpu_flags(str(x86)) == {"fpu", "avx2", "avx512_bf16"}
    assert "bf16" in training.cpu_flags(str(arm))
    assert training.cpuinfo_field("model name", path=str(x86)) == "AMD EPYC"
    assert training.cpu_flags(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    "policy, flags, gpus, warns",
    [
        ("mixed_bfloat16", {"avx", "avx2", "fma"}, 0, True),
        ("mixed_bfloat16", {"avx2", "avx512_bf16"}, 0, False),
        ("mixed_bfloat16", {"avx2", "amx_bf16", "amx_tile"}, 0, False),
        ("mixed_bfloat16", {"asimd", "bf16"}, 0, False),
        ("mixed_bfloat16", {"avx2"}, 1, False),  # the GPU computes
        ("mixed_bfloat16", None, 0, False),  # flags unknown: no guess
        ("float32", {"avx2"}, 0, False),
        ("mixed_float16", {"avx2"}, 0, False),
    ],
)
def test_slow_bfloat16_is_named_only_without_bfloat16_instructions(
    policy, flags, gpus, warns
):
    message = training.slow_bfloat16_warning(policy, flags, gpus)
    assert (message is not None) == warns
    if warns:
        assert "mixed_bfloat16" in message
        assert "--mixed-precision float32" in message


def test_set_precision_warns_on_a_cpu_without_bfloat16(monkeypatch):
    monkeypatch.setattr(training, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.warns(UserWarning, match="--mixed-precision float32"):
        set_precision("mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    monkeypatch.setattr(training, "cpu_flags", lambda: {"avx512_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_precision("mixed_bfloat16")
