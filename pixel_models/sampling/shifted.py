"""The exact fast sampler of shifted-convolution networks (PixelCNN++).

Its plan (`shifted_plan.py`) gives every map a kind and a scale; here
are the values each map computes, and when. A strided convolution's
output at `(a, b)` reads its input up to `(2a, 2b)`, computed at the
same pixel, just before; a transposed one's output at `(a, b)` reads its
input at `(a // 2, b // 2)`, computed at an earlier or the same pixel.
So at every pixel each map computes the one value that pixel makes
computable, or none, and the work is that of one forward pass per
image. Which scales compute at a pixel follows from the row and column
modulo the largest scale: the coarser scales' work sits in a `cond`, so
one function serves every row.

Each layer computes its own values (`ShiftedConv2D.row_output` and
`window_output`, `ShiftedConv2DTranspose.row_output` and `value_at`;
pointwise layers by their `call` on a 1 x 1 or one-row map).
"""

import keras
from keras import ops

from pixel_models.layers.steps import row_valid
from pixel_models.logistic_mixture import channel_log_probs
from pixel_models.sampling.shifted_plan import ShiftedPlan


def _start(*indices):
    return ops.stack([ops.cast(i, "int32") for i in indices])


def column(rows, b):
    """The current (last) row of `rows` `(n, D, W, C)` at column `b`."""
    return ops.take(rows[:, -1], b, axis=1)


def put(rows, b, value):
    """`rows` with its current row's column `b` set to `value` `(n, C)`."""
    depth = rows.shape[1]
    return ops.slice_update(
        rows, _start(0, depth - 1, b, 0), value[:, None, None]
    )


def _where_due(due, scale, update, rows, keys):
    """`rows` with `update(rows)`'s maps `keys` (the ones it writes)
    where the maps of `scale` are due (a `cond` on the boolean tensor
    `due`), unchanged where not; the full resolution is always due.

    Only `keys` pass through the `cond`: each map passed through it is
    an op in each branch of the traced graph, and passing every map
    through every `cond` made three quarters of the steps' graphs.
    """
    if scale == 1:
        return update(rows)
    keys = [k for k in keys if k in rows]
    if not keys:
        return rows
    changed = ops.cond(
        due,
        lambda: {k: v for k, v in update(rows).items() if k in keys},
        lambda: {k: rows[k] for k in keys},
    )
    return {**rows, **changed}


