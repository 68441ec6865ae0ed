import itertools
import math

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from pixel_models.quality.statistics import (
    artifact_rate,
    frechet_distance,
    inception_score,
    kernel_distance,
    memorisation_ratio,
    pixel_statistics,
    precision_recall,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


# Frechet distance.


def test_frechet_distance_matches_closed_form_for_diagonal_covariances():
    # Columns 1-3 of an 8x8 Hadamard matrix are orthogonal and sum to 0, so
    # the sample means are exactly mu and the sample covariances exactly
    # diag(scale^2 * 8 / 7): the closed form holds for the sample values.
    columns = scipy.linalg.hadamard(8)[:, 1:4].astype(float)
    mu1, scale1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 2.0, 3.0])
    mu2, scale2 = np.array([0.5, 1.0, 1.0]), np.array([2.0, 0.5, 3.0])
    real = mu1 + columns * scale1
    fake = mu2 + columns * scale2
    var1, var2 = scale1**2 * 8 / 7, scale2**2 * 8 / 7
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(
        var1 + var2 - 2 * np.sqrt(var1 * var2)
    )
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_eigenvalue_computation():
    # Tr sqrtm(S1 S2) = sum of the square roots of the eigenvalues of the
    # symmetric sqrt(S1) S2 sqrt(S1): an independent route through eigh.
    rng = _rng(1)
    real = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4))
    fake = rng.normal(loc=0.3, size=(60, 4)) @ rng.normal(size=(4, 4))
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    values, vectors = np.linalg.eigh(s1)
    root1 = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    trace_root = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ s2 @ root1)))
    diff = real.mean(axis=0) - fake.mean(axis=0)
    expected = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_root
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_large_gaussian_samples_near_population_value():
    rng = _rng(2)
    mu1, var1 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 4.0, 0.25])
    mu2, var2 = np.array([1.0, 1.0, 0.0]), np.array([4.0, 1.0, 0.25])
    real = mu1 + rng.normal(size=(20000, 3)) * np.sqrt(var1)
    fake = mu2 + rng.normal(size=(20000, 3)) * np.sqrt(var2)
    population = np.sum((mu1 - mu2) ** 2) + np.sum(
        var1 + var2 - 2 * np.sqrt(var1 * var2)
    )
    assert population == pytest.approx(7.0)
    assert frechet_distance(real, fake) == pytest.approx(population, abs=0.1)


def test_frechet_distance_identical_symmetric_non_negative():
    rng = _rng(3)
    real = rng.normal(size=(100, 6))
    fake = rng.normal(scale=1.5, size=(80, 6))
    assert abs(frechet_distance(real, real)) < 1e-6
    forward = frechet_distance(real, fake)
    assert forward > 0
    assert frechet_distance(fake, real) == pytest.approx(forward, rel=1e-9)


def test_frechet_distance_handles_fewer_samples_than_features():
    rng = _rng(4)
    value = frechet_distance(rng.normal(size=(5, 10)), rng.normal(size=(5, 10)))
    assert isinstance(value, float) and np.isfinite(value) and value > 0


def test_frechet_distance_retries_with_eps_when_sqrtm_not_finite(monkeypatch):
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def flaky_sqrtm(matrix):
        calls.append(matrix)
        if len(calls) == 1:
            return np.full_like(matrix, np.nan)
        return real_sqrtm(matrix)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    rng = _rng(5)
    real, fake = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    assert np.isfinite(frechet_distance(real, fake))
    assert len(calls) == 2
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    eps = 1e-6 * np.eye(3)
    np.testing.assert_allclose(calls[1], (s1 + eps) @ (s2 + eps))


def test_frechet_distance_rejects_large_imaginary_part(monkeypatch):
    def complex_sqrtm(matrix):
        return matrix + 1j * np.eye(matrix.shape[0])

    monkeypatch.setattr(scipy.linalg, "sqrtm", complex_sqrtm)
    rng = _rng(6)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)))


