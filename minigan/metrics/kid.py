"""Kernel distance (KID, Bińkowski et al. 2018): an unbiased estimate of the squared
maximum mean discrepancy (MMD^2) between two feature sets, with the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3          (d = feature size).

Unbiased means the diagonal terms k(x_i, x_i) are left out of the within-set averages,
so for two samples of one distribution the estimate averages to 0 (single estimates
can be negative). The estimate is averaged over random subsets of both sets, which
keeps the cost at O(subset_size^2) per subset; the spread over subsets is reported too.
"""
import numpy as np

from .fd import _as_features


def polynomial_kernel(x, y, degree=3, gamma=None, coef0=1.0):
    """(gamma x.y + coef0)^degree for every pair of rows; gamma defaults to 1/d."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x, y, degree=3, gamma=None, coef0=1.0):
    """The unbiased MMD^2 estimate between sample sets x (m, d) and y (n, d) (m, n >= 2)."""
    m, n = len(x), len(y)
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid(features1, features2, subsets=100, subset_size=1000, seed=0, return_std=False):
    """Mean unbiased MMD^2 (cubic polynomial kernel) over `subsets` random subsets.

    Each subset draws min(subset_size, N1, N2) rows from each set without replacement.
    Returns the mean, or (mean, std over subsets) with return_std=True.
    """
    x1, x2 = _as_features(features1, 'features1'), _as_features(features2, 'features2')
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f'feature sizes differ: {x1.shape[1]} and {x2.shape[1]}; '
                         'use the same layer of the same evaluator for both sets')
    if subsets < 1:
        raise ValueError(f'subsets must be at least 1, got {subsets}')
    size = min(int(subset_size), len(x1), len(x2))
    if size < 2:
        raise ValueError(f'subset_size {subset_size} is too small: an unbiased MMD needs 2 samples per set')
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(x1[rng.choice(len(x1), size, replace=False)],
                                     x2[rng.choice(len(x2), size, replace=False)])
                       for _ in range(subsets)])
    mean = float(values.mean())
    return (mean, float(values.std())) if return_std else mean
