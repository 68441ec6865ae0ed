"""Sample-quality statistics: FID, KID, IS, precision/recall, pixel checks.

Everything here is NumPy and SciPy in float64 and takes arrays: features
from a network (Frechet and kernel distances, precision and recall), class
probabilities (Inception score), or integer-level images (the pixel
statistics, the artifact rates and the memorisation ratio, which need no
network at all). Which network makes the features is the caller's concern.
"""

import numpy as np
import scipy.linalg

# Rows of queries a pairwise-distance block holds: 1024 x 10,000 float64
# is 80 MB, so 10,000 x 10,000 sets of 2048 features fit in memory.
DEFAULT_BATCH_SIZE = 1024
# Added to both covariances' diagonals when their product has no finite
# square root (a singular product, e.g. fewer samples than features).
_SQRTM_EPS = 1e-6
# Largest imaginary part allowed on the diagonal of sqrtm(S1 S2) before the
# result is judged too far from a real matrix to be trusted.
_SQRTM_IMAG_ATOL = 1e-3
# How far a row of class probabilities may sum from 1.
_PROBABILITY_SUM_ATOL = 1e-3
# Bins of the per-image ink-share histogram, over [0, 1].
_INK_BINS = 20
# An image is "saturated" when more than this share of its sub-pixels sit
# at the top level.
_SATURATED_SHARE = 0.9