def test_frechet_distance_drops_small_imaginary_part(monkeypatch):
    real_sqrtm = scipy.linalg.sqrtm

    def nearly_real_sqrtm(matrix):
        return real_sqrtm(matrix) + 1e-8j

    rng = _rng(7)
    real, fake = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    expected = frechet_distance(real, fake)
    monkeypatch.setattr(scipy.linalg, "sqrtm", nearly_real_sqrtm)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_bad_inputs():
    rng = _rng(8)
    with pytest.raises(
        ValueError, match=r"same number of features.*\(10, 3\).*\(10, 4\)"
    ):
        frechet_distance(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(ValueError, match="fake_features must hold at least 2"):
        frechet_distance(rng.normal(size=(10, 3)), rng.normal(size=(1, 3)))
    with pytest.raises(ValueError, match="real_features must be a 2-D"):
        frechet_distance(rng.normal(size=(10,)), rng.normal(size=(10, 1)))
    bad = rng.normal(size=(10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="real_features must hold only finite"):
        frechet_distance(bad, rng.normal(size=(10, 3)))


# Kernel distance.


def _direct_unbiased_mmd2(x, y):
    m, d = x.shape

    def kernel(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b, strict=True)) / d + 1) ** 3

    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2)]
    xx = sum(kernel(x[i], x[j]) for i, j in pairs if i != j)
    yy = sum(kernel(y[i], y[j]) for i, j in pairs if i != j)
    xy = sum(kernel(x[i], y[j]) for i, j in pairs)
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kernel_distance_one_whole_subset_matches_double_loop():
    rng = _rng(10)
    real = rng.normal(size=(12, 5))
    fake = rng.normal(loc=0.5, scale=1.3, size=(12, 5))
    mean, std = kernel_distance(real, fake, num_subsets=1, subset_size=12)
    # A whole-set subset is a permutation, and MMD^2 ignores order.
    assert mean == pytest.approx(_direct_unbiased_mmd2(real, fake), rel=1e-10)
    assert std == 0.0


def test_kernel_distance_mean_and_std_over_subsets():
    rng = _rng(11)
    real = rng.normal(size=(30, 4))
    fake = rng.normal(loc=0.5, size=(25, 4))
    mean, std = kernel_distance(
        real, fake, num_subsets=4, subset_size=10, seed=3
    )
    draws = np.random.default_rng(3)
    estimates = []
    for _ in range(4):
        x = real[draws.choice(30, 10, replace=False)]
        y = fake[draws.choice(25, 10, replace=False)]
        estimates.append(_direct_unbiased_mmd2(x, y))
    assert mean == pytest.approx(np.mean(estimates), rel=1e-10)
    assert std == pytest.approx(np.std(estimates), rel=1e-10)
    assert std > 0


def test_kernel_distance_of_a_set_against_itself_is_near_zero():
    rng = _rng(12)
    real = rng.normal(size=(400, 8))
    shifted = real + 1.0
    same, _ = kernel_distance(real, real, num_subsets=10, subset_size=200)
    different, _ = kernel_distance(
        real, shifted, num_subsets=10, subset_size=200
    )
    assert different > 1.0
    assert abs(same) < 0.01 * different


def test_kernel_distance_bad_inputs():
    rng = _rng(13)
    real, fake = rng.normal(size=(20, 3)), rng.normal(size=(30, 3))
    with pytest.raises(
        ValueError, match=r"subset_size=50.*\b20 samples.*\b30 samples"
    ):
        kernel_distance(real, fake, subset_size=50)
    with pytest.raises(
        ValueError, match=r"subset_size=25.*\b30 samples.*\b20 samples"
    ):
        kernel_distance(fake, real, subset_size=25)
    with pytest.raises(ValueError, match="subset_size must be an integer >= 2"):
        kernel_distance(real, fake, subset_size=1)
    with pytest.raises(ValueError, match="num_subsets=0"):
        kernel_distance(real, fake, num_subsets=0, subset_size=10)
    with pytest.raises(ValueError, match="same number of features"):
        kernel_distance(real, rng.normal(size=(30, 4)), subset_size=10)


# Inception score.


