"""Every sample-quality figure of a set of samples, against a reference.

`Reference` holds the real images a model is judged against (usually the
test set), their features, computed once, and optionally the training
images for the memorisation ratio; `Reference.compare(samples)` gives
every figure as a dict. `sample_quality(model, ...)` draws the samples
and compares them, as `PixelModel.sample_quality` does.
"""

import numpy as np

from pixel_models.quality import features as features_module
from pixel_models.quality import statistics

# The classifier preset of each image shape.
CLASSIFIER_FOR_SHAPE = {
    (28, 28, 1): "mnist_classifier",
    (32, 32, 3): "cifar10_classifier",
}
FEATURE_KINDS = ("classifier", "inception")
# Images compared with the training set for the memorisation ratio (the
# nearest-neighbour search is the costly part; its medians settle well
# before that).
MEMORISATION_IMAGES = 2000


def balanced_labels(model, num_samples):
    """Labels `0, 1, ..., classes - 1, 0, ...` for a class-conditional
    model's samples (every class equally often), else None."""
    from pixel_models import inputs

    classes = inputs.num_classes(model)
    return None if not classes else np.arange(num_samples) % classes


def extractor_for(features, image_shape):
    """The feature extractor that `features` names for images of a shape.

    Args:
        features: `"classifier"` (the project's classifier preset for the
            shape: `mnist_classifier` for 28 x 28 x 1, `cifar10_classifier`
            for 32 x 32 x 3), `"inception"` (InceptionV3, ImageNet), or a
            `FeatureExtractor`.
        image_shape: `(H, W, C)` of the images.

    Returns:
        A `pixel_models.quality.features.FeatureExtractor`.
    """
    if isinstance(features, features_module.FeatureExtractor):
        return features
    if features == "inception":
        return features_module.InceptionFeatures()
    if features != "classifier":
        raise ValueError(
            f"features must be one of {FEATURE_KINDS} or a FeatureExtractor."
            f" Received: features={features!r}"
        )
    name = CLASSIFIER_FOR_SHAPE.get(tuple(image_shape))
    if name is None:
        raise ValueError(
            "features='classifier' needs images of shape "
            f"{' or '.join(map(str, CLASSIFIER_FOR_SHAPE))} (the classifier "
            f"presets'). Received: images of shape {tuple(image_shape)}; "
            "pass features='inception' or a FeatureExtractor."
        )
    return features_module.ClassifierFeatures.from_preset(name)


