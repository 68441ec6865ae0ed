"""The whole LSTM scan of a recurrent layer as one compiled loop.

`scan_lines` runs a line LSTM step by step as graph ops: a few dozen small
ops per line, each paying the executor's per-op cost, so that on a CPU a
Diagonal BiLSTM spent most of a training step between its matrix
products (`docs/performance.md`). Here the scan of a layer, forward and
gradient, is two loops compiled with numba, called once per layer and
training step through `tf.numpy_function` inside a `tf.custom_gradient`.
Each image of the batch (and each direction of a Diagonal BiLSTM) is
scanned by one thread from its first line to its last, so the threads
never wait for one another; gate maths, the state-to-state products and
the kernel's gradient are done in the same pass over each line, while
its data is in the cache.

Written by hand because no library has it: Keras's and TensorFlow's fused
LSTM kernels are for sequences of vectors with a dense state-to-state
matrix, not lines of pixels with a state-to-state convolution along the
line. The maths is that of `line_lstm_step`; the `keras.ops` path stays
the reference (and the path for XLA, GPUs and the other backends), and
the tests hold the two together.

The layout: the layer's input `x` is `(N, A, B, C)` with the lines on
axis 1 (Row LSTM: rows) or axis 2 (Diagonal BiLSTM: the skewed map's
columns), the positions along a line on the other; the gate inputs
`[o, f, i, g]` of a line are its input-to-state product, the gate bias
and, where given, a `(N, A, B, 4 units)` map `z`. The N scans are split
into `D` equal parts, part d using kernels d (a Diagonal BiLSTM's two
directions, stacked on the batch axis).

A band limits each line to the positions `start[s] <= pl < stop[s]`: the
pixels of a skewed diagonal. States outside the band are zero, which is
exact before a row starts (its gate inputs are zero, so are its states)
and harmless after it ends (nothing inside the band reads them).
"""

import functools
import os

import numpy as np

try:
    import numba
except ImportError:  # the fused path is then unavailable
    numba = None


FUSED_CHOICES = ("auto", True, False)


def check_fused(fused):
    """Validates a recurrent layer's `fused` argument."""
    if not any(fused is choice or fused == choice for choice in FUSED_CHOICES):
        raise ValueError(
            f"fused must be 'auto', True or False. Received: fused={fused!r}"
        )
    if fused is True and fused_unavailable():
        raise ValueError(
            f"fused=True needs {fused_unavailable()}. Received: fused=True; "
            "pass fused='auto' to fall back to the keras.ops path."
        )
    return fused


def fused_unavailable():
    """Why the fused path cannot run here, or '' if it can."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return f"the TensorFlow backend (this is {keras.backend.backend()!r})"
    if numba is None:
        return "numba (pip install numba)"
    return ""


@functools.cache
def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def in_xla_context():
    """True while TensorFlow traces a function for XLA (`jit_compile`),
    which cannot run a `numpy_function`. TensorFlow says so only through
    a private helper; `tests/layers/test_fused_scan.py` checks it."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


def use_fused(fused, dtype):
    """Whether a layer with argument `fused` runs the fused scan on
    inputs of `dtype` now. "auto" takes it on TensorFlow on a CPU for
    float32, outside XLA; True always (in float32, outside XLA);
    False never."""
    if fused is False or fused_unavailable():
        return False
    if in_xla_context():
        return False
    if fused is True:
        return True
    import keras

    dtype = keras.backend.standardize_dtype(dtype)
    return dtype == "float32" and not _has_gpu()


def _njit(**kwargs):
    def wrap(fn):
        if numba is None:
            return fn
        return numba.njit(cache=True, error_model="numpy", **kwargs)(fn)

    return wrap


FAST = {"contract"}
LOG2E = np.float32(1.4426950408889634)
# ln 2 in two parts, the first with trailing zero bits, so that k * LN2_HI
# is exact for the k used here and the reduced argument keeps its bits.
LN2_HI = np.float32(0.693145751953125)
LN2_LO = np.float32(1.4286068203094173e-06)
# Indices in the loops are unsigned: numba wraps a negative signed index
# around, a test and a branch per access that kept the copy loops from
# vectorising (they took twice as long).
U = np.uint64


