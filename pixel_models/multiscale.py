"""Multi-Scale PixelRNN (PixelRNN paper, Sec. 3.6): two models, two scales.

An unconditional model generates an s x s image subsampled from the
n x n image; a second model generates the n x n image given it: every one
of its layers is biased by an upsampled map of the small image (the
builders' `condition_shape`). The small image is a deterministic part of
the large one, so

    -log p(x) = -log p(x_small) - log p(x_rest | x_small),

where x_rest are the pixels not in x_small: the second model's loss
(`RestNLL`) counts only those, and the total counts every pixel once, so
it compares directly with a single-scale model's NLL.

Which pixels: `subsample` keeps pixel `(f i, f j)` for `f = n // s`, the
top-left pixel of every f x f block (`images[:, ::f, ::f]`).
"""

import math
import os

import keras
import numpy as np

from pixel_models.checks import check_int
from pixel_models.compile_defaults import (
    DEFAULT_CLIPNORM,
    DEFAULT_LEARNING_RATE,
    default_likelihood,
    make_optimizer,
)
from pixel_models.evaluation import check_images, log_prob, log_prob_map
from pixel_models.losses import (
    LN2,
    RestBitsPerDim,
    RestNLL,
    rest_mask,
    subsample_factors,
)
from pixel_models.models import build_model
from pixel_models.sampling import (
    complete,
    condition_shape,
    num_classes,
    sample,
)

SMALL_FILE = "small.keras"
LARGE_FILE = "large.keras"


def _size_pair(size, name="size"):
    if isinstance(size, (tuple, list)) and len(size) == 2:
        for s in size:
            check_int(name, s)
        return tuple(size)
    check_int(name, size)
    return size, size


def subsample(images, size):
    """The small image of every image: every `n // s`-th row and column.

    Keeps pixel `(f i, f j)`, `f = n // s`: the top-left pixel of every
    f x f block. Works on NumPy arrays and on tensors (in a `tf.data`
    map), `(batch, H, W, C)`.

    Args:
        images: `(batch, H, W, C)`.
        size: s, or `(s_h, s_w)`; must divide the image's size.

    Returns:
        `(batch, s_h, s_w, C)`, of the input's type.

    Example:
    >>> subsample(np.zeros((2, 28, 28, 1)), 14).shape
    (2, 14, 14, 1)
    """
    size = _size_pair(size)
    f_h, f_w = subsample_factors(tuple(images.shape[1:3]), size)
    return images[:, ::f_h, ::f_w]


def conditional_loss(model):
    """Compile arguments of a second-stage model: `RestNLL` and
    `RestBitsPerDim` for its small image's shape."""
    small = condition_shape(model)
    return {"loss": RestNLL(small), "metrics": [RestBitsPerDim(small)]}


