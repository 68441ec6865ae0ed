"""Sample quality: FID, KID, Inception Score, precision and recall,
pixel statistics and memorisation, with the feature extractors they use.

The statistics (`statistics`) work on NumPy feature arrays; the
extractors (`features`) turn images into features: InceptionV3 for
figures comparable with published ones, the project's classifier presets
(`ClassifierFeatures.from_preset("mnist_classifier")`,
`"cifar10_classifier"`) offline. `sample_quality(model, test_images)`
draws samples and gives every figure; `Reference` keeps a reference
set's features for comparing many sample sets.

Example:
>>> import numpy as np
>>> from pixel_models import quality
>>> rng = np.random.default_rng(0)
>>> real, fake = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
>>> quality.frechet_distance(real, fake) < 0.1
True
"""

from pixel_models.quality.evaluate import (
    Reference,
    balanced_labels,
    extractor_for,
    sample_quality,
)
from pixel_models.quality.features import (
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
    to_unit_interval,
)
from pixel_models.quality.statistics import (
    artifact_rate,
    frechet_distance,
    inception_score,
    kernel_distance,
    memorisation_ratio,
    pixel_statistics,
    precision_recall,
)
from pixel_models.quality.store import (
    ClassifierPreset,
    classifier_card,
    list_classifier_presets,
)

__all__ = [
    "ClassifierFeatures",
    "ClassifierPreset",
    "FeatureExtractor",
    "InceptionFeatures",
    "Reference",
    "artifact_rate",
    "balanced_labels",
    "classifier_card",
    "extractor_for",
    "frechet_distance",
    "inception_score",
    "kernel_distance",
    "list_classifier_presets",
    "memorisation_ratio",
    "pixel_statistics",
    "precision_recall",
    "sample_quality",
    "to_unit_interval",
]