def test_inception_score_of_even_one_hot_rows_is_number_of_classes():
    probabilities = np.eye(7)[np.arange(70) % 7]
    mean, std = inception_score(probabilities, splits=1)
    assert mean == pytest.approx(7.0, rel=1e-12)
    assert std == 0.0


def test_inception_score_of_uniform_rows_is_one():
    mean, std = inception_score(np.full((20, 5), 0.2), splits=4)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_direct_kl_computation():
    rng = _rng(14)
    probabilities = rng.dirichlet(np.full(6, 0.5), size=23)
    probabilities[::4, 2] = 0.0  # Zero terms must contribute 0.
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    bounds = [0, 8, 16, 23]  # np.array_split's chunks of 23 rows in 3.
    scores = []
    for start, stop in itertools.pairwise(bounds):
        rows = probabilities[start:stop].tolist()
        marginal = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        kls = [
            sum(
                p * math.log(p / q)
                for p, q in zip(row, marginal, strict=True)
                if p > 0
            )
            for row in rows
        ]
        scores.append(math.exp(sum(kls) / len(kls)))
    mean, std = inception_score(probabilities, splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_inception_score_bad_inputs():
    good = np.full((6, 3), 1 / 3)
    with pytest.raises(ValueError, match="class_probabilities must be a 2-D"):
        inception_score(np.full(6, 1 / 6))
    with pytest.raises(ValueError, match="sum to 1.*Received"):
        inception_score(np.full((6, 3), 0.3), splits=2)
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(np.array([[1.5, -0.5], [0.5, 0.5]]), splits=1)
    with pytest.raises(ValueError, match="splits must be an integer >= 1"):
        inception_score(good, splits=0)
    with pytest.raises(ValueError, match=r"splits=7.*\(6, 3\)"):
        inception_score(good, splits=7)


# Precision and recall.


def _brute_force_precision_recall(real, fake, k):
    def radii(features):
        distances = cdist(features, features)
        np.fill_diagonal(distances, np.inf)
        return np.sort(distances, axis=1)[:, k - 1]

    def share_inside(queries, centres, centre_radii):
        inside = cdist(queries, centres) <= centre_radii[None, :]
        return np.mean(np.any(inside, axis=1))

    return (
        share_inside(fake, real, radii(real)),
        share_inside(real, fake, radii(fake)),
    )


def test_precision_recall_hand_computed_one_dimensional_case():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [4.0], [10.0]])
    # Real radii (k=1) are all 1: 0.5 is inside, 4 is on the edge of 3's
    # ball (inside: the balls are closed), 10 is outside. Fake radii are
    # 3.5, 3.5 and 6: every real point is within 3.5 of 0.5.
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(2 / 3)
    assert recall == 1.0


def test_precision_recall_of_a_set_against_itself_is_one():
    real = _rng(15).normal(size=(60, 5))
    assert precision_recall(real, real, k=3) == (1.0, 1.0)


def test_precision_recall_of_far_apart_clusters_is_zero():
    rng = _rng(16)
    real = rng.normal(size=(40, 4))
    fake = rng.normal(loc=100.0, size=(30, 4))
    assert precision_recall(real, fake) == (0.0, 0.0)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("batch_size", [7, 1024])