class MultiScale:
    """A Multi-Scale PixelRNN: a small-image model and a conditional one.

    Args:
        small_model: models the s x s small image (unconditional, or
            class-conditional).
        large_model: models the n x n image given the small one (built
            with `condition_shape=(s, s, C)`), with the same classes.

    Example:
    >>> ms = build_multiscale("pixelcnn", (8, 8, 1), 4, levels=2,
    ...                       num_layers=1, width=4)
    >>> ms.sample(2, seed=0, progress=False).shape  # doctest: +SKIP
    (2, 8, 8, 1)
    """

    def __init__(self, small_model, large_model):
        small_shape = condition_shape(large_model)
        if small_shape is None:
            raise ValueError(
                "large_model must be conditioned on a small image (built "
                f"with condition_shape=). Received: model "
                f"{large_model.name!r} with inputs "
                f"{[t.name for t in large_model.inputs]}"
            )
        own = tuple(small_model.inputs[0].shape[1:])
        if own != small_shape:
            raise ValueError(
                f"small_model must model images of shape {small_shape}, "
                "the small image large_model is conditioned on. Received: "
                f"small_model with input shape {own}"
            )
        if condition_shape(small_model) is not None:
            raise ValueError(
                "small_model must not itself take a small image. Received: "
                f"model {small_model.name!r}"
            )
        levels = [m.output_shape[-1] for m in (small_model, large_model)]
        classes = [num_classes(m) for m in (small_model, large_model)]
        if levels[0] != levels[1] or classes[0] != classes[1]:
            raise ValueError(
                "small_model and large_model must have the same levels and "
                f"classes. Received: levels {levels}, classes {classes}"
            )
        self.small_model = small_model
        self.large_model = large_model

    @property
    def image_shape(self):
        """`(H, W, C)` of the large image."""
        return tuple(self.large_model.inputs[0].shape[1:])

    @property
    def small_shape(self):
        """`(s_h, s_w, C)` of the small image."""
        return condition_shape(self.large_model)

    @property
    def levels(self):
        return self.large_model.output_shape[-1]

    def count_params(self):
        """Parameters of both models."""
        return sum(
            m.count_params() for m in (self.small_model, self.large_model)
        )

    def compile(
        self, learning_rate=DEFAULT_LEARNING_RATE, clipnorm=DEFAULT_CLIPNORM
    ):
        """Compiles both models with the project's defaults
        (`compile_defaults`); the large one's loss counts only the pixels
        not in the small image."""
        loss, metrics = default_likelihood()
        for model, likelihood in (
            (self.small_model, {}),
            (self.large_model, conditional_loss(self.large_model)),
        ):
            model.compile(
                optimizer=make_optimizer(learning_rate, clipnorm),
                loss=likelihood.get("loss", loss),
                metrics=likelihood.get("metrics", metrics),
            )
        return self

    def sample(
        self,
        num_samples,
        *,
        labels=None,
        temperature=1.0,
        top_p=None,
        seed=None,
        progress=True,
        return_small=False,
    ):
        """Draws the small image, then the large one given it.

        Both stages use the fast sampler. The large image keeps the small
        image's pixels (at `(f i, f j)`) and draws the others.

        Args:
            num_samples: number of images.
            labels: for class-conditional models, one class per image or
                one for all.
            temperature, top_p: as `pixel_models.sampling.sample`.
            seed: seed of both stages' noise.
            progress: show progress bars.
            return_small: also return the small images.

        Returns:
            uint8 `(num_samples, H, W, C)`, or `(large, small)` with
            `return_small`.
        """
        seeds = np.random.SeedSequence(seed).generate_state(2)
        small = sample(
            self.small_model,
            num_samples,
            labels=labels,
            temperature=temperature,
            top_p=top_p,
            seed=int(seeds[0]),
            progress=progress,
        )
        large = sample_given_small(
            self.large_model,
            small,
            labels=labels,
            temperature=temperature,
            top_p=top_p,
            seed=int(seeds[1]),
            progress=progress,
        )
        return (large, small) if return_small else large

    def log_prob(self, images, labels=None, batch_size=64):
        """The two terms of log p(x) of each image, and their sum, in nats.

        Returns:
            Dict of float64 `(n,)` arrays: `small` (log p(x_small)),
            `rest` (log p(x_rest | x_small), over the pixels not in the
            small image) and `total` (their sum, log p(x)).
        """
        x = check_images(self.large_model, images)
        small = subsample(x, self.small_shape[:2])
        small_term = log_prob(self.small_model, small, labels, batch_size)
        per_pixel = log_prob_map(
            self.large_model, x, labels, batch_size, condition=small
        )
        mask = rest_mask(self.image_shape, self.small_shape)
        rest = (per_pixel * mask[None, :, :, None]).reshape(len(x), -1)
        rest = rest.sum(axis=-1)
        return {"small": small_term, "rest": rest, "total": small_term + rest}

    def nll(self, images, labels=None, batch_size=64):
        """Mean NLL of `images` in nats/image and bits/dim, with its terms.

        Returns:
            Dict: `nats_per_image`, `bits_per_dim` (over all `H * W * C`
            sub-pixels, as a single-scale model's), `small_nats`,
            `rest_nats` (the two terms' means) and `num_images`.
        """
        terms = self.log_prob(images, labels, batch_size)
        return two_stage_nll(
            -float(terms["small"].mean()),
            -float(terms["rest"].mean()),
            self.image_shape,
            len(terms["total"]),
        )

    def save(self, directory):
        """Writes `small.keras` and `large.keras` into `directory`."""
        os.makedirs(directory, exist_ok=True)
        self.small_model.save(os.path.join(directory, SMALL_FILE))
        self.large_model.save(os.path.join(directory, LARGE_FILE))

    @classmethod
    def load(cls, directory, compile=True):
        """Loads both models of `directory` (see `save`), `safe_mode=True`.

        Raises:
            FileNotFoundError: a model file is missing.
        """
        models = []
        for name in (SMALL_FILE, LARGE_FILE):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"No {name} in {directory!r}: a Multi-Scale model is a "
                    f"folder holding {SMALL_FILE} and {LARGE_FILE} (written "
                    "by MultiScale.save or a --multiscale training run)."
                )
            models.append(
                keras.models.load_model(path, compile=compile, safe_mode=True)
            )
        return cls(*models)