@_njit(inline="always", fastmath=FAST)
def _logistic(x, n, bits, scale):
    """In place: `x[j] = 1 / (1 + exp(x[j]))` for j < n.

    The exponential is 2^k e^r, k = round(x / ln 2), |r| <= ln(2) / 2, e^r
    by its Taylor series to r^7 (relative error under 5e-9), and 2^k from
    its bits (`bits`, an int32 scratch array as long as x, and `scale`,
    the same memory seen as float32): written out so that the loops
    vectorize; libm's expf, called per element (there is no vector maths
    library here), took 3.5 ns an element, its tanhf 16 ns.
    """
    for j in range(n):
        v = min(max(x[j], np.float32(-87.0)), np.float32(88.0))
        # Round to nearest by adding and taking off 1.5 * 2^23.
        k = (v * LOG2E + np.float32(12582912.0)) - np.float32(12582912.0)
        r = v - k * LN2_HI - k * LN2_LO
        e = np.float32(1.0 / 5040)
        e = e * r + np.float32(1.0 / 720)
        e = e * r + np.float32(1.0 / 120)
        e = e * r + np.float32(1.0 / 24)
        e = e * r + np.float32(1.0 / 6)
        e = e * r + np.float32(0.5)
        e = e * r + np.float32(1.0)
        x[j] = e * r + np.float32(1.0)
        bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for j in range(n):
        x[j] = np.float32(1.0) / (np.float32(1.0) + x[j] * scale[j])


@_njit(inline="always")
def _chunk(chunk, chunks, directions, count):
    """Direction and samples `[n0, n1)` of one thread's chunk."""
    per = count // directions
    cpd = chunks // directions
    d, part = chunk // cpd, chunk % cpd
    return d, d * per + (part * per) // cpd, d * per + ((part + 1) * per) // cpd


@_njit(inline="always")
def _gather(src, hcat, col, n0, nc, line, a, b, left, taps, lo, hi, sst, lst):
    """Line `line` of `src` (`(N, P, C)`) around each place of a band,
    taps side by side from column `col` of `hcat` (zeros on entry):
    `hcat[i * nl + pl - a, col + t * C + q] = src[n0 + i, line, place pl
    + t - left, q]` for places in `[lo, hi)`, left zero elsewhere."""
    nl = b - a
    channels = U(src.shape[2])
    for i in range(nc):
        n = U(n0 + i)
        for pl in range(a, b):
            row = U(i * nl + pl - a)
            for t in range(taps):
                at = pl + t - left
                if at >= lo and at < hi:
                    c0 = U(col) + U(t) * channels
                    ps = U(line * sst + at * lst)
                    for q in range(channels):
                        hcat[row, c0 + q] = src[n, ps, q]