def test_precision_recall_matches_brute_force(k, batch_size):
    rng = _rng(17)
    real = rng.normal(size=(40, 5))
    fake = rng.normal(loc=0.4, scale=1.4, size=(33, 5))
    expected = _brute_force_precision_recall(real, fake, k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1
    result = precision_recall(real, fake, k=k, batch_size=batch_size)
    assert result == pytest.approx(expected, abs=1e-15)


def test_precision_recall_bad_inputs():
    rng = _rng(18)
    real, fake = rng.normal(size=(10, 3)), rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match="k=5.*fake_features has 5 samples"):
        precision_recall(real, fake, k=5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        precision_recall(real, fake, k=0)
    with pytest.raises(
        ValueError, match=r"same number of features.*\(10, 3\).*\(5, 4\)"
    ):
        precision_recall(real, rng.normal(size=(5, 4)))


# Memorisation.


def test_memorisation_of_copies_is_zero_ratio_and_all_copies():
    rng = _rng(19)
    train = rng.integers(0, 256, size=(30, 4, 4, 1))
    test = rng.integers(0, 256, size=(10, 4, 4, 1))
    result = memorisation_ratio(train[[3, 3, 7, 29]], train, test)
    assert result["copies"] == 1.0
    assert result["ratio"] == 0.0
    assert result["sample_nn_median"] == 0.0
    assert result["test_copies"] == 0.0
    assert result["test_nn_median"] > 0


@pytest.mark.parametrize("batch_size", [7, 1024])
def test_memorisation_matches_brute_force(batch_size):
    rng = _rng(20)
    train = rng.normal(size=(25, 3, 3))
    test = rng.normal(size=(11, 3, 3))
    test[4] = train[9]  # One test image that is also a training image.
    samples = rng.normal(scale=0.8, size=(17, 3, 3))
    flat_train = train.reshape(25, -1)
    sample_nn = cdist(samples.reshape(17, -1), flat_train).min(axis=1)
    test_nn = cdist(test.reshape(11, -1), flat_train).min(axis=1)
    result = memorisation_ratio(samples, train, test, batch_size=batch_size)
    assert result["sample_nn_median"] == pytest.approx(np.median(sample_nn))
    assert result["test_nn_median"] == pytest.approx(np.median(test_nn))
    assert result["ratio"] == pytest.approx(
        np.median(sample_nn) / np.median(test_nn)
    )
    assert result["copies"] == 0.0
    assert result["test_copies"] == pytest.approx(1 / 11)


def test_memorisation_bad_inputs():
    rng = _rng(21)
    train, test = rng.normal(size=(5, 4, 4)), rng.normal(size=(3, 4, 4))
    with pytest.raises(
        ValueError, match=r"samples.shape=\(2, 4, 5\).*train.shape=\(5, 4, 4\)"
    ):
        memorisation_ratio(rng.normal(size=(2, 4, 5)), train, test)
    with pytest.raises(ValueError, match="test must be a non-empty"):
        memorisation_ratio(train, train, np.zeros((0, 4, 4)))


# Pixel statistics and artifacts.


def test_pixel_statistics_of_hand_made_images():
    samples = np.array([[[0, 1], [2, 3]], [[0, 0], [0, 0]]])
    reference = np.array([[[3, 3], [3, 3]], [[0, 1], [1, 1]]])
    stats = pixel_statistics(samples, reference, levels=4)
    # Mean images [[0, .5], [1, 1.5]] and [[1.5, 2], [2, 2]].
    assert stats["mean_image_l2"] == pytest.approx(math.sqrt(5.75))
    # Level counts [5, 1, 1, 1] and [1, 3, 0, 4] out of 8 sub-pixels.
    assert stats["histogram_tv"] == pytest.approx(0.5 * (4 + 2 + 1 + 3) / 8)
    # Ink shares [0.75, 0] and [1, 0.75]: half the mass moves.
    assert stats["ink_mean_samples"] == pytest.approx(0.375)
    assert stats["ink_mean_reference"] == pytest.approx(0.875)
    assert stats["ink_tv"] == pytest.approx(0.5)
    assert stats["artifact_rate"] == {
        "blank": 0.5,
        "saturated": 0.0,
        "constant_row": 0.0,
        "any": 0.5,
    }
    assert stats["artifact_rate_reference"] == {
        "blank": 0.0,
        "saturated": 0.5,
        "constant_row": 1.0,
        "any": 1.0,
    }


def test_pixel_statistics_of_identical_sets_is_zero():
    images = _rng(22).integers(0, 256, size=(6, 5, 5, 3))
    stats = pixel_statistics(images, images, levels=256)
    assert stats["mean_image_l2"] == 0.0
    assert stats["histogram_tv"] == 0.0
    assert stats["ink_tv"] == 0.0
    assert stats["ink_mean_samples"] == stats["ink_mean_reference"]


def test_ink_histogram_has_twenty_bins_over_unit_interval():
    def images_with_ink(count):
        image = np.zeros((1, 40), dtype=np.int64)
        image[0, :count] = 1
        return image.reshape(1, 5, 8)

    half = images_with_ink(20)  # Ink share 0.5: bin [0.5, 0.55).
    same_bin = images_with_ink(21)  # 0.525: the same bin.
    next_bin = images_with_ink(22)  # 0.55: bin [0.55, 0.6).
    assert pixel_statistics(half, same_bin, levels=2)["ink_tv"] == 0.0
    assert pixel_statistics(half, next_bin, levels=2)["ink_tv"] == 1.0
    full = images_with_ink(40)  # 1.0 falls in the last, closed bin.
    assert pixel_statistics(full, images_with_ink(39), levels=2)["ink_tv"] == 0


def test_artifact_rate_saturation_threshold_is_strictly_above_ninety_percent():
    images = np.full((2, 2, 20), 3)
    images[0, 0, :2] = 0  # 36 of 40 at the top level: exactly 90%.
    images[0, 1, :2] = 0
    images[1, 0, :2] = 0  # 37 of 40: 92.5%.
    images[1, 1, :1] = 0
    rates = artifact_rate(images, levels=4)
    assert rates == {
        "blank": 0.0,
        "saturated": 0.5,
        "constant_row": 0.0,
        "any": 0.5,
    }


def test_artifact_rate_constant_rows_compare_whole_pixels():
    images = np.zeros((4, 3, 2, 3), dtype=np.int64)
    images[0, 1] = [1, 2, 3]  # Both pixels the same colour: constant.
    images[1, 1] = [[1, 1, 1], [2, 2, 2]]  # Each pixel grey, not the same.
    images[2, 1, 0] = [5, 0, 0]  # One dot: not constant.
    # images[3] is blank: its rows are constant but blank rows are normal.
    rates = artifact_rate(images, levels=8)
    assert rates == {
        "blank": 0.25,
        "saturated": 0.0,
        "constant_row": 0.25,
        "any": 0.5,
    }


def test_level_image_bad_inputs():
    good = np.zeros((2, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"samples must hold.*\[0, 3\]"):
        pixel_statistics(good + 4, good, levels=4)
    negative = good.copy()
    negative[1, 2, 0] = -1
    with pytest.raises(ValueError, match=r"reference must hold.*\[-1, 0\]"):
        pixel_statistics(good, negative, levels=4)
    with pytest.raises(ValueError, match="images must hold integer levels"):
        artifact_rate(good + 0.5, levels=4)
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        artifact_rate(good, levels=1)
    with pytest.raises(
        ValueError,
        match=r"samples.shape=\(2, 3, 3\).*reference.shape=\(2, 4, 3\)",
    ):
        pixel_statistics(good, np.zeros((2, 4, 3), dtype=int), levels=4)
    with pytest.raises(ValueError, match="images must be an array of shape"):
        artifact_rate(np.zeros((3, 3)), levels=2)


def test_pixel_statistics_of_colour_images_per_channel():
    # Red everywhere against blue everywhere: the pooled histogram of
    # levels is the same, the per-channel ones are not.
    red = np.zeros((2, 2, 2, 3), "int64")
    red[..., 0] = 3
    blue = np.zeros((2, 2, 2, 3), "int64")
    blue[..., 2] = 3
    stats = pixel_statistics(red, blue, levels=4)
    # Channels R and B each move all their mass; G is the same: 2/3.
    assert stats["histogram_tv"] == pytest.approx(2 / 3)
    # Colour "ink" is the mean intensity: a third of the sub-pixels at 3/3.
    assert stats["ink_mean_samples"] == pytest.approx(1 / 3)
    assert stats["ink_mean_reference"] == pytest.approx(1 / 3)
    grey = pixel_statistics(red[..., :1], blue[..., :1], levels=4)
    assert grey["ink_mean_samples"] == 1 and grey["ink_mean_reference"] == 0