def two_stage_nll(small_nats, rest_nats, image_shape, num_images):
    """A Multi-Scale model's NLL from its two terms (nats an image):
    -log p(x_small) and -log p(x_rest | x_small), every pixel counted
    once.

    Returns:
        Dict: `nats_per_image`, `bits_per_dim` (over all `H * W * C`
        sub-pixels, as a single-scale model's), `small_nats`, `rest_nats`
        and `num_images`.
    """
    nats = small_nats + rest_nats
    return {
        "nats_per_image": nats,
        "bits_per_dim": nats / (math.prod(image_shape) * LN2),
        "small_nats": small_nats,
        "rest_nats": rest_nats,
        "num_images": num_images,
    }


def sample_given_small(
    model,
    small,
    *,
    labels=None,
    temperature=1.0,
    top_p=None,
    seed=None,
    progress=True,
):
    """Second stage: images drawn given their small images.

    The small image's pixels are kept at `(f i, f j)` (the second stage is
    not trained on them) and every other sub-pixel is drawn in raster
    order by the fast sampler, the model conditioned on `small`.

    Args:
        model: a model built with `condition_shape`.
        small: `(n, s_h, s_w, C)` integer pixel values.
        labels, temperature, top_p, seed, progress: as
            `pixel_models.sampling.sample`.

    Returns:
        uint8 `(n, H, W, C)`.
    """
    shape = tuple(model.inputs[0].shape[1:])
    small = np.asarray(small)
    f_h, f_w = subsample_factors(shape, small.shape[1:3])
    placed = np.zeros((len(small), *shape), "float32")
    placed[:, ::f_h, ::f_w] = small
    known = rest_mask(shape, small.shape[1:3]) == 0
    return complete(
        model,
        placed,
        known,
        labels=labels,
        condition=small,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        progress=progress,
    )[:, 0]


def build_multiscale(
    family,
    input_shape,
    small_size,
    levels=256,
    *,
    num_classes=None,
    small_kwargs=None,
    large_kwargs=None,
    **kwargs,
):
    """Builds the two models of a Multi-Scale PixelRNN of one family.

    Args:
        family: a model family (`pixel_models.models.MODEL_FAMILIES`).
        input_shape: `(n, n, C)` of the large image.
        small_size: s (or `(s_h, s_w)`), dividing n.
        levels: number of pixel values.
        num_classes: None, or the classes of class-conditional stages.
        small_kwargs, large_kwargs: builder arguments of one stage only.
        **kwargs: builder arguments of both (`width`, `num_layers`, ...).

    Returns:
        A `MultiScale`.
    """
    shape = tuple(input_shape)
    s_h, s_w = _size_pair(small_size, "small_size")
    subsample_factors(shape, (s_h, s_w))
    small_shape = (s_h, s_w, shape[2])
    small = build_model(
        family,
        small_shape,
        levels,
        num_classes=num_classes,
        **{**kwargs, **(small_kwargs or {})},
    )
    large = build_model(
        family,
        shape,
        levels,
        num_classes=num_classes,
        condition_shape=small_shape,
        **{**kwargs, **(large_kwargs or {})},
    )
    return MultiScale(small, large)


def stage_dataset(dataset, stage, small_size):
    """A data set of `(x, x)` or `((x, labels), x)` batches for one stage.

    Args:
        dataset: batches from `pixel_models.data.get_datasets`.
        stage: `"small"` (the subsampled images alone) or `"large"` (the
            images with their small image as a last input).
        small_size: s, or `(s_h, s_w)`.
    """
    if stage not in ("small", "large"):
        raise ValueError(
            f"stage must be 'small' or 'large'. Received: stage={stage!r}"
        )
    size = _size_pair(small_size, "small_size")

    def to_stage(inputs, x):
        labels = None
        if isinstance(inputs, (tuple, list)):
            inputs, labels = inputs
        small = subsample(inputs, size)
        if stage == "small":
            return (small if labels is None else (small, labels)), small
        if labels is None:
            return (inputs, small), x
        return (inputs, labels, small), x

    return dataset.map(to_stage)


__all__ = [
    "MultiScale",
    "build_multiscale",
    "conditional_loss",
    "sample_given_small",
    "stage_dataset",
    "subsample",
]
