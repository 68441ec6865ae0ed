"""Autoregressive sampling: the naive reference and an exact fast sampler.

Every model here has a property the fast sampler relies on: each layer's
output at pixel q depends only on that layer's input at pixels up to q in
raster order. (Masked convolutions look up and left; the Row LSTM state
comes from the row above; the Diagonal BiLSTM forward state from the pixel
above and the one to the left, its shifted backward state from the row
above.) So when pixel p is generated, every cached layer value before p is
final, and computing each layer at p alone gives the exact logits of p:

- PixelCNN: per layer, one masked convolution at p over the cached inputs.
- Row LSTM: per layer, one LSTM step at p from the cached previous row.
- Diagonal BiLSTM: the forward stream, one LSTM step at p from the cached
  states above and to the left; the backward stream of row i-1 depends on
  all of row i-1, so it is run right-to-left over that row once, when row
  i starts (W steps per layer per row, against H*W*C full passes).

The fast sampler runs this on NumPy copies of the weights. Both samplers
draw sub-pixels from the same seeded uniform noise by inverse CDF, so with
the same seed they give the same samples.
"""

import keras
import numpy as np

from pixel_models.checks import check_int
from pixel_models.layers import (
    ConditionBias,
    DiagonalBiLSTM,
    GatedPixelCNNBlock,
    MaskedConv2D,
    RowLSTM,
)

METHODS = ("fast", "naive")
# The layers the fast sampler can run one pixel at a time.
KNOWN_LAYERS = (
    keras.layers.InputLayer,
    keras.layers.Rescaling,
    MaskedConv2D,
    RowLSTM,
    DiagonalBiLSTM,
    GatedPixelCNNBlock,
    keras.layers.ReLU,
    keras.layers.Add,
    keras.layers.Dropout,
    keras.layers.Reshape,
    keras.layers.Embedding,
    ConditionBias,
)


def _check_arguments(model, num_samples, temperature, top_p, method, batch):
    shape = getattr(model, "output_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 5):
        raise ValueError(
            "model must output logits of shape (batch, H, W, C, levels), "
            "as the builders of pixel_models.models do. Received: model "
            f"with output_shape={shape!r}"
        )
    check_int("num_samples", num_samples)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            "temperature must be a number > 0. "
            f"Received: temperature={temperature!r}"
        )
    if top_p is not None and (
        not isinstance(top_p, (int, float)) or not 0 < top_p <= 1
    ):
        raise ValueError(
            "top_p must be None or a number in (0, 1]. "
            f"Received: top_p={top_p!r}"
        )
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {METHODS}. Received: method={method!r}"
        )
    check_int("batch_size", batch, allow_none=True)


def draw(logits, noise, temperature=1.0, top_p=None):
    """Draws values from logits by inverse CDF of the given uniform noise.

    Args:
        logits: `(n, levels)`.
        noise: `(n,)` uniform numbers in [0, 1).
        temperature: divides the logits.
        top_p: keep the smallest set of most likely values whose
            probability reaches `top_p` (nucleus sampling), renormalised.

    Returns:
        int array `(n,)` of values in `[0, levels - 1]`.
    """
    z = np.asarray(logits, "float64") / temperature
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, -1)
        # Keep a value if the mass before it is still short of top_p.
        keep_sorted = np.cumsum(sorted_p, -1) - sorted_p < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, -1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(p, axis=-1)
    values = (cdf <= np.asarray(noise)[:, None]).sum(axis=-1)
    return np.minimum(values, p.shape[-1] - 1)


def _progbar(total, progress):
    return keras.utils.Progbar(total, verbose=1 if progress else 0)


def _keep_given(values, given, i, j, c):
    """`values` where pixel (i, j) is to be drawn, the given ones elsewhere."""
    if given is None:
        return values
    images, mask = given
    return np.where(mask[:, i, j], images[:, i, j, c], values)


def _naive(model, noise, labels, temperature, top_p, progress, given=None):
    """One full forward pass per sub-pixel. Returns (samples, logits)."""
    n, height, width, channels = noise.shape
    levels = model.output_shape[-1]
    x = np.zeros(noise.shape, "float32")
    logits = np.zeros((*noise.shape, levels), "float32")
    bar = _progbar(height * width, progress)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                inputs = x if labels is None else [x, labels]
                out = np.asarray(model.predict_on_batch(inputs))[:, i, j, c]
                logits[:, i, j, c] = out
                values = draw(out, noise[:, i, j, c], temperature, top_p)
                x[:, i, j, c] = _keep_given(values, given, i, j, c)
            bar.add(1)
    return x, logits


