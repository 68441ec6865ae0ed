"""Where a training step's time goes: the top TensorFlow ops by time.

Traces `--steps` training steps of one model with the TensorFlow profiler
(after `--warmup` steps that trace and compile), then adds up the time of
every op the executor ran, by op type, over the CPU's compute threads,
and prints the top `--top` types with their share, count and mean time.
Ops whose name starts with `gradient_tape/` are counted apart as the
backward pass. The trace stays in `--log-dir` for TensorBoard's profile
plugin.

Example:
    python -m benchmarks.profile_step diagonal_bilstm mnist
"""

import argparse
import collections
import glob
import json
import os
import time

from benchmarks.common import DATASETS, SMALL_SIZES, parse_size


def op_times(log_dir):
    """`{(pass, op type): (total ps, count)}` from the newest trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(
        os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True
    )
    space = xplane_pb2.XSpace()
    with open(max(paths, key=os.path.getmtime), "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.defaultdict(lambda: [0, 0])
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Op events are "scope/name:OpType"; the rest (such as
                # "ExecutorState::Process") are the executor's own spans,
                # which contain ops.
                if ":" not in name or "::" in name:
                    continue
                kind = name.rsplit(":", 1)[1]
                phase = (
                    "backward"
                    if name.startswith("gradient_tape")
                    else "forward"
                )
                totals[(phase, kind)][0] += event.duration_ps
                totals[(phase, kind)][1] += 1
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument(
        "--size",
        type=parse_size,
        help="LAYERSxWIDTH; default 7x16 (MNIST), 3x48 (CIFAR-10)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--unroll", action="store_true")
    parser.add_argument("--log-dir", default="runs/profile")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from pixel_models.models import build_model
    from pixel_models.training import compile_model

    layers, width = args.size or SMALL_SIZES[args.dataset]
    shape, levels = DATASETS[args.dataset]
    extra = {"unroll": True} if args.unroll else {}
    keras.utils.set_random_seed(0)
    model = build_model(
        args.family, shape, levels, num_layers=layers, width=width, **extra
    )
    compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.integers(0, levels, size=(args.batch_size, *shape))
    x = x.astype("float32")
    print(f"Tracing {args.family} {args.dataset} {layers}x{width} ...")
    for _ in range(args.warmup):
        model.train_on_batch(x, x)
    log_dir = os.path.join(args.log_dir, f"{args.family}_{args.dataset}")
    tf.profiler.experimental.start(log_dir)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, x)
    step_s = (time.perf_counter() - start) / args.steps
    tf.profiler.experimental.stop()

    totals = op_times(log_dir)
    op_total = sum(ps for ps, _ in totals.values())
    print(
        f"step {1000 * step_s:.0f} ms under the profiler (batch "
        f"{args.batch_size}); op time {op_total / 1e9 / args.steps:.0f} ms "
        f"per step over all compute threads, "
        f"{sum(n for _, n in totals.values()) / args.steps:.0f} ops"
    )
    print(
        f"{'pass':<9}{'op':<34}{'ms/step':>8}{'share':>7}{'count':>7}"
        f"{'mean us':>9}"
    )
    rows = []
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])
    for (phase, kind), (ps, count) in ranked[: args.top]:
        row = {
            "pass": phase,
            "op": kind,
            "ms_per_step": ps / 1e9 / args.steps,
            "share": ps / op_total,
            "count_per_step": count / args.steps,
            "mean_us": ps / 1e6 / count,
        }
        rows.append(row)
        print(
            f"{phase:<9}{kind:<34}{row['ms_per_step']:>8.1f}"
            f"{100 * row['share']:>6.1f}%{row['count_per_step']:>7.0f}"
            f"{row['mean_us']:>9.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"step_s": step_s, "top": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
