"""The base of the model classes: a functional model that knows itself.

Each family is a subclass that builds its graph in `__init__` from its
arguments, as KerasHub's backbones do, and returns exactly those from
`get_config`, so `keras.models.load_model` gives back the class. The
model's levels, class count and conditioning come from that config. The
methods are thin: `generate`, `log_prob` and `complete` call the library
functions (`pixel_models.sampling`, `pixel_models.evaluation`), which keep
working on any compatible model, old plain functional files included.
"""

import contextlib
import sys

import keras

from pixel_models import evaluation, inputs, sampling
from pixel_models.compile_defaults import default_likelihood, make_optimizer


def _shape_list(shape):
    return None if shape is None else [int(d) for d in shape]


class PixelModel(keras.Model):
    """A functional autoregressive image model built from its arguments.

    Subclasses set `family` and call `super().__init__(inputs, outputs,
    arguments=...)` with the dict of their own `__init__` arguments.

    Attributes:
        family: the family name of `pixel_models.models.build_model`.
        image_shape: `(H, W, C)`.
        levels: the number of pixel values.
        num_classes: the class count of a class-conditional model, else
            None.
        condition_shape: the shape of the small image a model is
            conditioned on, else None.
        likelihood: the builder's `output`, `"categorical"` or
            `"logistic_mixture"`; `num_mixtures` the mixture's size.
    """

    family = None

    def __init__(self, inputs, outputs, *, arguments, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        arguments = dict(arguments)
        arguments["input_shape"] = _shape_list(arguments["input_shape"])
        arguments["condition_shape"] = _shape_list(
            arguments.get("condition_shape")
        )
        self._arguments = arguments

    @property
    def image_shape(self):
        return tuple(self._arguments["input_shape"])

    @property
    def levels(self):
        return self._arguments["levels"]

    @property
    def num_classes(self):
        return self._arguments.get("num_classes")

    @property
    def condition_shape(self):
        shape = self._arguments.get("condition_shape")
        return None if shape is None else tuple(shape)

    @property
    def likelihood(self):
        """`"categorical"` or `"logistic_mixture"`: the builder's `output`
        (not `output`, which a Keras model holds its output tensor in)."""
        return self._arguments.get("output", "categorical")

    @property
    def num_mixtures(self):
        """The mixture's component count, None for a categorical output."""
        if self.likelihood == "categorical":
            return None
        from pixel_models.models.common import check_output

        return check_output(self.likelihood, self._arguments["num_mixtures"])

    def get_config(self):
        return {
            **self._arguments,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with the project's defaults.

        Args:
            optimizer: `"auto"`: Adam at 1e-3, gradients clipped to norm 1.
            loss: `"auto"`: `DiscreteNLL()`, the mean NLL per sub-pixel
                (`LogisticMixtureNLL(levels)` for a mixture output).
            metrics: `"auto"`: `[BitsPerDim()]` (for a mixture output,
                `[LogisticMixtureBitsPerDim(levels)]`).
            **kwargs: the other arguments of `keras.Model.compile`.
        """
        if optimizer == "auto":
            optimizer = make_optimizer()
        mixture = self.likelihood == "logistic_mixture"
        loss_default, metrics_default = default_likelihood(
            self.levels if mixture else None
        )
        if loss == "auto":
            loss = loss_default
        if metrics == "auto":
            metrics = metrics_default
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )
        self._build_optimizer()

    def compile_from_config(self, config):
        # Keras skips a custom `compile` when it loads a model; this one
        # takes any argument of `keras.Model.compile`, so the saved
        # compile state (optimizer, loss, metrics) comes back.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """`keras.Model.fit`, with the data checked before any step.

        Arrays are checked at once; a `tf.data.Dataset` batch by batch
        as it comes (`pixel_models.data.check_batches`). Targets and
        images must be integer pixel values in `[0, levels - 1]`, labels
        in `[0, num_classes - 1]`; anything else raises a `ValueError`
        that names the argument, where the loss would have rounded the
        values and trained on them.
        """
        x = self._checked(x, y)
        if isinstance(validation_data, (tuple, list)):
            validation_data = tuple(validation_data)
            self._checked(*validation_data[:2])
        else:
            validation_data = self._checked(validation_data, None)
        with self._check_errors(self._values_before()):
            return super().fit(
                x, y, *args, validation_data=validation_data, **kwargs
            )

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked as by `fit`."""
        x = self._checked(x, y)
        with self._check_errors(self._values_before()):
            return super().evaluate(x, y, *args, **kwargs)

    def _build_optimizer(self):
        """Creates the optimizer's variables at `compile`, eagerly, on
        TensorFlow.

        Keras's TensorFlow trainer (outside a distribution strategy)
        creates them while it traces the first train step, where each
        variable costs about 20 times as long and the step is traced
        twice: for PixelCNN++, even tiny, that was half of the first
        `fit`'s start-up (`benchmarks/first_step.py`). Other backends
        build them eagerly already; a model with layers not yet built is
        left to Keras.
        """
        if (
            keras.backend.backend() != "tensorflow"
            or self.optimizer is None
            or self.optimizer.built
            or not all(layer.built for layer in self._flatten_layers())
        ):
            return
        with self.distribute_strategy.scope():
            self.optimizer.build(self.trainable_variables)

    def _values_before(self):
        """On JAX, every variable and its value before `fit`/`evaluate`.

        JAX's trainer takes the values out of the variables for the run
        and puts them back at its end; a batch that fails its check
        part-way would leave them empty, and the model unusable. These
        are put back then. (JAX arrays are immutable: no copy is made.)
        """
        if keras.backend.backend() != "jax":
            return None
        variables = list(self.variables)
        if self.optimizer is not None:
            if not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)
            variables += list(self.optimizer.variables)
        return [(v, v.value) for v in variables]

    def _checked(self, x, y):
        """`x` checked (arrays) or to be checked (a tf.data.Dataset)."""
        if _is_dataset(x):
            from pixel_models.data import check_batches

            index = None
            if self.condition_shape is not None:
                index = 2 if self.num_classes is not None else 1
            return check_batches(x, self.levels, self.num_classes, index)
        if x is not None and y is not None:
            inputs.check_fit_arrays(self, x, y)
        return x

    @contextlib.contextmanager
    def _check_errors(self, values_before=None):
        """Turns a failed batch check into its `ValueError`, with the
        variables of `_values_before` given back their values."""
        try:
            yield
        except Exception as error:
            if "tensorflow" not in sys.modules:
                raise
            from pixel_models.data import check_failure

            failure = check_failure(error, self.levels, self.num_classes)
            if failure is None:
                raise
            if values_before is not None:
                for variable, value in values_before:
                    variable.assign(value)
                self.reset_metrics()
            raise failure from None

    def generate(
        self,
        num_samples,
        labels=None,
        condition=None,
        temperature=1.0,
        top_p=None,
        seed=None,
    ):
        """Draws `num_samples` images: `pixel_models.sampling.sample`.

        Returns:
            uint8 NumPy array `(num_samples, H, W, C)`.
        """
        return sampling.sample(
            self,
            num_samples,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            labels=labels,
            condition=condition,
        )

    def log_prob(self, images, labels=None, condition=None):
        """log p(x) of each image, in nats: `evaluation.log_prob`.

        Returns:
            float64 NumPy array `(n,)`.
        """
        return evaluation.log_prob(
            self, images, labels=labels, condition=condition
        )

    def complete(self, images, known, **kwargs):
        """Completes partly known images: `pixel_models.sampling.complete`
        (the same keyword arguments).

        Returns:
            uint8 NumPy array `(n, num_completions, H, W, C)`.
        """
        return sampling.complete(self, images, known, **kwargs)

    def sample_quality(
        self,
        reference_images,
        num_samples=1000,
        features="classifier",
        temperature=1.0,
        top_p=None,
        seed=0,
        **kwargs,
    ):
        """Draws samples and measures their quality against real images:
        `pixel_models.quality.sample_quality` (the same keyword
        arguments: `train_images=` adds the memorisation ratio).

        Returns:
            A dict of every figure: `frechet_distance`, `kid`,
            `inception_score`, `precision`, `recall`, pixel statistics,
            ...
        """
        from pixel_models import quality

        return quality.sample_quality(
            self,
            reference_images,
            num_samples=num_samples,
            features=features,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            **kwargs,
        )

    @classmethod
    def from_preset(cls, name, compile=True):
        """Loads the shipped preset `name` (`pixel_models.presets`).

        Called on `PixelModel`, any family; called on a family's class,
        the preset must be of that family.

        Raises:
            ValueError: an unknown preset, or one of another family (the
                message names the class to use).
        """
        from pixel_models import presets

        card = presets.preset_card(name)
        family = card["family"]
        if cls.family is not None and family != cls.family:
            right = MODEL_CLASSES.get(family)
            right = right.__name__ if right else family
            raise ValueError(
                f"Preset {name!r} is a {right} (family {family!r}), not a "
                f"{cls.__name__}: load it with {right}.from_preset({name!r})"
                " or PixelModel.from_preset."
            )
        return presets.load_preset(name, compile=compile)


def _is_dataset(value):
    """True for a `tf.data.Dataset` (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)


# Family name -> class; each family module adds its own.
MODEL_CLASSES = {}


def register_family(cls):
    """Registers a family class with Keras and in `MODEL_CLASSES`."""
    MODEL_CLASSES[cls.family] = cls
    return keras.saving.register_keras_serializable(package="pixel_models")(cls)
