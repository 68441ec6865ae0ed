"""Shared test helpers: causality by Jacobian, save/load round trips.

The autoregressive order is tested, not trusted: the Jacobian of every
output with respect to every input sub-pixel must be exactly zero where the
order forbids a dependence. These helpers compute that Jacobian with the
automatic differentiation of the Keras backend in use and compare its
non-zero pattern with the pattern the order allows.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np


def jacobian(fn, x):
    """Jacobian of `fn(x)[0]` with respect to `x[0]`, as a NumPy array.

    Computed with the automatic differentiation of the Keras backend in
    use (TensorFlow's `GradientTape`, `jax.jacrev`, or
    `torch.autograd.functional.jacobian`), so the causality tests check
    the functions each backend really runs.

    Args:
        fn: a layer, model or function mapping a batch to a batch.
        x: input batch of size 1, shape `(1, H, W, C)`.

    Returns:
        Array of shape `fn(x).shape[1:] + x.shape[1:]`.
    """
    x = np.asarray(x, dtype="float32")
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def first(v):
            return keras.ops.cast(fn(v), "float32")[0]

        # Compiled whole: op by op, a recurrent model's Jacobian takes
        # several times longer.
        jac = np.asarray(jax.jit(jax.jacrev(first))(jax.numpy.asarray(x)))
    elif backend == "torch":
        import torch

        def first(v):
            return fn(v)[0].float()

        device = keras.ops.convert_to_tensor(x).device
        jac = torch.autograd.functional.jacobian(
            first, torch.tensor(x, device=device)
        )
        jac = jac.detach().cpu().numpy()
    else:
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(fn(x), "float32")
        jac = tape.jacobian(y, x, experimental_use_pfor=True).numpy()[0]
    return jac[..., 0, :, :, :]


def gradient(fn, x):
    """Gradient of the scalar `fn(x)` with respect to the array `x`.

    With the automatic differentiation of the Keras backend in use, like
    `jacobian`.

    Returns:
        NumPy array of the shape of `x`.
    """
    x = np.asarray(x, dtype="float32")
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(jax.numpy.asarray(x)))
    if backend == "torch":
        import torch

        device = keras.ops.convert_to_tensor(x).device
        v = torch.tensor(x, device=device, requires_grad=True)
        fn(v).backward()
        return v.grad.detach().cpu().numpy()
    import tensorflow as tf

    v = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = fn(v)
    return tape.gradient(y, v).numpy()


def dependency_map(fn, x, color_channels=1):
    """Which output pixel/colour groups depend on which input ones.

    The last axis of the output and of the input is split into
    `color_channels` contiguous groups (the R, G, B groups of
    `MaskedConv2D`, or the channel axis of a model's
    `(H, W, C, levels)` logits).

    Args:
        fn: a layer, model or function mapping `(1, H, W, C)` batches to
            `(1, H, W, ...)` batches.
        x: input batch of size 1.
        color_channels: number of colour groups, 1 or 3.

    Returns:
        Boolean array `deps` of shape `(H, W, G, H, W, G)`;
        `deps[i, j, g, k, l, c]` is True when some output of group `g` at
        pixel `(i, j)` has a non-zero gradient with respect to some input
        of group `c` at pixel `(k, l)`.
    """
    x = np.asarray(x, dtype="float32")
    height, width, in_channels = x.shape[1:]
    g = color_channels
    probe = fn(keras.ops.convert_to_tensor(x))
    per_group = int(np.prod(probe.shape[1:])) // (height * width * g)
    # Each group's outputs projected on fixed random weights first: one
    # Jacobian row per pixel and group instead of one per output, and a
    # projection of non-zero gradients is zero only by a cancellation of
    # random floats, which does not happen.
    weights = np.random.default_rng(0).normal(size=per_group) + 3.0
    weights = weights.astype("float32")

    def projected(v):
        y = keras.ops.cast(fn(v), "float32")
        y = keras.ops.reshape(y, (-1, height, width, g, per_group))
        return keras.ops.sum(y * keras.ops.convert_to_tensor(weights), -1)

    jac = jacobian(projected, x)
    jac = jac.reshape(height, width, g, height, width, g, in_channels // g)
    return np.any(jac != 0.0, axis=-1)


def allowed_dependencies(height, width, color_channels=1, strict=True):
    """The dependence pattern the raster R -> G -> B order allows.

    Args:
        height: image height.
        width: image width.
        color_channels: 1 or 3.
        strict: True for outputs that predict the input (mask A, models):
            a group never sees itself at the same pixel. False for mask B
            features, which may.

    Returns:
        Boolean array of shape `(H, W, G, H, W, G)`, as `dependency_map`.
    """
    n = height * width
    pixel = np.arange(n)
    before = pixel[:, None] > pixel[None, :]
    same = pixel[:, None] == pixel[None, :]
    group = np.arange(color_channels)
    group_ok = (
        group[:, None] > group[None, :]
        if strict
        else group[:, None] >= group[None, :]
    )
    allowed = before[:, None, :, None] | (
        same[:, None, :, None] & group_ok[None, :, None, :]
    )
    g = color_channels
    return allowed.reshape(height, width, g, height, width, g)


def assert_causal(fn, x, color_channels=1, strict=True):
    """Asserts that `fn` respects the autoregressive order on input `x`.

    Fails if any output has a non-zero gradient with respect to an input
    sub-pixel that the order forbids, or if no allowed dependence is seen
    at all (a function that sees nothing is not a useful model).

    Args:
        fn: a layer, model or function on `(1, H, W, C)` batches.
        x: input batch of size 1 (use random values, not zeros).
        color_channels: 1 or 3.
        strict: see `allowed_dependencies`.

    Returns:
        The dependency map, for further checks.
    """
    deps = dependency_map(fn, x, color_channels)
    allowed = allowed_dependencies(
        x.shape[1], x.shape[2], color_channels, strict
    )
    violations = np.argwhere(deps & ~allowed)
    if len(violations):
        i, j, g, k, m, c = violations[0]
        raise AssertionError(
            f"{len(violations)} forbidden dependencies; e.g. output pixel "
            f"({i}, {j}) group {g} depends on input pixel ({k}, {m}) "
            f"group {c}."
        )
    if not np.any(deps & allowed):
        raise AssertionError("The output depends on no input at all.")
    return deps


def receptive_field(deps, i, j, group=0):
    """Input pixels that output pixel `(i, j)`, colour `group`, depends on.

    Args:
        deps: a dependency map from `dependency_map`.
        i: output row.
        j: output column.
        group: output colour group.

    Returns:
        Boolean array `(H, W)`: True where any input channel is seen.
    """
    return np.any(deps[i, j, group], axis=-1)


def assert_config_round_trip(layer):
    """Asserts `from_config(get_config())` rebuilds an equal config."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config, (clone.get_config(), config)
    return clone