class _FastExecutor:
    """Computes a model one pixel at a time, caching every layer's output.

    Every cached map is zero-padded by `pad` pixels above, left and right,
    so a kernel window or a neighbour state at the border is a plain slice
    that reads zeros outside the image, as the layers' own padding does.
    """

    def __init__(self, model, n, labels=None):
        pixels = model.inputs[0]
        self.height, self.width, self.channels = pixels.shape[1:]
        self.n = n
        self.plan = []
        self.cache = {}
        self.state = {}
        self.params = {}
        self.pad = 1
        for layer in model.layers:
            if not isinstance(layer, KNOWN_LAYERS):
                raise ValueError(
                    f"The fast sampler does not know layer {layer.name!r} "
                    f"of type {type(layer).__name__}; use method='naive'."
                )
            if isinstance(layer, MaskedConv2D):
                self.pad = max(self.pad, *(k // 2 for k in layer.kernel_size))
            if isinstance(layer, (RowLSTM, GatedPixelCNNBlock)):
                self.pad = max(self.pad, layer.kernel_size // 2)
        for layer in model.layers:
            node = layer._inbound_nodes[0]
            inputs = [
                (t._keras_history.operation.name, t._keras_history.tensor_index)
                for t in node.input_tensors
            ]
            self.plan.append((layer, inputs))
            for index, out in enumerate(node.output_tensors):
                if len(out.shape) == 4:
                    self.cache[layer.name, index] = self._zeros(out.shape[-1])
            # Label input and embedding: one value per image, known upfront.
            if isinstance(layer, keras.layers.InputLayer):
                if len(layer.output.shape) == 1:
                    self.cache[layer.name, 0] = np.asarray(labels)
            elif isinstance(layer, keras.layers.Embedding):
                table = np.asarray(layer.embeddings)
                self.cache[layer.name, 0] = table[self.cache[inputs[0]]]
            if isinstance(layer, GatedPixelCNNBlock):
                self.state[layer.name] = {
                    "pre_v": self._zeros(2 * layer.filters)
                }
                if layer.condition:
                    embedding = self.cache[inputs[2]]
                    for part in ("condition_v", "condition_h"):
                        w, _ = self._weights(getattr(layer, part))
                        self.state[layer.name][part] = embedding @ w
            if isinstance(layer, ConditionBias):
                w, b = self._weights(layer.projection)
                self.state[layer.name] = {"bias": self.cache[inputs[1]] @ w + b}
            if isinstance(layer, (RowLSTM, DiagonalBiLSTM)):
                names = ("h", "c", "hb", "cb")
                if isinstance(layer, RowLSTM):
                    names = names[:2]
                self.state[layer.name] = {
                    k: self._zeros(layer.units) for k in names
                }
        self.input_name = (pixels._keras_history.operation.name, 0)
        history = model.outputs[0]._keras_history
        self.output_name = (history.operation.name, history.tensor_index)

    def _zeros(self, channels):
        p = self.pad
        shape = (self.n, self.height + p, self.width + 2 * p, channels)
        return np.zeros(shape, "float32")

    def images(self):
        """The input pixels sampled so far, `(n, H, W, C)`."""
        p = self.pad
        x = self.cache[self.input_name]
        return x[:, p:, p : p + self.width].copy()

    def _weights(self, obj):
        """NumPy copies of a conv's or cell's weights, read once.

        A conv's kernel keeps only the rows down to the centre (the mask
        zeroes the rest), flattened for one matrix product per pixel.
        """
        key = id(obj)
        if key not in self.params:
            if isinstance(obj, MaskedConv2D):
                kernel = np.asarray(obj.kernel) * np.asarray(obj.mask)
                kernel = kernel[: obj.kernel_size[0] // 2 + 1]
                kernel = kernel.reshape(-1, obj.filters)
                bias = np.asarray(obj.bias) if obj.use_bias else 0.0
            elif isinstance(obj, (keras.layers.Conv2D, keras.layers.Dense)):
                kernel = np.asarray(obj.kernel)
                bias = np.asarray(obj.bias) if obj.use_bias else 0.0
            else:
                kernel = np.asarray(obj.state_kernel)
                bias = np.asarray(obj.bias)
            self.params[key] = (kernel.astype("float32"), bias)
        return self.params[key]

    # Per-layer maths at one pixel -------------------------------------

    def _conv_at(self, conv, source, i, j):
        """Masked conv output at (i, j): `(n, filters)`."""
        kernel, bias = self._weights(conv)
        kh, kw = conv.kernel_size
        r, c = i + self.pad, j + self.pad
        window = source[:, r - kh // 2 : r + 1, c - kw // 2 : c + kw // 2 + 1]
        out = window.reshape(self.n, -1) @ kernel + bias
        return self._activation(conv)(out)

    def _activation(self, conv):
        """A conv's activation as a NumPy function, looked up once."""
        key = ("activation", id(conv))
        if key not in self.params:
            name = keras.activations.serialize(conv.activation)
            if name == "relu":
                self.params[key] = lambda v: np.maximum(v, 0.0)
            elif name == "linear":
                self.params[key] = lambda v: v
            else:
                self.params[key] = lambda v: np.asarray(conv.activation(v))
        return self.params[key]

    @staticmethod
    def _group(z, parts, color_channels):
        """NumPy twin of `regroup` for one pixel: `(n, channels)`."""
        if color_channels == 1:
            return z
        n, channels = z.shape
        z = z.reshape(n, color_channels, parts, -1)
        return z.transpose(0, 2, 1, 3).reshape(n, channels)

    @staticmethod
    def _gate(z):
        f, g = np.split(z, 2, axis=-1)
        return np.tanh(f) / (1.0 + np.exp(-g))

    def _vertical_row(self, layer, source, i):
        """A gated block's vertical stack over the whole of row i."""
        kernel, bias = self._weights(layer.vertical)
        kh, kw = kernel.shape[:2]
        p, r = self.pad, i + self.pad
        rows = source[:, r - kh + 1 : r + 1]
        windows = np.lib.stride_tricks.sliding_window_view(rows, kw, axis=2)
        windows = windows[:, :, p - kw // 2 : p - kw // 2 + self.width]
        pre = np.einsum("nawcb,abco->nwo", windows, kernel) + bias
        state = self.state[layer.name]
        if layer.condition:
            pre = pre + state["condition_v"][:, None]
        state["pre_v"][:, r, p : p + self.width] = pre
        self.cache[layer.name, 0][:, r, p : p + self.width] = self._gate(pre)

    def _gated_at(self, layer, h_source, i, j):
        """A gated block's horizontal stack at (i, j)."""
        r, c = i + self.pad, j + self.pad
        link, link_bias = self._weights(layer.vertical_to_horizontal)
        above = self.state[layer.name]["pre_v"][:, r - 1, c]
        pre = self._conv_at(layer.horizontal, h_source, i, j)
        pre = pre + above @ link[0, 0] + link_bias
        if layer.condition:
            pre = pre + self.state[layer.name]["condition_h"]
        gated = self._gate(self._group(pre, 2, layer.color_channels))
        kernel, bias = self._weights(layer.horizontal_out)
        out = gated @ kernel + bias
        if layer.residual:
            out = out + h_source[:, r, c]
        return out

    def _lstm(self, cell, z, neighbours, c_prev):
        """One LineLSTMCell step at one pixel.

        `neighbours` is `(n, taps, units)`: the previous-line hidden state
        that each kernel tap sees (zeros outside the image).
        """
        kernel, bias = self._weights(cell)
        z = (
            z
            + bias
            + neighbours.reshape(self.n, -1)
            @ kernel.reshape(-1, kernel.shape[-1])
        )
        o, f, i, g = np.split(z, 4, axis=-1)
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        c = sig(f) * c_prev + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c

    def _row_lstm_at(self, layer, source, i, j):
        z = self._conv_at(layer.input_to_state, source, i, j)
        z = self._group(z, 4, layer.color_channels)
        state = self.state[layer.name]
        k, r, c = layer.kernel_size, i + self.pad, j + self.pad
        neighbours = state["h"][:, r - 1, c - k // 2 : c + k // 2 + 1]
        h, cell = self._lstm(layer.cell, z, neighbours, state["c"][:, r - 1, c])
        state["h"][:, r, c], state["c"][:, r, c] = h, cell
        return h

    def _diagonal_step(self, layer, d, source, i, j, step):
        """Direction d's state at pixel (i, j); `step` is -1 (left to
        right: previous pixel j-1) or +1 (mirrored: previous pixel j+1)."""
        z = self._conv_at(layer.input_to_state[d], source, i, j)
        z = self._group(z, 4, layer.color_channels)
        hk, ck = ("h", "c") if d == 0 else ("hb", "cb")
        state = self.state[layer.name]
        r, c = i + self.pad, j + self.pad
        # Causal 2-tap kernel over the previous diagonal: tap 0 is the
        # pixel above, tap 1 the previous pixel in the row.
        neighbours = np.stack(
            [state[hk][:, r - 1, c], state[hk][:, r, c + step]], axis=1
        )
        c_prev = state[ck][:, r, c + step]
        h, cell = self._lstm(layer.cells[d], z, neighbours, c_prev)
        state[hk][:, r, c], state[ck][:, r, c] = h, cell
        return h

    def _diagonal_at(self, layer, source, i, j):
        h = self._diagonal_step(layer, 0, source, i, j, -1)
        # Sec. 3.2: the backward stream, shifted down one row (zeros in
        # the padding above row 0).
        return (
            h + self.state[layer.name]["hb"][:, i - 1 + self.pad, j + self.pad]
        )

    def start_row(self, i):
        """Work that needs the whole of row i - 1, done when row i starts:
        each Diagonal BiLSTM's backward stream and each gated block's
        vertical stack over row i - 1."""
        if i == 0:
            return
        for layer, inputs in self.plan:
            if isinstance(layer, DiagonalBiLSTM):
                source = self.cache[inputs[0]]
                for j in range(self.width - 1, -1, -1):
                    self._diagonal_step(layer, 1, source, i - 1, j, +1)
            elif isinstance(layer, GatedPixelCNNBlock):
                self._vertical_row(layer, self.cache[inputs[0]], i - 1)

    def write_input(self, i, j, c, values):
        """Sets sub-pixel (i, j, c) and refreshes the pointwise rescaling.

        Nothing else at (i, j) depends on it: the first convolution is
        mask A, so a sub-pixel only reaches later pixels, and later
        channels through the next `step`.
        """
        r, col = i + self.pad, j + self.pad
        self.cache[self.input_name][:, r, col, c] = values
        for layer, inputs in self.plan:
            if isinstance(layer, keras.layers.Rescaling):
                x = self.cache[inputs[0]][:, r, col]
                self.cache[layer.name, 0][:, r, col] = (
                    x * layer.scale + layer.offset
                )

    def step(self, i, j):
        """Computes every layer at (i, j); returns logits `(n, C, L)`."""
        r, col = i + self.pad, j + self.pad
        for layer, inputs in self.plan:
            if not inputs or isinstance(layer, keras.layers.Embedding):
                continue
            sources = [self.cache[name] for name in inputs]
            x = sources[0][:, r, col]
            if isinstance(layer, MaskedConv2D):
                out = self._conv_at(layer, sources[0], i, j)
            elif isinstance(layer, RowLSTM):
                out = self._row_lstm_at(layer, sources[0], i, j)
            elif isinstance(layer, DiagonalBiLSTM):
                out = self._diagonal_at(layer, sources[0], i, j)
            elif isinstance(layer, GatedPixelCNNBlock):
                out = self._gated_at(layer, sources[1], i, j)
                self.cache[layer.name, 1][:, r, col] = out
                continue
            elif isinstance(layer, keras.layers.Rescaling):
                out = x * layer.scale + layer.offset
            elif isinstance(layer, keras.layers.ReLU):
                out = np.maximum(x, 0.0)
            elif isinstance(layer, keras.layers.Add):
                out = sum(s[:, r, col] for s in sources)
            elif isinstance(layer, keras.layers.Dropout):
                out = x
            elif isinstance(layer, ConditionBias):
                out = x + self.state[layer.name]["bias"]
            else:  # Reshape: the logits, (n, C, levels) at this pixel.
                self.cache[layer.name, 0] = x.reshape(
                    self.n, *layer.target_shape[2:]
                )
                continue
            self.cache[layer.name, 0][:, r, col] = out
        return self.cache[self.output_name]


def _fast(model, noise, labels, temperature, top_p, progress, given=None):
    """Exact cached sampling, one pixel at a time. Returns (samples, logits)."""
    n, height, width, channels = noise.shape
    levels = model.output_shape[-1]
    executor = _FastExecutor(model, n, labels)
    logits = np.zeros((*noise.shape, levels), "float32")
    bar = _progbar(height * width, progress)
    for i in range(height):
        executor.start_row(i)
        for j in range(width):
            for c in range(channels):
                out = executor.step(i, j)[:, c]
                logits[:, i, j, c] = out
                values = draw(out, noise[:, i, j, c], temperature, top_p)
                values = _keep_given(values, given, i, j, c)
                executor.write_input(i, j, c, values)
            bar.add(1)
    return executor.images(), logits


def num_classes(model):
    """Number of classes of a class-conditional model, else None.

    The builders of `pixel_models.models` give a conditional model one
    label `Embedding`; its input size is the number of classes.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return layer.input_dim
    return None


def _check_labels(model, labels, num_samples):
    """Labels as an int32 array `(num_samples,)`, or None."""
    classes = num_classes(model)
    if classes is None:
        if labels is not None:
            raise ValueError(
                f"model {model.name!r} is not class-conditional, so labels "
                f"must be None. Received: labels={labels!r}"
            )
        return None
    if labels is None:
        raise ValueError(
            f"model {model.name!r} is class-conditional ({classes} "
            "classes): pass labels=, one class per image or one for all. "
            "Received: labels=None"
        )
    array = np.asarray(labels)
    if array.ndim == 0:
        array = np.full((num_samples,), array)
    if (
        array.shape != (num_samples,)
        or not np.issubdtype(array.dtype, np.integer)
        or array.min() < 0
        or array.max() >= classes
    ):
        raise ValueError(
            f"labels must be one integer in [0, {classes - 1}] or "
            f"{num_samples} of them. Received: labels={labels!r}"
        )
    return array.astype("int32")


def sample_with_logits(
    model,
    noise,
    *,
    labels=None,
    temperature=1.0,
    top_p=None,
    method="fast",
    progress=True,
):
    """Samples from `model` with the given uniform noise.

    Like `sample`, but takes the noise `(n, H, W, C)` itself and also
    returns the logits each sub-pixel was drawn from.

    Returns:
        `(samples, logits)`: float32 `(n, H, W, C)` pixel values and
        float32 `(n, H, W, C, levels)` logits.
    """
    _check_arguments(model, noise.shape[0], temperature, top_p, method, None)
    labels = _check_labels(model, labels, noise.shape[0])
    run = _fast if method == "fast" else _naive
    return run(model, noise, labels, temperature, top_p, progress)


def sample(
    model,
    num_samples,
    *,
    temperature=1.0,
    top_p=None,
    seed=None,
    method="fast",
    batch_size=None,
    progress=True,
    labels=None,
):
    """Generates images from an autoregressive model.

    Args:
        model: a model from `pixel_models.models` (or one loaded with
            `keras.models.load_model`).
        num_samples: number of images.
        temperature: softmax temperature (> 0); < 1 sharpens.
        top_p: nucleus sampling: draw only from the smallest set of values
            whose probability reaches `top_p` (None: all values).
        seed: seed of the uniform noise; equal seeds give equal samples,
            whatever the method and batch size.
        method: `"fast"` (cached, one pixel's worth of work per step) or
            `"naive"` (the reference: a full forward pass per sub-pixel).
        batch_size: images generated at once (default: all).
        progress: show a progress bar.
        labels: for a class-conditional model, the class of every image
            (`(num_samples,)` integers) or one class for all.

    Returns:
        uint8 NumPy array `(num_samples, H, W, C)`.

    Example:
    >>> model = build_pixelcnn((8, 8, 1), levels=2, num_layers=1, filters=4)
    >>> sample(model, 4, seed=0, progress=False).shape  # doctest: +SKIP
    (4, 8, 8, 1)
    """
    _check_arguments(model, num_samples, temperature, top_p, method, batch_size)
    labels = _check_labels(model, labels, num_samples)
    shape = (num_samples, *model.inputs[0].shape[1:])
    noise = np.random.default_rng(seed).random(shape)
    batch_size = batch_size or num_samples
    out = []
    for start in range(0, num_samples, batch_size):
        x, _ = sample_with_logits(
            model,
            noise[start : start + batch_size],
            labels=None
            if labels is None
            else labels[start : start + batch_size],
            temperature=temperature,
            top_p=top_p,
            method=method,
            progress=progress,
        )
        out.append(x)
    return np.concatenate(out).astype("uint8")


def _known_mask(known, n, height, width):
    """`known` as a boolean `(n, H, W)` mask of the given pixels."""
    if isinstance(known, (bool, np.bool_)) or (
        not isinstance(known, (int, np.integer)) and np.ndim(known) == 0
    ):
        raise ValueError(
            "known must be an int (the number of top rows given) or a "
            f"boolean mask of shape ({height}, {width}) or ({n}, {height}, "
            f"{width}). Received: known={known!r}"
        )
    if isinstance(known, (int, np.integer)):
        if not 0 <= known <= height:
            raise ValueError(
                f"known must be a number of rows in [0, {height}]. "
                f"Received: known={known}"
            )
        mask = np.zeros((n, height, width), bool)
        mask[:, :known] = True
        return mask
    mask = np.asarray(known)
    if mask.dtype != bool or mask.shape not in (
        (height, width),
        (n, height, width),
    ):
        raise ValueError(
            f"known must be a boolean mask of shape ({height}, {width}) or "
            f"({n}, {height}, {width}), or an int. Received: known of "
            f"shape {mask.shape} and dtype {mask.dtype}"
        )
    return np.broadcast_to(mask, (n, height, width))


def complete(
    model,
    images,
    known,
    *,
    labels=None,
    num_completions=1,
    temperature=1.0,
    top_p=None,
    seed=None,
    progress=True,
):
    """Completes partly known images (the PixelRNN paper's Figure 1).

    The given pixels are kept; every other one is drawn in raster order
    from the model, given all the pixels before it (given or drawn). An
    autoregressive model conditions only on the past: with a mask that is
    not a raster prefix (say, a hole in the middle), a drawn pixel does
    not see the given pixels after it in raster order, so the completion
    need not agree with them; the given pixels are kept all the same.

    Args:
        model: a model from `pixel_models.models` (or loaded from a file).
        images: `(n, H, W, C)` integer pixel values in `[0, levels - 1]`;
            only the given pixels are read.
        known: an int k (the top k rows are given), or a boolean mask of
            the given pixels, `(H, W)` for all images or `(n, H, W)`.
        labels: for a class-conditional model, the class of every image
            or one for all; None otherwise.
        num_completions: completions of each image.
        temperature: softmax temperature (> 0).
        top_p: nucleus sampling (see `sample`).
        seed: seed of the noise; the same seed gives the same completions.
        progress: show a progress bar.

    Returns:
        uint8 NumPy array `(n, num_completions, H, W, C)`.

    Example:
    >>> model = build_pixelcnn((8, 8, 1), levels=2, num_layers=1, filters=4)
    >>> top = np.zeros((2, 8, 8, 1), "uint8")
    >>> complete(model, top, 4, num_completions=3).shape  # doctest: +SKIP
    (2, 3, 8, 8, 1)
    """
    from pixel_models.evaluation import check_images

    check_int("num_completions", num_completions)
    x = check_images(model, images)
    n, height, width, _ = x.shape
    _check_arguments(model, n, temperature, top_p, "fast", None)
    mask = _known_mask(known, n, height, width)
    labels = _check_labels(model, labels, n)
    k = num_completions
    x = np.repeat(x, k, axis=0)
    mask = np.repeat(mask, k, axis=0)
    if labels is not None:
        labels = np.repeat(labels, k)
    noise = np.random.default_rng(seed).random(x.shape)
    out, _ = _fast(
        model, noise, labels, temperature, top_p, progress, given=(x, mask)
    )
    return out.astype("uint8").reshape(n, k, *x.shape[1:])
