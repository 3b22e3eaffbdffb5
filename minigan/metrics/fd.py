"""Fréchet distance between two sets of feature vectors (FID with any feature extractor).

Each set is summarised by a Gaussian (mean mu, covariance S); the Fréchet (2-Wasserstein)
distance between N(mu1, S1) and N(mu2, S2) is

    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

S1 S2 is not symmetric, and taking its square root directly (scipy.linalg.sqrtm) can
return complex noise or fail when S1 is singular (fewer samples than features). Instead
we use tr((S1 S2)^(1/2)) = tr((A S2 A)^(1/2)) with A = S1^(1/2): A S2 A is symmetric
positive semi-definite, so its square-root trace is the sum of the square roots of its
eigenvalues (negative round-off clipped to 0). Everything runs in float64 on the host.
"""
import numpy as np


def _as_features(x, name):
    x = np.asarray(x.numpy() if hasattr(x, 'numpy') else x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f'{name} must be a 2-D array (samples, features), got shape {x.shape}: '
                         'flatten each sample first (features.reshape(len(features), -1))')
    if len(x) < 2:
        raise ValueError(f'{name} has {len(x)} sample(s): a covariance needs at least 2')
    if not np.all(np.isfinite(x)):
        raise ValueError(f'{name} contains NaN or inf: check the model that produced the features')
    return x


def feature_statistics(features):
    """(mean, covariance) of a (N, D) feature array, in float64 (covariance with N-1)."""
    x = _as_features(features, 'features')
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s):
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2):
    """tr((sigma1 sigma2)^(1/2)) for symmetric PSD matrices, through a symmetric form."""
    a = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    m = a @ np.asarray(sigma2, dtype=np.float64) @ a
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f'mismatched statistics: means {mu1.shape} and {mu2.shape}, covariances '
                         f'{sigma1.shape} and {sigma2.shape}; both sets need the same feature size')
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))          # negative only by round-off


def fd(features1, features2):
    """Fréchet distance between two feature sets of shape (N1, D) and (N2, D)."""
    x1, x2 = _as_features(features1, 'features1'), _as_features(features2, 'features2')
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f'feature sizes differ: {x1.shape[1]} and {x2.shape[1]}; '
                         'use the same layer of the same evaluator for both sets')
    return frechet_distance(*feature_statistics(x1), *feature_statistics(x2))
