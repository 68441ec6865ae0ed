"""The command-line layer: the training scripts' flags and runs.

`arguments` parses the flags shared by `examples/train_mnist.py`,
`examples/train_cifar.py` and the presets' recipes; `train` turns them
into a run (`run_training`, `run_multiscale`, `run_script`). The library
underneath (`pixel_models.training`, `pixel_models.data`, the models)
never imports this package.
"""
