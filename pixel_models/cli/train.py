"""The training scripts' `main`: flags in, `trainer.run_training` run.

`examples/train_mnist.py` and `examples/train_cifar.py` are
`run_script(description, argv, **config.SCRIPTS[name])`.
"""

from pixel_models.cli.arguments import in_flag_terms, make_parser
from pixel_models.config import parse_flags
from pixel_models.trainer import run_training


def run_script(description, argv, **kwargs):
    """Parses a training script's flags and runs it.

    A user's mistake (a bad flag value, a missing folder or file) ends
    the script with a one-line `error:` naming the flag, as `argparse`
    does, and exit status 2, not a traceback.

    Args:
        description: the script's `--help` line.
        argv: its command-line words.
        **kwargs: its data sets and sizes (`config.SCRIPTS`).

    Returns:
        The results dict of `run_training`.
    """
    parser = make_parser(description, **kwargs)
    config = parse_flags(argv, parser=parser)
    try:
        return run_training(config)
    except (ValueError, FileNotFoundError) as error:
        parser.error(in_flag_terms(str(error)))