# The loop of the process that `assert_reloads_in_fresh_process` loads
# models in: one request (a JSON line naming the files) at a time.
_LOADER_LOOP = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    import pixel_models  # noqa: F401  registers the layers

    for line in sys.stdin:
        request = json.loads(line)
        try:
            keras.backend.clear_session()
            model = keras.models.load_model(request["path"], safe_mode=True)
            data = np.load(request["inputs"])
            arrays = [data[f"arr_{k}"] for k in range(len(data.files))]
            inputs = arrays if len(arrays) > 1 else arrays[0]
            outputs = model(inputs, training=False)
            np.save(request["outputs"], keras.ops.convert_to_numpy(outputs))
            reply = {"class": type(model).__name__}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)
    """
)
_loader = None


def _fresh_loader():
    """The loading process, started at the first use and kept: a process
    that imports only `keras` and `pixel_models`, apart from the tests'."""
    global _loader
    if _loader is None or _loader.poll() is not None:
        _loader = subprocess.Popen(
            [sys.executable, "-c", _LOADER_LOOP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    return _loader


def assert_reloads_in_fresh_process(model, inputs, path, atol=1e-5):
    """Saves `model` to `path` and reloads it in another Python process.

    That process imports only `pixel_models` and `keras` and loads with
    `safe_mode=True`, so the model must not rely on `Lambda` layers or on
    classes registered by the test itself; the loaded model must be of
    the saved model's class and give its outputs. (One such process
    serves every call of a test run, each model loaded anew: starting
    one per model took most of the time of these tests.)

    Args:
        model: a built `keras.Model`.
        inputs: a NumPy array, or a list of them for several inputs.
        path: where to write the `.keras` file.
        atol: tolerance on the outputs.
    """
    path = os.fspath(path)
    model.save(path)
    expected = keras.ops.convert_to_numpy(model(inputs, training=False))
    request = {
        "path": path,
        "inputs": path + ".inputs.npz",
        "outputs": path + ".outputs.npy",
    }
    arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    np.savez(request["inputs"], *arrays)
    loader = _fresh_loader()
    loader.stdin.write(json.dumps(request) + "\n")
    loader.stdin.flush()
    line = loader.stdout.readline()
    assert line, "the loading process died"
    reply = json.loads(line)
    assert "error" not in reply, reply.get("error")
    assert reply["class"] == type(model).__name__, reply
    actual = np.load(request["outputs"])
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=1e-5)
    return keras.models.load_model(path, safe_mode=True)


def build_with_random_weights(layer, input_shape, scale=0.5, seed=0):
    """Builds `layer` and sets every weight to random normal values.

    Random (not initial) weights make biases and all kernel entries
    non-zero, so a dependence the masks allow shows in the Jacobian.
    """
    layer.build(input_shape)
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [scale * rng.normal(size=w.shape) for w in layer.get_weights()]
    )
    return layer


