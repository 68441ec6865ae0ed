"""What a model takes, and checks of what a user passes it.

Shared by sampling, scoring and training: the model's image shape,
levels, class count and small-image shape (from the config of a model
class; from the graph of a plain functional model, as older files are),
and checks that raise a `ValueError` naming the argument and the range
expected before any image reaches the model.
"""

import typing

import keras
import numpy as np


@typing.runtime_checkable
class PixelModelConfig(typing.Protocol):
    """What a model class of `pixel_models.models` knows of itself."""

    image_shape: tuple
    levels: int
    num_classes: int | None
    condition_shape: tuple | None


def image_shape(model):
    """`(H, W, C)` of the images `model` takes."""
    if isinstance(model, PixelModelConfig):
        return model.image_shape
    return tuple(model.inputs[0].shape[1:])


def model_levels(model):
    """The number of pixel values of `model`."""
    if isinstance(model, PixelModelConfig):
        return model.levels
    return mixture_levels(model) or model.output_shape[-1]


def mixture_levels(model):
    """The levels of a model with `output="logistic_mixture"`, None for
    a categorical one (whose logits say their levels)."""
    if getattr(model, "likelihood", "categorical") == "categorical":
        return None
    return model.levels


def model_inputs(x, labels=None, condition=None):
    """A model's call inputs: `x`, then the labels and the small image
    that the model takes (None for those it does not)."""
    extra = [v for v in (labels, condition) if v is not None]
    return [x, *extra] if extra else x


def num_classes(model):
    """Number of classes of a class-conditional model, else None.

    A model class of `pixel_models.models` knows it from its config. A
    plain functional model (a file from before the classes) has one label
    `Embedding` if it is conditional; its input size is the count.
    """
    if isinstance(model, PixelModelConfig):
        return model.num_classes
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return layer.input_dim
    return None


def check_labels(model, labels, num_samples):
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


def condition_shape(model):
    """The shape `(s_h, s_w, C)` of a model's given small image, else None.

    From the config of a model class; for a plain functional model, its
    input named `small` (as the builders' `condition_shape` makes).
    """
    if isinstance(model, PixelModelConfig):
        return model.condition_shape
    for tensor in model.inputs[1:]:
        if tensor.name == "small":
            return tuple(tensor.shape[1:])
    return None


def check_condition(model, condition, num_images):
    """The small images a model is conditioned on, as float32 `(n, s_h,
    s_w, C)`, or None for a model without them.

    Args:
        condition: `(num_images, s_h, s_w, C)` integer pixel values in
            `[0, levels - 1]`, or one `(s_h, s_w, C)` image for all.
    """
    shape = condition_shape(model)
    if shape is None:
        if condition is not None:
            raise ValueError(
                f"model {model.name!r} takes no small image, so condition "
                "must be None. Received: condition of shape "
                f"{np.shape(condition)}"
            )
        return None
    if condition is None:
        raise ValueError(
            f"model {model.name!r} is conditioned on a small image of shape "
            f"{shape}: pass condition=, one image per sample or one for "
            "all. Received: condition=None"
        )
    array = np.asarray(condition)
    if array.shape == shape:
        array = np.broadcast_to(array, (num_images, *shape))
    levels = model_levels(model)
    if (
        array.shape != (num_images, *shape)
        or not np.issubdtype(array.dtype, np.number)
        or array.min() < 0
        or array.max() > levels - 1
        or np.any(array != np.round(array))
    ):
        raise ValueError(
            f"condition must be {num_images} small images of shape {shape} "
            f"(or one for all) with integer pixel values in [0, {levels - 1}]"
            f". Received: condition of shape {array.shape}"
            + (
                f" and values in [{array.min()}, {array.max()}]"
                if array.size and np.issubdtype(array.dtype, np.number)
                else ""
            )
        )
    return np.ascontiguousarray(array, "float32")


def check_images(model, images, name="images"):
    """`images` as float32 `(n, H, W, C)`, checked against `model`.

    Raises:
        ValueError: a shape other than the model's input, or values that
            are not integers in `[0, levels - 1]`.
    """
    shape = image_shape(model)
    levels = model_levels(model)
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[1:] != shape or not len(array):
        raise ValueError(
            f"{name} must be an array of shape (n, {', '.join(map(str, shape))}"
            f") with n >= 1, to match the model's input. Received: {name} "
            f"of shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{name} must hold numbers. Received: dtype {array.dtype}"
        )
    check_values(array, name, levels - 1, pixel_values_expected(name, levels))
    return array.astype("float32")


def pixel_values_expected(name, levels):
    """What `name`, an argument of images, must hold: said in errors."""
    return (
        f"{name} must hold integer pixel values in [0, {levels - 1}] (the "
        f"model has {levels} levels; binarized images are 0/1, 8-bit images "
        "0..255, not rescaled to [0, 1])"
    )


def labels_expected(num_classes):
    """What class labels must be: said in errors."""
    return (
        f"labels must be integers in [0, {num_classes - 1}] (the model has "
        f"{num_classes} classes)"
    )


def check_values(array, name, high, expected):
    """Raises `ValueError(expected + what was received)` unless every
    value of `array` is an integer in `[0, high]`."""
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{expected}. Received: {name} of dtype {array.dtype}")
    if not array.size:
        return
    low, top = array.min(), array.max()
    whole = np.issubdtype(array.dtype, np.integer) or np.array_equal(
        array, np.round(array)
    )
    if low < 0 or top > high or not whole:
        raise ValueError(
            f"{expected}. Received: values in [{low}, {top}]"
            + ("" if whole else ", not all integers")
        )


def check_fit_arrays(model, x, y):
    """Checks arrays given to `fit` or `evaluate` before any step.

    Args:
        model: a model class of `pixel_models.models`.
        x: the images, or `[images, labels]` and the small images, as the
            model takes them; anything but NumPy-like arrays (a
            `tf.data.Dataset`, a generator) is left alone.
        y: the targets, the images themselves.

    Raises:
        ValueError: values that are not integer pixel values (labels) in
            range, naming the argument.
    """
    parts = list(x) if isinstance(x, (tuple, list)) else [x]
    named = [(y, "y", model.levels - 1, None)]
    named.append((parts[0], "x", model.levels - 1, None))
    if model.num_classes is not None and len(parts) > 1:
        named.append(
            (parts[1], "labels", model.num_classes - 1, model.num_classes)
        )
    if model.condition_shape is not None and len(parts) > 1:
        named.append((parts[-1], "condition", model.levels - 1, None))
    for value, name, high, classes in named:
        if not isinstance(value, np.ndarray | list):
            continue
        expected = (
            labels_expected(classes)
            if classes
            else pixel_values_expected(name, model.levels)
        )
        check_values(np.asarray(value), name, high, expected)
