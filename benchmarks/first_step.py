"""How long a training run waits for its first step: the optimizer's
variables made at `compile` (the project's models) against Keras's way on
TensorFlow, where they are made while the first step is traced.

Each measurement runs in a fresh process (a first trace is what it
times): the model of a shipped preset's size, new weights, float32,
compiled as the recipes compile it, then one `fit` step on random images
of the preset's batch size. "first step" is from `compile` to the end of
that step; "later step" is a step of a `fit` after it, for scale. The
Keras way is the same code with the models' eager build
(`_build_optimizer`) patched out. Variants alternate, family by family.

Example:
    taskset -c 0 python -m benchmarks.first_step --rounds 2
"""

import argparse
import json
import statistics
import time
from unittest import mock

from benchmarks.common import (
    describe_cpu,
    matmul_roof,
    run_module,
    write_report,
)

VARIANTS = ("at_compile", "in_trace")
PRESETS = (
    "pixelcnn_binarized_mnist",
    "gated_pixelcnn_binarized_mnist",
    "row_lstm_binarized_mnist",
    "diagonal_bilstm_binarized_mnist",
    "pixelcnn_pp_cifar10",
)


def measure(family, arguments, batch_size, variant, later_steps=3):
    """Times the first training step of a new model, in this process.

    Args:
        family: the model family.
        arguments: its builder's arguments (a card's `builder_arguments`).
        batch_size: images a step.
        variant: `"at_compile"` (the models' own `compile`) or
            `"in_trace"` (Keras's: the optimizer built in the first trace).
        later_steps: steps timed after the first.

    Returns:
        A dict: `first_step_s`, `later_step_s` (a step of a later `fit`,
        fit's overhead included), `traces` (of the train step, in the
        first `fit`), `optimizer_variables`, and whether the optimizer was
        built before `fit` (`built_before_fit`).
    """
    import numpy as np

    from pixel_models.models import PixelModel, build_model
    from pixel_models.training import compile_model

    if variant not in VARIANTS:
        raise ValueError(
            f"variant must be one of {VARIANTS}. Received: variant={variant!r}"
        )
    arguments = dict(arguments)
    shape = tuple(arguments.pop("input_shape"))
    model = build_model(family, shape, **arguments)
    rng = np.random.default_rng(0)
    x = rng.integers(0, arguments["levels"], (batch_size, *shape))
    x = x.astype("float32")
    inputs = x if model.num_classes is None else [x, np.zeros(batch_size)]
    traces, train_step = [], model.train_step

    def counted_step(data):  # runs once a trace
        traces.append(None)
        return train_step(data)

    model.train_step = counted_step
    keep = variant == "at_compile"
    patch = mock.patch.object(
        PixelModel,
        "_build_optimizer",
        PixelModel._build_optimizer if keep else lambda self: None,
    )
    start = time.perf_counter()
    with patch:
        compile_model(model)
        built = model.optimizer.built
        model.fit(inputs, x, batch_size=batch_size, epochs=1, verbose=0)
    first = time.perf_counter() - start
    first_traces = len(traces)
    # Later steps: one more `fit` (the same traced step) over as many
    # batches, per batch.
    repeat = [np.concatenate([a] * later_steps) for a in _listed(inputs)]
    start = time.perf_counter()
    model.fit(
        repeat if len(repeat) > 1 else repeat[0],
        np.concatenate([x] * later_steps),
        batch_size=batch_size,
        epochs=1,
        verbose=0,
    )
    later = (time.perf_counter() - start) / later_steps
    return {
        "first_step_s": first,
        "later_step_s": later,
        "traces": first_traces,
        "optimizer_variables": len(model.optimizer.variables),
        "built_before_fit": built,
    }


def _listed(inputs):
    return inputs if isinstance(inputs, list) else [inputs]


def measure_preset(name, variant):
    """`measure` on the size and batch of the shipped preset `name`."""
    from pixel_models import presets

    card = presets.preset_card(name)
    return measure(
        card["family"],
        card["builder_arguments"],
        card["training"]["batch_size"],
        variant,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        default=",".join(PRESETS),
        help="comma-separated shipped presets whose sizes are timed",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--measure",
        nargs=2,
        metavar=("PRESET", "VARIANT"),
        help="time one in this process and print it (what each fresh "
        "process of a run does)",
    )
    parser.add_argument("--out", default="benchmarks/results/first_step.json")
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_preset(*args.measure)))
        return None
    names = args.presets.split(",")
    runs = {name: {variant: [] for variant in VARIANTS} for name in names}
    for round_ in range(args.rounds):
        for name in names:
            order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                (result,) = run_module(
                    "first_step",
                    ["--measure", name, variant],
                    f"the first step of {name} ({variant})",
                )
                runs[name][variant].append(result)
                print(name, variant, json.dumps(result), flush=True)
    roof = matmul_roof()["flops_per_s"]
    results = {name: summarise(by_variant) for name, by_variant in runs.items()}
    print(describe_cpu(), f"float32 matmul roof {roof / 1e9:.0f} GFLOP/s")
    for name, result in results.items():
        print(
            f"{name:34s} first step {result['at_compile']['first_step_s']:6.1f}"
            f" s at compile, {result['in_trace']['first_step_s']:6.1f} s in "
            f"the trace ({result['in_trace_over_at_compile']:.2f}x); later "
            f"steps {result['at_compile']['later_step_s'] * 1e3:.0f} ms"
        )
    write_report(
        args.out,
        results,
        settings=vars(args),
        cpu=describe_cpu(),
        float32_matmul_flops=roof,
        runs=runs,
    )
    return results


def summarise(by_variant):
    """Medians of each variant's runs, and the ratio of first steps."""
    summary = {
        variant: {
            key: statistics.median(run[key] for run in results)
            for key in ("first_step_s", "later_step_s", "traces")
        }
        for variant, results in by_variant.items()
    }
    summary["in_trace_over_at_compile"] = (
        summary["in_trace"]["first_step_s"]
        / summary["at_compile"]["first_step_s"]
    )
    return summary


if __name__ == "__main__":
    main()
