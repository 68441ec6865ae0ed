"""Drawing a value from logits by inverse CDF of given uniform noise.

In `keras.ops`, so that the same function runs in the naive sampler and
inside the compiled row of the fast one: equal noise, equal draws.
"""

import numpy as np
from keras import ops


def draw(logits, noise, temperature=1.0, top_p=None):
    """Draws values from logits by inverse CDF of the given uniform noise.

    In `keras.ops` (float32), so that it runs inside the compiled sampler;
    the naive sampler uses it too.

    Args:
        logits: `(n, levels)`.
        noise: `(n,)` uniform numbers in [0, 1).
        temperature: divides the logits.
        top_p: keep the smallest set of most likely values whose
            probability reaches `top_p` (nucleus sampling), renormalised;
            ties go to the lower value.

    Returns:
        int32 tensor `(n,)` of values in `[0, levels - 1]`.
    """
    p = ops.softmax(ops.cast(logits, "float32") / temperature, axis=-1)
    levels = p.shape[-1]
    if top_p is not None and top_p < 1:
        # The mass of the values that come before each value in a stable
        # sort by decreasing probability; keep a value while that mass
        # is still short of top_p. (Pairwise rather than a sort and a
        # scatter: the same ops on every backend.)
        index = ops.arange(levels)
        p_k, p_m = p[:, :, None], p[:, None, :]
        before = ops.logical_or(
            ops.greater(p_m, p_k),
            ops.logical_and(
                ops.equal(p_m, p_k), index[None, None, :] < index[None, :, None]
            ),
        )
        mass = ops.sum(ops.where(before, p_m, 0.0), axis=-1)
        # Float32 sums: a mass within rounding of top_p has reached it.
        p = ops.where(mass < top_p - 1e-6, p, 0.0)
        p = p / ops.sum(p, axis=-1, keepdims=True)
    cdf = _cumsum(p)
    # The noise scaled by the float32 CDF's own total, so that it falls
    # inside the CDF however the sums rounded; and the first value of
    # positive probability whose CDF exceeds it, so that a value of zero
    # probability (a float32 underflow, or cut by top_p) is never drawn,
    # even where rounding leaves the CDF flat or falling (then, the last
    # value of positive probability).
    noise = ops.cast(noise, "float32")[:, None] * cdf[:, -1:]
    index = ops.arange(levels, dtype="int32")[None, :]
    possible = p > 0
    first = ops.min(
        ops.where(ops.logical_and(cdf > noise, possible), index, levels),
        axis=-1,
    )
    last = ops.max(ops.where(possible, index, -1), axis=-1)
    return ops.minimum(first, last)


def _cumsum(p):
    """`cumsum(p, axis=-1)` of `(n, L)` in blocks of about sqrt(L), as two
    small matrix products: on TensorFlow's CPU a cumsum over 256 values
    cost 3.6x as much, and it ran at every sub-pixel."""
    n, levels = p.shape
    block = int(np.ceil(np.sqrt(levels)))
    if block < 4:
        return ops.cumsum(p, axis=-1)
    p = ops.pad(p, ((0, 0), (0, block * block - levels)))
    upper = np.triu(np.ones((block, block), "float32"))
    inner = ops.matmul(ops.reshape(p, (-1, block, block)), upper)
    offsets = ops.matmul(
        inner[:, :, -1], upper - np.eye(block, dtype="float32")
    )
    cdf = ops.reshape(inner + offsets[:, :, None], (-1, block * block))
    return cdf[:, :levels]
