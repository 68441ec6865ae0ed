"""Train an autoregressive model on CIFAR-10 (or any folder of images).

Example (a short run on a CPU):
    python examples/train_cifar.py --epochs 1 --steps-per-epoch 50 \
        --num-layers 3 --width 24 --log-dir runs/cifar

Prints the test NLL in bits/dim, and writes TensorBoard logs,
checkpoints and the final `model.keras` under `--log-dir`. The paper's
CIFAR-10 PixelCNN is `--num-layers 15 --width 128`; for RGB the width
must be divisible by 3 (e.g. 126 or 129).
"""

import sys

from pixel_models.cli.train import run_script
from pixel_models.config import SCRIPTS


def main(argv=None):
    return run_script(
        __doc__.splitlines()[0],
        sys.argv[1:] if argv is None else argv,
        **SCRIPTS["train_cifar"],
    )


if __name__ == "__main__":
    main()