class ShiftedSampler(ShiftedPlan):
    """The fast sampler of a network of shifted convolutions: its plan
    and its one-pixel steps (`OnePixelSampler`), a pixel's mixture
    parameters once, then each channel's log-probabilities from them.

    The state is every kept map's rows, `{key: (n, depth, W / s, C)}`;
    the carry, the rows of the maps the row's pixels write; the context,
    the other maps' rows and the row's index; a pixel's column, its
    index `j`.
    """

    # Without XLA on TensorFlow: at 32 x 32 x 3 (one block per
    # resolution, 32 filters) XLA took 225 s to compile the row for a
    # 2.2x faster loop; the plain graph is ready in 10 s.
    jit_compile = False

    # Each node's values -----------------------------------------------

    def _row_value(self, node, rows, constants, row):
        """A row node's current row, `(n, W / s, C)`."""
        layer = node.layer
        if node.op == "pointwise":

            def current(key):  # the map's current row, (n, 1, W / s, C)
                if key in constants:
                    return self._constant_at(constants[key], row)
                return rows[key][:, -1:]

            return layer(keras.tree.map_structure(current, node.in_keys))[:, 0]
        kh = layer.kernel_size[0]
        source = rows[node.source]
        if node.op == "image_down":  # the shift of the rows above: zeros
            value = layer.row_output(source[:, -1 - kh : -1])  # in row 0
            return value * row_valid(row, value.dtype)
        if node.op == "transposed":  # output rows 2r, 2r + 1: which one
            odd = (row // node.scale) % 2
            return ops.take(layer.row_output(source[:, -1]), odd, axis=1)
        return layer.row_output(source[:, -kh:])

    def _constant_at(self, value, row, j=None):
        """A constant input where a row node (or, with `j`, a pixel node)
        reads it: a label embedding whole; a conditioning map `(n, H / s,
        W / s, C)` at row `row // s` (and column `j // s`), as a
        one-row (or 1 x 1) map."""
        if len(value.shape) != 4:
            return value
        scale = self.height // value.shape[1]
        start = [0, row // scale, 0 if j is None else j // scale, 0]
        size = [value.shape[0], 1, value.shape[2] if j is None else 1]
        return ops.slice(value, _start(*start), (*size, value.shape[3]))

    def _pixel_value(self, node, values, rows, constants, row, j):
        """A pixel node's value at its position `(row, j) / scale`."""
        layer = node.layer
        b = j // node.scale
        if node.op == "pointwise":

            def here(key):  # the map's value at the pixel, (n, 1, 1, C)
                if key in constants:
                    return self._constant_at(constants[key], row, j)
                value = values[key] if key in values else column(rows[key], b)
                return value[:, None, None]

            return layer(keras.tree.map_structure(here, node.in_keys))[:, 0, 0]
        source = rows[node.source]
        if node.op == "transposed":
            s = node.scale
            return layer.value_at(column(source, b // 2), (row // s) % 2, b % 2)
        kh, kw = layer.kernel_size
        if node.op == "image_right":  # the columns left of the pixel
            start = j - kw
        elif node.op == "strided":
            start = 2 * b - kw + 1
        else:
            start = b - kw + 1
        padded = ops.pad(source[:, -kh:], [(0, 0), (0, 0), (kw, 0), (0, 0)])
        n, _, _, c = padded.shape
        window = ops.slice(padded, _start(0, 0, start + kw, 0), (n, kh, kw, c))
        value = layer.window_output(window)
        if node.op == "image_right":  # the shift's zeros in column 0
            value = value * row_valid(j, value.dtype)
        return value

    def _run_segments(self, segments, rows, compute, row, at):
        """Runs each run of same-scale nodes where its scale has a value
        (`row % scale == at % scale == 0`, a `cond` for the coarser ones).
        Values pass from one run to another through `rows`.

        Returns `(rows, the values of the last run)`.
        """
        values = {}
        for scale, nodes in segments:

            def run(rows, nodes=nodes, scale=scale):
                rows, values = dict(rows), {}
                for node in nodes:
                    value = compute(node, values, rows)
                    values[node.out_key] = value
                    if node.out_key in rows:
                        rows[node.out_key] = put(
                            rows[node.out_key], at // scale, value
                        )
                return rows, values

            if scale == 1:
                rows, values = run(rows)
                continue
            due = ops.logical_and(
                ops.equal(row % scale, 0), ops.equal(at % scale, 0)
            )
            rows = _where_due(
                due,
                scale,
                lambda r, run=run: run(r)[0],
                rows,
                [node.out_key for node in nodes],
            )
        return rows, values

    # The one-pixel steps ---------------------------------------------

    def start_row(self, constants, state, row):
        """A new row for the maps of every scale that starts one, then
        the row nodes' rows: `(context, carry, columns)`."""
        rows = dict(state)
        for scale in self.scales:
            keys = [k for k in rows if self.kinds[k][1] == scale]

            def roll(rows, keys=keys):
                rows = dict(rows)
                for k in keys:
                    value = rows[k]
                    rows[k] = ops.pad(
                        value[:, 1:], [(0, 0), (0, 1), (0, 0), (0, 0)]
                    )
                return rows

            rows = _where_due(
                ops.equal(row % scale, 0), scale, roll, rows, keys
            )
        for scale, nodes in self.row_segments:

            def run(rows, nodes=nodes):
                rows = dict(rows)
                for node in nodes:
                    value = self._row_value(node, rows, constants, row)
                    rows[node.out_key] = ops.concatenate(
                        [rows[node.out_key][:, :-1], value[:, None]], axis=1
                    )
                return rows

            rows = _where_due(
                ops.equal(row % scale, 0),
                scale,
                run,
                rows,
                [node.out_key for node in nodes],
            )
        carry = {k: rows[k] for k in self.carried}
        fixed = {k: v for k, v in rows.items() if k not in carry}
        return {"rows": fixed, "row": row}, carry, ops.arange(self.width)

    def pixel_pass(self, constants, context, carry, column, here, c):
        """Every pixel node at pixel `(row, column)`: `(rows, params)`,
        the carried rows with the nodes' values written, and the
        mixture's parameters at the pixel `(n, P)`."""
        row = context["row"]
        rows, values = self._run_segments(
            self.pixel_segments,
            {**context["rows"], **carry},
            lambda node, values, rows: self._pixel_value(
                node, values, rows, constants, row, column
            ),
            row,
            column,
        )
        return {k: rows[k] for k in self.carried}, values[self.output]

    def log_probs(self, pixel, here, c):
        """Channel `c`'s log-probabilities from the pixel's parameters."""
        return channel_log_probs(pixel[1], here, c, self.model_levels)

    def end_pixel(self, constants, context, carry, column, here, pixel):
        """The carried rows with the drawn pixel `here` (and the maps of
        it, rescaled) written at its column."""
        rows = dict(pixel[0])
        values = {self.pixels: here}
        for node in self.image_nodes:
            inputs = keras.tree.map_structure(
                lambda k: constants[k] if k in constants else values[k],
                node.in_keys,
            )
            values[node.out_key] = node.layer(
                keras.tree.map_structure(lambda v: v[:, None, None], inputs)
            )[:, 0, 0]
        for key in self.image_maps:  # every one carried
            rows[key] = put(rows[key], column, values[key])
        return rows

    def kept(self, carry):
        """Nothing: the carry holds the pixels' maps."""
        return {}

    def end_row(self, constants, context, carry, kept):
        """Every kept map's rows."""
        return {**context["rows"], **carry}
