"""Train an autoregressive model on MNIST or binarized MNIST.

Example (a short run on a CPU):
    python examples/train_mnist.py --dataset binarized_mnist --epochs 1 \
        --steps-per-epoch 100 --num-layers 3 --width 16 --log-dir runs/mnist

Prints the test NLL in bits/dim (and nats/image), and writes TensorBoard
logs, checkpoints and the final `model.keras` under `--log-dir`.
"""

import sys

from pixel_models.cli.train import run_script
from pixel_models.config import SCRIPTS


def main(argv=None):
    return run_script(
        __doc__.splitlines()[0],
        sys.argv[1:] if argv is None else argv,
        **SCRIPTS["train_mnist"],
    )


if __name__ == "__main__":
    main()