def same_pixel_dependencies(deps):
    """`(H, W, G, G)`: which output groups see which input groups at the
    same pixel, from a dependency map of shape `(H, W, G, H, W, G)`."""
    height, width = deps.shape[:2]
    i = np.arange(height)[:, None]
    j = np.arange(width)[None, :]
    return deps[i, j, :, i, j, :]


def assert_samples_follow_their_logits(
    model,
    noise,
    samples,
    logits,
    *,
    labels=None,
    condition=None,
    known=None,
    atol=1e-4,
):
    """Asserts what makes a sampler exact, with one forward pass.

    The logits each sub-pixel was drawn from must be the model's own
    logits of the finished images (which, the model being causal, see
    only the sub-pixels before it; for a logistic mixture output, each
    channel's distribution given the pixel's earlier channels), and each
    value must be `draw` of its logits
    and its noise. Together they say the images are those the naive
    sampler (one forward pass per sub-pixel) draws from the same noise,
    at a fraction of its cost.

    Args:
        model: the sampled model.
        noise: `(n, H, W, C)`, the noise the sampler was given.
        samples, logits: what `sample_with_logits` (or `sample_fast`)
            returned.
        labels, condition: as given to the sampler.
        known: for a completion, the `(n, H, W)` mask of the given pixels,
            which are kept rather than drawn.
        atol: tolerance on the logits.
    """
    from pixel_models.inputs import mixture_levels, model_inputs
    from pixel_models.logistic_mixture import all_channel_log_probs
    from pixel_models.sampling import draw
    from pixel_models.sampling.precision import float32_model

    full = float32_model(model)(model_inputs(samples, labels, condition))
    if mixture_levels(model):  # each channel's levels given the others
        full = all_channel_log_probs(full, samples, mixture_levels(model))
    np.testing.assert_allclose(
        logits, keras.ops.convert_to_numpy(full), atol=atol
    )
    levels = logits.shape[-1]
    drawn = draw(logits.reshape(-1, levels), noise.reshape(-1))
    drawn = keras.ops.convert_to_numpy(drawn).reshape(samples.shape)
    if known is not None:
        drawn = np.where(known[..., None], samples, drawn)
    np.testing.assert_array_equal(drawn, samples)