def _check_int(value, name, minimum):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(
            f"{name} must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _as_features(features, name, min_samples=1):
    """A finite float64 array of shape (n, d) with n >= min_samples."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (num_samples, "
            f"num_features). Received: {name}.shape={features.shape}"
        )
    if features.shape[0] < min_samples:
        raise ValueError(
            f"{name} must hold at least {min_samples} sample(s). "
            f"Received: {name}.shape={features.shape}"
        )
    if features.shape[1] < 1:
        raise ValueError(
            f"{name} must hold at least 1 feature. "
            f"Received: {name}.shape={features.shape}"
        )
    _check_finite(features, name)
    return features


def _check_same_features(real, fake, real_name, fake_name):
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"{real_name} and {fake_name} must have the same number of "
            f"features. Received: {real_name}.shape={real.shape}, "
            f"{fake_name}.shape={fake.shape}"
        )


def _squared_distance_blocks(queries, reference, batch_size):
    """Squared Euclidean distances from queries to reference, in blocks.

    The one pairwise-distance implementation of this module. Uses
    ``||a||^2 + ||b||^2 - 2 a.b`` in float64, clipped at 0 (rounding can
    make it slightly negative), `batch_size` query rows at a time so that
    only a `(batch_size, len(reference))` block is ever held.

    Yields:
        `(start, block)`: `block[i, j]` is the squared distance from
        `queries[start + i]` to `reference[j]`.
    """
    reference_sq = np.einsum("ij,ij->i", reference, reference)
    for start in range(0, queries.shape[0], batch_size):
        chunk = queries[start : start + batch_size]
        chunk_sq = np.einsum("ij,ij->i", chunk, chunk)
        block = chunk @ reference.T
        block *= -2.0
        block += chunk_sq[:, None]
        block += reference_sq[None, :]
        np.maximum(block, 0.0, out=block)
        yield start, block


def _kth_neighbour_sq_radii(features, k, batch_size):
    """Squared distance from each row to its k-th nearest other row."""
    radii = np.empty(features.shape[0])
    for start, block in _squared_distance_blocks(
        features, features, batch_size
    ):
        rows = np.arange(block.shape[0])
        # A sample is not its own neighbour.
        block[rows, start + rows] = np.inf
        radii[start : start + block.shape[0]] = np.partition(
            block, k - 1, axis=1
        )[:, k - 1]
    return radii


def _share_within_balls(queries, centres, sq_radii, batch_size):
    """Share of queries within (<=) the ball of at least one centre."""
    inside = 0
    for _, block in _squared_distance_blocks(queries, centres, batch_size):
        inside += int(np.sum(np.any(block <= sq_radii[None, :], axis=1)))
    return inside / queries.shape[0]


def _nearest_distances(queries, reference, batch_size):
    """Euclidean distance from each query row to its nearest reference row.

    The nearest row is found from the blocked squared distances; the
    distance to it is then recomputed directly from the difference, so an
    exact copy is at distance exactly 0.
    """
    nearest = np.empty(queries.shape[0], dtype=np.int64)
    for start, block in _squared_distance_blocks(
        queries, reference, batch_size
    ):
        nearest[start : start + block.shape[0]] = np.argmin(block, axis=1)
    return np.linalg.norm(queries - reference[nearest], axis=1)


def frechet_distance(real_features, fake_features):
    """Frechet distance between Gaussians fitted to two feature sets (FID).

    Heusel et al. 2017, Eq. 6:
    `||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))`, with the sample means
    and the unbiased (`ddof=1`) sample covariances. Where `sqrtm(S1 S2)` is
    not finite (a singular product), `1e-6 * I` is added to both
    covariances and the root taken again; a small imaginary part left by
    rounding is dropped.

    Args:
        real_features: array of shape `(n_real, d)`, `n_real >= 2`.
        fake_features: array of shape `(n_fake, d)`, `n_fake >= 2`.

    Returns:
        The distance, a Python float (0 for identical sets, up to rounding).

    Raises:
        ValueError: for inputs that are not 2-D, hold fewer than 2 samples
            or non-finite values, or differ in feature size; or when
            `sqrtm(S1 S2)` has an imaginary diagonal part above `1e-3`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(500, 4))
    >>> fake = rng.normal(loc=1.0, size=(500, 4))
    >>> 3.5 < frechet_distance(real, fake) < 4.5
    True
    """
    # A covariance needs at least 2 samples.
    real = _as_features(real_features, "real_features", min_samples=2)
    fake = _as_features(fake_features, "fake_features", min_samples=2)
    _check_same_features(real, fake, "real_features", "fake_features")

    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    sigma1 = np.atleast_2d(np.cov(real, rowvar=False))
    sigma2 = np.atleast_2d(np.cov(fake, rowvar=False))

    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = _SQRTM_EPS * np.eye(sigma1.shape[0])
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        diagonal = np.diagonal(covmean)
        if not np.allclose(diagonal.imag, 0, atol=_SQRTM_IMAG_ATOL):
            raise ValueError(
                "The square root of the product of the covariances of "
                "real_features and fake_features has an imaginary diagonal "
                f"part above {_SQRTM_IMAG_ATOL} (the covariances are "
                "numerically too far from positive semi-definite, often "
                "from too few samples for the feature size). Received: "
                f"max |imag| = {np.max(np.abs(diagonal.imag)):.3g}, "
                f"real_features.shape={real.shape}, "
                f"fake_features.shape={fake.shape}"
            )
        covmean = covmean.real

    diff = mu1 - mu2
    return float(
        diff @ diff
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * np.trace(covmean)
    )


def _unbiased_mmd2(x, y):
    """Unbiased MMD^2 with the kernel (x.y / d + 1) ** 3 (Binkowski 2018)."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    # The unbiased estimator leaves out k(x_i, x_i) and k(y_i, y_i).
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.mean()