@_njit(parallel=True, fastmath=FAST)
def _forward(
    x,
    z,
    kernel,
    bias,
    left,
    in_taps,
    in_left,
    steps,
    sst,
    lst,
    start,
    stop,
    cum,
    chunks,
    h,
    tc,
    c,
    acts,
):
    """Fills h (zeros on entry), and tanh(c), c and the activated gates of
    every scan in the band's compact layout.

    The gate inputs of line s are `x`'s line s through the input kernel
    (`in_taps` taps along the line from `in_left` places before), plus
    `bias`, plus `z` where it is given (`(N, P, 4u)`, or `(1, 1, 4u)`
    for none); line s place pl is at position `s * sst + pl * lst` of
    `x` (`(N, P, C)`), `z` and `h`. `kernel` is `(D, k u + k_in C, 4u)`:
    the state-to-state kernel's taps, then the input kernel's, so that
    one product per line gives both. The saved arrays are `(N cum[-1],
    .)`: line by line, in each line scan by scan, in each scan place by
    place (`_compact_row`), so that each thread writes and reads them
    in runs.

    Arrays shared by the threads are indexed, never sliced, inside the
    loops: a slice takes a reference, an atomic add on memory that both
    threads write, and that made two threads slower than one.
    """
    count, positions, channels = x.shape
    directions, width, gates = kernel.shape
    units = gates // 4
    ku = width - in_taps * channels
    taps = ku // units
    length = positions // steps
    has_z = z.shape[1] == positions
    # -1 for the sigmoid gates, -2 for g: tanh(x) = 2 sigmoid(2x) - 1.
    scale_in = np.full(gates, np.float32(-1.0))
    scale_in[3 * units :] = np.float32(-2.0)
    uu, u2, u3, gg = U(units), U(2 * units), U(3 * units), U(gates)
    for chunk in numba.prange(chunks):
        d, n0, n1 = _chunk(chunk, chunks, directions, count)
        dd = U(d)
        nc = n1 - n0
        bits = np.empty(nc * length * gates, np.int32)
        scale = bits.view(np.float32)
        # This chunk's states of the line before, by place.
        h_before = np.zeros((nc, length, units), np.float32)
        c_before = np.zeros((nc, length, units), np.float32)
        for s in range(steps):
            a, b = start[s], stop[s]
            lo, hi = (start[s - 1], stop[s - 1]) if s > 0 else (0, 0)
            nl = b - a
            rows = nc * nl
            first = count * cum[s] + n0 * nl
            hcat = np.zeros((rows, width), np.float32)
            _gather(h_before, hcat, 0, 0, nc, 0, a, b, left, taps, lo, hi, 0, 1)
            _gather(
                x,
                hcat,
                ku,
                n0,
                nc,
                s,
                a,
                b,
                in_left,
                in_taps,
                0,
                length,
                sst,
                lst,
            )
            pre = np.dot(hcat, kernel[d])
            for i in range(nc):
                n = U(n0 + i)
                for pl in range(a, b):
                    r = U(i * nl + pl - a)
                    p = U(s * sst + pl * lst)
                    if has_z:
                        for j in range(gg):
                            pre[r, j] += z[n, p, j]
                    for j in range(gg):
                        pre[r, j] = (pre[r, j] + bias[dd, j]) * scale_in[j]
            _logistic(pre.ravel(), rows * gates, bits, scale)
            cell = np.empty((rows, units), np.float32)
            for i in range(nc):
                ii = U(i)
                for pl in range(a, b):
                    r = U(i * nl + pl - a)
                    rc = U(first) + r
                    up = U(pl)
                    for q in range(u3, gg):
                        pre[r, q] = pre[r, q] + pre[r, q] - np.float32(1.0)
                    # Zero before the line's band starts.
                    if pl >= lo and pl < hi:
                        for q in range(uu):
                            cc = pre[r, uu + q] * c_before[ii, up, q] + (
                                pre[r, u2 + q] * pre[r, u3 + q]
                            )
                            c_before[ii, up, q] = cc
                            c[rc, q] = cc
                            cell[r, q] = np.float32(-2.0) * cc
                    else:
                        for q in range(uu):
                            cc = pre[r, u2 + q] * pre[r, u3 + q]
                            c_before[ii, up, q] = cc
                            c[rc, q] = cc
                            cell[r, q] = np.float32(-2.0) * cc
                    for j in range(gg):
                        acts[rc, j] = pre[r, j]
            _logistic(cell.ravel(), rows * units, bits, scale)
            for i in range(nc):
                n = U(n0 + i)
                ii = U(i)
                for pl in range(a, b):
                    r = U(i * nl + pl - a)
                    rc = U(first) + r
                    p = U(s * sst + pl * lst)
                    up = U(pl)
                    for q in range(uu):
                        t = cell[r, q] + cell[r, q] - np.float32(1.0)
                        tc[rc, q] = t
                        v = pre[r, q] * t
                        h[n, p, q] = v
                        h_before[ii, up, q] = v