class Reference:
    """Real images, their features, and what samples are compared with.

    Args:
        images: the reference images (integer levels), usually the test
            set.
        levels: their number of pixel values.
        extractor: a `FeatureExtractor` (see `extractor_for`).
        train_images: the training images, for the memorisation ratio
            (None leaves it out).
        batch_size: images per forward pass of the extractor.
        progress: show progress bars.

    Example:
    >>> reference = Reference(x_test, 2, extractor)  # doctest: +SKIP
    >>> reference.compare(samples)["frechet_distance"]  # doctest: +SKIP
    """

    def __init__(
        self,
        images,
        levels,
        extractor,
        train_images=None,
        batch_size=100,
        progress=False,
    ):
        self.images = np.asarray(images)
        self.levels = levels
        self.extractor = extractor
        # In float64 once: the nearest-neighbour search reads them so for
        # every set of samples.
        self.train_images = (
            None
            if train_images is None
            else np.asarray(train_images, "float64")
        )
        self.batch_size = batch_size
        self.progress = progress
        self.features, self.probabilities = self._extract(self.images)

    def _extract(self, images):
        return self.extractor.features_and_probabilities(
            images,
            levels=self.levels,
            batch_size=self.batch_size,
            progress=self.progress,
        )

    def distances(self, samples, kid_subsets=100, kid_subset_size=1000):
        """The Frechet and kernel distances of `samples`, a dict: the two
        figures a training run watches (`SampleQuality`)."""
        fake = self._extract(self._checked(samples))[0]
        return self._distances(fake, kid_subsets, kid_subset_size)

    def _checked(self, samples):
        samples = np.asarray(samples)
        if samples.shape[1:] != self.images.shape[1:]:
            raise ValueError(
                "samples must have the reference images' shape "
                f"{self.images.shape[1:]}. Received: samples.shape="
                f"{samples.shape}"
            )
        return samples

    def _distances(self, fake, kid_subsets, kid_subset_size):
        size = min(kid_subset_size, len(fake), len(self.features))
        kid, kid_std = statistics.kernel_distance(
            self.features,
            fake,
            num_subsets=kid_subsets,
            subset_size=size,
            seed=0,
        )
        return {
            "frechet_distance": statistics.frechet_distance(
                self.features, fake
            ),
            "kid": kid,
            "kid_std": kid_std,
            "kid_subset_size": int(size),
        }

    def compare(
        self,
        samples,
        labels=None,
        kid_subsets=100,
        kid_subset_size=1000,
        memorisation=True,
    ):
        """Every quality figure of `samples` against this reference.

        Args:
            samples: generated images, `(n, H, W, C)` integer levels.
            labels: for a class-conditional model, the class each sample
                was asked for (gives `class_match` where the extractor's
                classes are the data's).
            kid_subsets: subsets KID averages over.
            kid_subset_size: images per KID subset (at most the smaller
                set's size).
            memorisation: measure the memorisation ratio (where the
                reference has training images).

        Returns:
            A dict of floats: `frechet_distance`, `kid`, `kid_std`,
            `inception_score`, `inception_score_std`, `precision`,
            `recall`, `class_entropy` (of the mean predicted class, in
            nats; the log of the class count when balanced),
            `max_class_share`, `class_match` (conditional), the pixel
            statistics of `statistics.pixel_statistics`, and, with
            training images, `memorisation_ratio`, `sample_nn_median`,
            `test_nn_median`, `copies`, `test_copies`.
        """
        samples = self._checked(samples)
        fake, probs = self._extract(samples)
        score, score_std = statistics.inception_score(
            probs, splits=min(10, len(probs))
        )
        precision, recall = statistics.precision_recall(self.features, fake)
        balance = probs.mean(axis=0)
        result = {
            "num_samples": int(len(samples)),
            "num_reference": int(len(self.images)),
            **self._distances(fake, kid_subsets, kid_subset_size),
            "inception_score": score,
            "inception_score_std": score_std,
            "precision": precision,
            "recall": recall,
            "class_entropy": float(
                -np.sum(balance * np.log(np.maximum(balance, 1e-300)))
            ),
            "max_class_share": float(
                np.max(np.bincount(probs.argmax(-1), minlength=probs.shape[1]))
                / len(probs)
            ),
        }
        if labels is not None and self.extractor.data_classes:
            # The classifier's classes are the data's, so the asked class
            # can be checked (not so for ImageNet's).
            labels = np.asarray(labels).reshape(-1)
            result["class_match"] = float(np.mean(probs.argmax(-1) == labels))
        result.update(
            statistics.pixel_statistics(samples, self.images, self.levels)
        )
        if memorisation and self.train_images is not None:
            n = MEMORISATION_IMAGES
            memo = statistics.memorisation_ratio(
                samples[:n], self.train_images, self.images[:n]
            )
            result["memorisation_ratio"] = memo["ratio"]
            result.update({k: v for k, v in memo.items() if k != "ratio"})
        return result


def sample_quality(
    model,
    reference_images,
    num_samples=1000,
    features="classifier",
    temperature=1.0,
    top_p=None,
    seed=0,
    train_images=None,
    labels=None,
    batch_size=None,
    progress=True,
):
    """Draws samples from `model` and measures them against real images.

    Args:
        model: an autoregressive model of this package.
        reference_images: real images of the model's shape and levels
            (the test set, usually), or a `Reference` built from them
            (their features computed once for many calls; `features` and
            `train_images` are then the Reference's).
        num_samples: samples to draw.
        features: `"classifier"`, `"inception"` or a `FeatureExtractor`
            (see `extractor_for`).
        temperature: sampling temperature.
        top_p: nucleus sampling's mass, or None.
        seed: seed of the sampling noise.
        train_images: the training images, for the memorisation ratio.
        labels: for a class-conditional model, the class of each sample;
            None cycles through the classes (`balanced_labels`).
        batch_size: images sampled at once (None: all).
        progress: show progress bars while sampling and extracting.

    Returns:
        The dict of `Reference.compare`.
    """
    from pixel_models import inputs, sampling

    if labels is None:
        labels = balanced_labels(model, num_samples)
    if isinstance(reference_images, Reference):
        reference = reference_images
    else:
        reference = Reference(
            reference_images,
            inputs.model_levels(model),
            extractor_for(features, inputs.image_shape(model)),
            train_images=train_images,
            progress=progress,
        )
    samples = sampling.sample(
        model,
        num_samples,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        labels=labels,
    )
    result = reference.compare(samples, labels=labels)
    result.update({"temperature": temperature, "top_p": top_p})
    return result