def kernel_distance(
    real_features, fake_features, num_subsets=100, subset_size=1000, seed=0
):
    """Kernel Inception Distance: unbiased MMD^2, averaged over subsets.

    Binkowski et al. 2018: the unbiased squared maximum mean discrepancy
    with the cubic polynomial kernel `k(x, y) = (x.y / d + 1) ** 3`,
    `d` the feature size:
    `sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
    - 2 mean_{i,j} k(x_i, y_j)`. It is computed on `num_subsets` pairs of
    subsets of `subset_size` rows, each drawn without replacement,
    independently from each set, with `np.random.default_rng(seed)`.

    Args:
        real_features: array of shape `(n_real, d)`.
        fake_features: array of shape `(n_fake, d)`.
        num_subsets: number of subset pairs, `>= 1`.
        subset_size: rows in each subset, `>= 2` and at most
            `min(n_real, n_fake)`.
        seed: seed of the subset draws.

    Returns:
        `(mean, std)`: Python floats, the mean and the standard deviation
        (`ddof=0`) of the estimate over the subsets. The estimate is
        unbiased, so it can be slightly negative for matching sets.

    Raises:
        ValueError: for inputs that are not 2-D, hold non-finite values or
            differ in feature size, or for a bad `num_subsets` or
            `subset_size`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(200, 8))
    >>> fake = rng.normal(loc=2.0, size=(200, 8))
    >>> mean, std = kernel_distance(real, fake, num_subsets=5, subset_size=100)
    >>> mean > 1.0
    True
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    _check_same_features(real, fake, "real_features", "fake_features")
    num_subsets = _check_int(num_subsets, "num_subsets", 1)
    subset_size = _check_int(subset_size, "subset_size", 2)
    if subset_size > min(real.shape[0], fake.shape[0]):
        raise ValueError(
            "subset_size must be at most the size of each set. Received: "
            f"subset_size={subset_size}, real_features has "
            f"{real.shape[0]} samples, fake_features has "
            f"{fake.shape[0]} samples"
        )

    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        x = real[rng.choice(real.shape[0], subset_size, replace=False)]
        y = fake[rng.choice(fake.shape[0], subset_size, replace=False)]
        estimates[i] = _unbiased_mmd2(x, y)
    return float(np.mean(estimates)), float(np.std(estimates))


def inception_score(class_probabilities, splits=10):
    """Inception score: exp of the mean KL(p(y|x) || p(y)), over splits.

    Salimans et al. 2016: the rows are split into `splits` contiguous
    chunks (`np.array_split`); in each, `p(y)` is the chunk's mean row and
    the score is `exp(mean_x KL(p(y|x) || p(y)))`. Terms with
    `p(y|x) = 0` contribute 0.

    Args:
        class_probabilities: array of shape `(n, num_classes)`, rows of
            non-negative probabilities that sum to 1 (within `1e-3`).
        splits: number of chunks, from 1 to `n`.

    Returns:
        `(mean, std)`: Python floats, the mean and the standard deviation
        (`ddof=0`) of the chunks' scores; between 1 and `num_classes`.

    Raises:
        ValueError: for an input that is not 2-D, has negative entries or
            rows that do not sum to 1, or for a bad `splits`.

    Example:

    >>> probabilities = np.eye(10)[np.arange(100) % 10]
    >>> mean, std = inception_score(probabilities, splits=1)
    >>> round(mean, 6), std
    (10.0, 0.0)
    """
    probabilities = np.asarray(class_probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] < 1:
        raise ValueError(
            "class_probabilities must be a 2-D array of shape "
            "(num_samples, num_classes) with at least one row. "
            f"Received: class_probabilities.shape={probabilities.shape}"
        )
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError(
            "class_probabilities must hold finite, non-negative values. "
            f"Received: min={np.min(probabilities)!r}"
        )
    sums = probabilities.sum(axis=1)
    if not np.all(np.abs(sums - 1.0) <= _PROBABILITY_SUM_ATOL):
        worst = sums[np.argmax(np.abs(sums - 1.0))]
        raise ValueError(
            "class_probabilities rows must each sum to 1 (within "
            f"{_PROBABILITY_SUM_ATOL}). Received: a row summing to {worst!r}"
        )
    splits = _check_int(splits, "splits", 1)
    if splits > probabilities.shape[0]:
        raise ValueError(
            "splits must be at most the number of rows of "
            f"class_probabilities. Received: splits={splits}, "
            f"class_probabilities.shape={probabilities.shape}"
        )

    scores = []
    for chunk in np.array_split(probabilities, splits):
        marginal = chunk.mean(axis=0)
        positive = chunk > 0
        # Where p(y|x) > 0, p(y) >= p(y|x) / rows > 0 too: both logs are
        # safe there, and the other terms are 0 * log 0 = 0.
        log_ratio = np.log(np.where(positive, chunk, 1.0)) - np.log(
            np.where(positive, marginal[None, :], 1.0)
        )
        kl = np.sum(np.where(positive, chunk * log_ratio, 0.0), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def precision_recall(
    real_features, fake_features, k=3, batch_size=DEFAULT_BATCH_SIZE
):
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each sample of a set stands for a ball around it whose radius is the
    distance to its k-th nearest neighbour among the *other* samples of its
    set (Sec. 3, Eq. 1-2). Precision is the share of fake samples within
    (`<=`) the ball of at least one real sample; recall is the share of
    real samples within the ball of at least one fake sample. Distances are
    Euclidean, computed `batch_size` rows at a time.

    Args:
        real_features: array of shape `(n_real, d)`.
        fake_features: array of shape `(n_fake, d)`.
        k: the neighbour that sets the radii, `1 <= k < n` for each set.
        batch_size: rows of each block of pairwise distances.

    Returns:
        `(precision, recall)`: Python floats in [0, 1].

    Raises:
        ValueError: for inputs that are not 2-D, hold non-finite values or
            differ in feature size, or for a bad `k` or `batch_size`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(100, 4))
    >>> precision_recall(real, real)
    (1.0, 1.0)
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    _check_same_features(real, fake, "real_features", "fake_features")
    k = _check_int(k, "k", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    for name, features in (("real_features", real), ("fake_features", fake)):
        if k >= features.shape[0]:
            raise ValueError(
                "k must be smaller than the number of samples in each set "
                f"(a sample is not its own neighbour). Received: k={k}, "
                f"{name} has {features.shape[0]} samples"
            )

    # Squared distances throughout: d <= r exactly when d^2 <= r^2.
    real_radii = _kth_neighbour_sq_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_sq_radii(fake, k, batch_size)
    precision = _share_within_balls(fake, real, real_radii, batch_size)
    recall = _share_within_balls(real, fake, fake_radii, batch_size)
    return float(precision), float(recall)


def _as_level_images(images, levels, name):
    """`images` as int64, checked: rank 3 or 4, integer levels in range."""
    images = np.asarray(images)
    if images.dtype == bool:
        images = images.astype(np.int64)
    if images.ndim not in (3, 4) or images.shape[0] < 1:
        raise ValueError(
            f"{name} must be an array of shape (n, H, W) or (n, H, W, C) "
            f"with n >= 1. Received: {name}.shape={images.shape}"
        )
    if images.size and not np.all(np.isfinite(images)):
        raise ValueError(
            f"{name} must hold only finite values. Received: "
            f"{int(np.sum(~np.isfinite(images)))} NaN or infinite values"
        )
    if images.size and np.any(images != np.round(images)):
        raise ValueError(
            f"{name} must hold integer levels in [0, {levels - 1}]. "
            "Received: non-integer values"
        )
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    if low < 0 or high > levels - 1:
        raise ValueError(
            f"{name} must hold integer levels in [0, levels - 1] = "
            f"[0, {levels - 1}]. Received: values in [{low}, {high}] "
            f"with levels={levels}"
        )
    return images.astype(np.int64)


def _with_channels(images):
    """(n, H, W) images as (n, H, W, 1); (n, H, W, C) ones unchanged."""
    return images[..., None] if images.ndim == 3 else images


def _check_levels(levels):
    return _check_int(levels, "levels", 2)


def _artifact_flags(images, levels):
    """Per-image blank, saturated and constant-row flags of (n, H, W, C)."""
    flat = images.reshape(images.shape[0], -1)
    blank = np.all(flat == 0, axis=1)
    saturated = np.mean(flat == levels - 1, axis=1) > _SATURATED_SHARE
    # A row is constant when each of its pixels equals its first pixel in
    # every channel; blank rows are normal (MNIST's margins) and excluded.
    constant = np.all(images == images[:, :, :1, :], axis=(2, 3))
    nonzero = np.any(images != 0, axis=(2, 3))
    constant_row = np.any(constant & nonzero, axis=1)
    return blank, saturated, constant_row


def artifact_rate(images, levels):
    """Shares of images showing common failure modes of image models.

    The definitions, per image:

    - `"blank"`: every sub-pixel is 0.
    - `"saturated"`: more than 90% of the sub-pixels equal `levels - 1`.
    - `"constant_row"`: at least one row is constant and not blank: all of
      its pixels are identical (the same value in every channel) and at
      least one of its sub-pixels is non-zero, e.g. a stripe of full ink or
      of one colour. All-zero rows are normal (MNIST's margins) and do not
      count. Images one pixel wide have only constant rows, so this flags
      every one of them that is not blank.
    - `"any"`: at least one of the three.

    Args:
        images: integer levels, of shape `(n, H, W)` or `(n, H, W, C)`,
            values in `[0, levels - 1]`.
        levels: number of intensity levels, `>= 2` (2 for binarized MNIST,
            256 for 8-bit images).

    Returns:
        A dict of Python floats in [0, 1]: the share of images with each
        flag, keyed `"blank"`, `"saturated"`, `"constant_row"` and
        `"any"`.

    Raises:
        ValueError: for a bad `levels`, or `images` of the wrong rank or
            with values that are not integer levels in range.

    Example:

    >>> images = np.zeros((4, 8, 8), dtype="int32")
    >>> images[1, 3, :] = 255  # A white stripe.
    >>> images[2, 2, 2] = 128  # A single dot: no artifact.
    >>> artifact_rate(images, levels=256)
    {'blank': 0.5, 'saturated': 0.0, 'constant_row': 0.25, 'any': 0.75}
    """
    levels = _check_levels(levels)
    images = _with_channels(_as_level_images(images, levels, "images"))
    blank, saturated, constant_row = _artifact_flags(images, levels)
    return {
        "blank": float(np.mean(blank)),
        "saturated": float(np.mean(saturated)),
        "constant_row": float(np.mean(constant_row)),
        "any": float(np.mean(blank | saturated | constant_row)),
    }


def _total_variation(p, q):
    return float(0.5 * np.sum(np.abs(p - q)))


def pixel_statistics(samples, reference, levels):
    """Network-free statistics comparing samples with reference images.

    Args:
        samples: integer levels, of shape `(n, H, W)` or `(n, H, W, C)`,
            values in `[0, levels - 1]`.
        reference: integer levels of the same image shape (any number of
            images), e.g. test images.
        levels: number of intensity levels, `>= 2`.

    Returns:
        A dict:

        - `"mean_image_l2"`: Euclidean distance, in levels, between the
          mean sample image and the mean reference image (over all
          sub-pixels).
        - `"histogram_tv"`: total variation distance `0.5 * sum |p - q|`
          between the histograms of levels of the samples and of the
          reference, one histogram a channel, averaged over the channels
          (so a colour cast shows).
        - `"ink_mean_samples"`, `"ink_mean_reference"`: the mean, over
          images, of each image's "ink": for grey images the share of
          non-zero pixels; for colour images, where nearly every
          sub-pixel is non-zero, the mean intensity in [0, 1].
        - `"ink_tv"`: total variation distance between the distributions
          of the per-image ink share, each histogrammed on 20 equal bins
          over [0, 1].
        - `"artifact_rate"`, `"artifact_rate_reference"`: the dicts of
          `artifact_rate` for the samples and for the reference.

        All numbers are Python floats.

    Raises:
        ValueError: for a bad `levels`, images of the wrong rank or with
            values that are not integer levels in range, or samples and
            reference of different image shapes.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 2, size=(10, 8, 8))
    >>> stats = pixel_statistics(images, images, levels=2)
    >>> stats["histogram_tv"], stats["ink_tv"], stats["mean_image_l2"]
    (0.0, 0.0, 0.0)
    """
    levels = _check_levels(levels)
    samples = _as_level_images(samples, levels, "samples")
    reference = _as_level_images(reference, levels, "reference")
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(
            "samples and reference must have the same image shape. "
            f"Received: samples.shape={samples.shape}, "
            f"reference.shape={reference.shape}"
        )

    samples, reference = _with_channels(samples), _with_channels(reference)
    mean_diff = samples.mean(axis=0) - reference.mean(axis=0)

    def level_histograms(images):
        flat = images.reshape(-1, images.shape[-1])
        return np.stack(
            [np.bincount(c, minlength=levels) / len(c) for c in flat.T]
        )

    def ink_shares(images):
        flat = images.reshape(images.shape[0], -1)
        if images.shape[-1] == 1:
            return np.mean(flat != 0, axis=1)
        return np.mean(flat, axis=1) / (levels - 1)

    def ink_histogram(shares):
        counts, _ = np.histogram(shares, bins=_INK_BINS, range=(0.0, 1.0))
        return counts / shares.size

    ink_samples = ink_shares(samples)
    ink_reference = ink_shares(reference)
    return {
        "mean_image_l2": float(np.sqrt(np.sum(mean_diff**2))),
        "histogram_tv": _total_variation(
            level_histograms(samples), level_histograms(reference)
        )
        / samples.shape[-1],
        "ink_mean_samples": float(np.mean(ink_samples)),
        "ink_mean_reference": float(np.mean(ink_reference)),
        "ink_tv": _total_variation(
            ink_histogram(ink_samples), ink_histogram(ink_reference)
        ),
        "artifact_rate": artifact_rate(samples, levels),
        "artifact_rate_reference": artifact_rate(reference, levels),
    }


def _check_finite(array, name):
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must hold only finite values. Received: "
            f"{int(np.sum(~np.isfinite(array)))} NaN or infinite value(s)"
        )


def _as_flat_images(images, name):
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 2 or images.shape[0] < 1 or images[0].size < 1:
        raise ValueError(
            f"{name} must be a non-empty array of shape (n, ...) with "
            f"n >= 1. Received: {name}.shape={images.shape}"
        )
    _check_finite(images, name)
    return images.reshape(images.shape[0], -1)


def memorisation_ratio(samples, train, test, batch_size=DEFAULT_BATCH_SIZE):
    """How much closer samples sit to the training set than fresh data.

    For each sample and each test image, the Euclidean distance (over the
    flattened images, in float64) to its nearest training image. The ratio
    of the median sample distance to the median test distance is near 1
    for a model that generalises and well below 1 for one that copies its
    training images (test images are the yardstick: fresh data from the
    same distribution).

    Args:
        samples: array of shape `(n_samples, ...)`, generated images.
        train: array of shape `(n_train, ...)`, the training images.
        test: array of shape `(n_test, ...)`, held-out images.
        batch_size: rows of each block of pairwise distances.

    Returns:
        A dict of Python floats: `"ratio"` (median sample distance over
        median test distance; `inf` where the latter is 0 and the former
        is not, `nan` where both are), `"sample_nn_median"`,
        `"test_nn_median"`, `"copies"` (share of samples at distance
        exactly 0 from a training image) and `"test_copies"` (the same
        for the test images).

    Raises:
        ValueError: for empty inputs, inputs with non-finite values, or
            images of different shapes.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> train = rng.integers(0, 256, size=(20, 4, 4))
    >>> test = rng.integers(0, 256, size=(10, 4, 4))
    >>> result = memorisation_ratio(train[:5], train, test)
    >>> result["ratio"], result["copies"]
    (0.0, 1.0)
    """
    shapes = {
        name: np.shape(array)
        for name, array in (
            ("samples", samples),
            ("train", train),
            ("test", test),
        )
    }
    if len({shape[1:] for shape in shapes.values()}) != 1:
        raise ValueError(
            "samples, train and test must have the same image shape. "
            "Received: "
            + ", ".join(f"{name}.shape={s}" for name, s in shapes.items())
        )
    batch_size = _check_int(batch_size, "batch_size", 1)
    samples = _as_flat_images(samples, "samples")
    train = _as_flat_images(train, "train")
    test = _as_flat_images(test, "test")

    sample_distances = _nearest_distances(samples, train, batch_size)
    test_distances = _nearest_distances(test, train, batch_size)
    sample_median = float(np.median(sample_distances))
    test_median = float(np.median(test_distances))
    if test_median > 0:
        ratio = sample_median / test_median
    else:
        ratio = float("inf") if sample_median > 0 else float("nan")
    return {
        "ratio": float(ratio),
        "sample_nn_median": sample_median,
        "test_nn_median": test_median,
        "copies": float(np.mean(sample_distances == 0)),
        "test_copies": float(np.mean(test_distances == 0)),
    }