@_njit(parallel=True, fastmath=FAST)
def _backward(
    dh_out,
    x,
    h,
    tc,
    c,
    acts,
    kernel_t,
    left,
    in_taps,
    in_left,
    steps,
    sst,
    lst,
    start,
    stop,
    cum,
    chunks,
    dx,
    dz,
    dkernel,
    dbias,
):
    """Fills the gradients of `x` (`(N, P, C)`), of `z` (`(N, P, 4u)`, or
    `(1, 1, 4u)` when there is none), and of the kernel and bias of each
    chunk (`(chunks, k u + k_in C, 4u)`, `(chunks, 4u)`; summed by the
    caller). All zeros on entry; `kernel_t` is `_forward`'s kernel,
    transposed; `h` as `_forward` leaves it, `tc`, `c` and `acts` in the
    compact layout."""
    count, positions, channels = x.shape
    gates = acts.shape[1]
    directions, _, width = kernel_t.shape
    units = gates // 4
    ku = width - in_taps * channels
    taps = ku // units
    length = positions // steps
    has_z = dz.shape[1] == positions
    uu, u2, u3, gg = U(units), U(2 * units), U(3 * units), U(gates)
    uc = U(channels)
    one = np.float32(1.0)
    for chunk in numba.prange(chunks):
        d, n0, n1 = _chunk(chunk, chunks, directions, count)
        cu = U(chunk)
        nc = n1 - n0
        dh_rec = np.zeros((nc, length, units), np.float32)
        dc = np.zeros((nc, length, units), np.float32)
        for s in range(steps - 1, -1, -1):
            a, b = start[s], stop[s]
            lo, hi = (start[s - 1], stop[s - 1]) if s > 0 else (0, 0)
            nl, nlb = b - a, hi - lo
            first = count * cum[s] + n0 * nl
            first_before = count * cum[s - 1] + n0 * nlb if s > 0 else 0
            dzb = np.empty((nc * nl, gates), np.float32)
            for i in range(nc):
                n = U(n0 + i)
                ii = U(i)
                for pl in range(a, b):
                    r = U(i * nl + pl - a)
                    rc = U(first) + r
                    p = U(s * sst + pl * lst)
                    up = U(pl)
                    # The cell state before this one (zero before the
                    # line's band starts): f's derivative goes through it.
                    keep = np.float32(1.0)
                    before = U(first_before + i * nlb + pl - lo)
                    if pl < lo or pl >= hi:
                        keep, before = np.float32(0.0), rc
                    for q in range(uu):
                        dh = dh_out[n, p, q] + dh_rec[ii, up, q]
                        o = acts[rc, q]
                        f = acts[rc, uu + q]
                        ig = acts[rc, u2 + q]
                        g = acts[rc, u3 + q]
                        t = tc[rc, q]
                        c_prev = c[before, q] * keep
                        dcc = dc[ii, up, q] + dh * o * (one - t * t)
                        dzb[r, q] = dh * t * o * (one - o)
                        dzb[r, uu + q] = dcc * c_prev * f * (one - f)
                        dzb[r, u2 + q] = dcc * g * ig * (one - ig)
                        dzb[r, u3 + q] = dcc * ig * (one - g * g)
                        dc[ii, up, q] = dcc * f
                    for j in range(gg):
                        dbias[cu, j] += dzb[r, j]
                    if has_z:
                        for j in range(gg):
                            dz[n, p, j] = dzb[r, j]
            hcat = np.zeros((nc * nl, width), np.float32)
            if s > 0:
                _gather(
                    h,
                    hcat,
                    0,
                    n0,
                    nc,
                    s - 1,
                    a,
                    b,
                    left,
                    taps,
                    0,
                    length,
                    sst,
                    lst,
                )
            _gather(
                x,
                hcat,
                ku,
                n0,
                nc,
                s,
                a,
                b,
                in_left,
                in_taps,
                0,
                length,
                sst,
                lst,
            )
            dkernel[chunk] += np.dot(hcat.T, dzb)
            back = np.dot(dzb, kernel_t[d])
            dh_rec[:] = 0
            for i in range(nc):
                n = U(n0 + i)
                ii = U(i)
                for pl in range(a, b):
                    r = U(i * nl + pl - a)
                    if s > 0:
                        for t in range(taps):
                            at = pl + t - left
                            if at >= 0 and at < length:
                                ua, c0 = U(at), U(t) * uu
                                for q in range(uu):
                                    dh_rec[ii, ua, q] += back[r, c0 + q]
                    for t in range(in_taps):
                        at = pl + t - in_left
                        if at >= 0 and at < length:
                            ps = U(s * sst + at * lst)
                            c0 = U(ku + t * channels)
                            for q in range(uc):
                                dx[n, ps, q] += back[r, c0 + q]


@functools.cache
def _threads():
    # One thread per core this process may run on (a run pinned to one
    # core with taskset gets one), not per core of the machine.
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, numba.config.NUMBA_NUM_THREADS))


def _set_threads():
    # numba's thread count is set per calling thread, and TensorFlow
    # calls a numpy_function from any of its threads: set it every time.
    numba.set_num_threads(_threads())


class BufferPool:
    """Arrays handed out again once nothing else holds them.

    Every training step asks for the same few large arrays (the saved
    states of each layer, the gradients); fresh memory costs a page fault
    and a zeroing by the kernel per page, which took as long as the scan.
    An array goes back to work only when the pool's own reference is the
    last one: TensorFlow keeps the arrays a `numpy_function` returns,
    without a copy when they are 64-byte aligned (these are), so an array
    in use by a tensor is never handed out. Arrays of one `key` are only
    written where the scans of that key write, so what they hold outside
    that stays zero; `clear` empties the pool.

    Args:
        max_bytes: arrays beyond this many bytes in all are not kept.
    """

    def __init__(self, max_bytes=4 << 30):
        import threading

        self.max_bytes = max_bytes
        self.arrays = {}
        self.bytes = 0
        self.lock = threading.Lock()

    def zeros(self, key, shape):
        """A float32 array of `shape`, zero wherever a scan of `key`
        does not write (all zero when new)."""
        import sys

        shape = tuple(int(n) for n in shape)
        with self.lock:
            kept = self.arrays.setdefault((key, shape), [])
            for array in kept:
                # References: the list's, the loop's and getrefcount's
                # argument; any more and something still uses it.
                if sys.getrefcount(array) == 3:
                    return array
            array = _aligned_zeros(shape)
            if self.bytes + array.nbytes <= self.max_bytes:
                kept.append(array)
                self.bytes += array.nbytes
            return array

    def clear(self):
        with self.lock:
            self.arrays.clear()
            self.bytes = 0


def _aligned_zeros(shape):
    """Zeros, 64-byte aligned (so TensorFlow takes them without a copy),
    their memory touched here by one thread: large NumPy arrays get huge
    pages, which the kernel zeroes on first touch, and two threads
    touching a fresh array at once made the forward scan four times
    slower than one thread touching it first."""
    size = int(np.prod(shape))
    buffer = np.zeros(size + 16, np.float32)
    start = (-buffer.ctypes.data % 64) // 4
    array = buffer[start : start + size].reshape(shape)
    array.reshape(-1)[::1024] = 0
    return array


POOL = BufferPool()


@functools.cache
def _blas_controller():
    import scipy.linalg.cython_blas  # noqa: F401 (numba's BLAS, loaded)
    import threadpoolctl

    return threadpoolctl.ThreadpoolController()


def _one_blas_thread():
    """The BLAS of numba's `np.dot` on one thread per call: the scan's
    threads each call it, and more threads than cores slow all down."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _layout(shape, time_axis):
    """(steps, length, s_stride, l_stride) of a `(N, A, B, C)` map."""
    a, b = shape[1], shape[2]
    if time_axis == 1:
        return a, b, b, 1
    return b, a, 1, b


def _band(steps, length, band):
    if band is None:
        start = np.zeros(steps, np.int64)
        stop = np.full(steps, length, np.int64)
        return start, stop
    start, stop = band
    return np.asarray(start, np.int64), np.asarray(stop, np.int64)


def flat(a):
    """`(N, A, B, C) -> (N, A B, C)`, float32 and C-contiguous."""
    a = np.ascontiguousarray(a, np.float32)
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _chunks(count, directions):
    """How many chunks of scans the threads take: whole directions, at
    least one chunk per thread where there are scans enough."""
    threads = numba.get_num_threads()
    per = count // directions
    return directions * max(1, min(per, -(-threads // directions)))


class Scan:
    """One layer's scan: its layout, band and kernel taps.

    Args: as `fused_scan`.
    """

    def __init__(self, x_shape, gates, left, in_left, time_axis, band):
        self.steps, self.length, self.sst, self.lst = _layout(
            x_shape, time_axis
        )
        self.start, self.stop = _band(self.steps, self.length, band)
        # The compact layout's first row of each line, per scan.
        self.cum = np.concatenate([[0], np.cumsum(self.stop - self.start)])
        self.left, self.in_left = left, in_left
        self.gates = gates
        # Arrays of scans with the same band are written in the same
        # places (see `BufferPool`).
        self.key = (time_axis, self.start.tobytes(), self.stop.tobytes())

    def kernel(self, state_kernel, input_kernel):
        """`(D, k u + k_in C, 4u)`: the state taps, then the input taps."""
        state = np.asarray(state_kernel, np.float32)
        inputs = np.asarray(input_kernel, np.float32)
        d = state.shape[0]
        return np.ascontiguousarray(
            np.concatenate(
                [
                    state.reshape(d, -1, self.gates),
                    inputs.reshape(d, -1, self.gates),
                ],
                axis=1,
            )
        )

    def forward(self, x, z, state_kernel, input_kernel, bias):
        """`(h, tanh_c, c, acts)`: h `(N, A, B, units)`, the others
        `(N * band size, units)` (acts: `4 units`) in the compact layout
        of `_forward`."""
        _set_threads()
        kernel = self.kernel(state_kernel, input_kernel)
        units = self.gates // 4
        h = POOL.zeros((self.key, "h"), (*x.shape[:3], units))
        saved = [
            POOL.zeros((self.key, name), self.saved_shape(x.shape[0], n))
            for name, n in (("tanh_c", 1), ("c", 1), ("acts", 4))
        ]
        with _one_blas_thread():
            _forward(
                flat(x),
                _flat_or_none(z, self.gates),
                kernel,
                np.ascontiguousarray(bias, np.float32),
                self.left,
                input_kernel.shape[1],
                self.in_left,
                self.steps,
                self.sst,
                self.lst,
                self.start,
                self.stop,
                self.cum,
                _chunks(x.shape[0], kernel.shape[0]),
                flat(h),
                *saved,
            )
        return (h, *saved)

    def saved_shape(self, count, n):
        """The shape of a saved array of `n` times `units` channels for
        `count` scans (None for an unknown count)."""
        rows = None if count is None else int(count) * int(self.cum[-1])
        return (rows, n * self.gates // 4)

    def backward(self, dh, x, saved, state_kernel, input_kernel, with_z):
        """`(dx, dz or None, d state_kernel, d input_kernel, d bias)`."""
        _set_threads()
        kernel = self.kernel(state_kernel, input_kernel)
        directions = kernel.shape[0]
        chunks = _chunks(x.shape[0], directions)
        # Added into, so zeroed again when it comes back from the pool.
        dx = POOL.zeros((self.key, "dx"), x.shape)
        dx.fill(0)
        dz = (
            POOL.zeros((self.key, "dz"), (*x.shape[:3], self.gates))
            if with_z
            else None
        )
        dk = np.zeros((chunks, *kernel.shape[1:]), np.float32)
        db = np.zeros((chunks, self.gates), np.float32)
        with _one_blas_thread():
            _backward(
                flat(dh),
                flat(x),
                flat(saved[0]),
                *saved[1:],
                np.ascontiguousarray(kernel.transpose(0, 2, 1)),
                self.left,
                input_kernel.shape[1],
                self.in_left,
                self.steps,
                self.sst,
                self.lst,
                self.start,
                self.stop,
                self.cum,
                chunks,
                flat(dx),
                _flat_or_none(dz, self.gates),
                dk,
                db,
            )
        dk = dk.reshape(directions, -1, *dk.shape[1:]).sum(axis=1)
        ku = state_kernel[0].size // self.gates
        d_state = dk[:, :ku].reshape(state_kernel.shape)
        d_input = dk[:, ku:].reshape(input_kernel.shape)
        db = db.reshape(directions, -1, self.gates).sum(axis=1)
        return dx, dz, d_state, d_input, db


def _flat_or_none(z, gates):
    """`flat(z)`, or for no map the `(1, 1, 4u)` stand-in the loops take
    for "none"."""
    return np.zeros((1, 1, gates), np.float32) if z is None else flat(z)


def fused_scan(
    x,
    input_kernel,
    bias,
    state_kernel,
    left,
    in_left=0,
    time_axis=1,
    band=None,
    z=None,
):
    """A line LSTM scan, input-to-state product included, with its
    gradient, as two TensorFlow ops.

    The gate inputs `[o, f, i, g]` at line s, place pl are
    `sum_t x[s, pl + t - in_left] @ input_kernel[t] + bias (+ z[s, pl])`,
    and the state-to-state part is `sum_t h[s - 1, pl + t - left] @
    state_kernel[t]` (`line_lstm_step`).

    Args:
        x: `(N, A, B, C)`, the layer's input, the lines on axis
            `time_axis` (1 or 2) and the places along a line on the other.
        input_kernel: `(D, k_in, C, 4 units)`: each of the D parts of the
            N scans (N divisible by D) has its own.
        bias: `(D, 4 units)`.
        state_kernel: `(D, k, units, 4 units)`.
        left, in_left: how many places before a place each kernel reaches.
        time_axis: 1 or 2, the axis of `x` that holds the lines.
        band: None (every place of every line), or `(start, stop)`, two
            int arrays with one entry per line.
        z: None, or `(N, A, B, 4 units)` more gate inputs (a conditioning
            map's).

    Returns:
        `(N, A, B, units)`, the hidden state at every position (zero
        outside the band).
    """
    import tensorflow as tf

    dtype = x.dtype
    gates = state_kernel.shape[-1]
    scan = Scan(x.shape, gates, left, in_left, time_axis, band)
    with_z = z is not None

    def forward(x, z, state_kernel, input_kernel, bias):
        return scan.forward(
            x, z if with_z else None, state_kernel, input_kernel, bias
        )

    def backward(dh, x, h, tanh_c, c, acts, state_kernel, input_kernel):
        out = scan.backward(
            dh, x, (h, tanh_c, c, acts), state_kernel, input_kernel, with_z
        )
        if not with_z:
            out = out[:1] + out[2:]
        return out

    @tf.custom_gradient
    def run(x, z, state_kernel, input_kernel, bias):
        saved = tf.numpy_function(
            forward,
            [x, z, state_kernel, input_kernel, bias],
            [tf.float32] * 4,
            stateful=False,
        )
        saved[0].set_shape((*x.shape[:3], gates // 4))
        for tensor, channels in zip(saved[1:], (1, 1, 4), strict=True):
            tensor.set_shape(scan.saved_shape(x.shape[0], channels))

        def grad(dh):
            grads = tf.numpy_function(
                backward,
                [
                    tf.cast(dh, tf.float32),
                    x,
                    *saved,
                    state_kernel,
                    input_kernel,
                ],
                [tf.float32] * (5 if with_z else 4),
                stateful=False,
            )
            if not with_z:
                grads = [grads[0], tf.zeros_like(z), *grads[1:]]
            for g, v in zip(
                grads, (x, z, state_kernel, input_kernel, bias), strict=True
            ):
                g.set_shape(v.shape)
            return tuple(grads)

        return saved[0], grad

    def f32(v):
        return tf.cast(v, tf.float32)

    z = f32(z) if with_z else tf.zeros((1, 1, gates), tf.float32)
    h = run(f32(x), z, f32(state_kernel), f32(input_kernel), f32(bias))
    return tf.cast(h, dtype)


def diagonal_band(height, width):
    """The pixels of each column of a skewed `height x width` map: row
    pl is a pixel in skewed column s for `s - width < pl <= s`."""
    s = np.arange(width + height - 1)
    return np.maximum(0, s - width + 1), np.minimum(height, s + 1)


__all__ = [
    "diagonal_band",
    "fused_scan",
    "Scan",
]
