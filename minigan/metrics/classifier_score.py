"""The classifier score (the Inception Score of Salimans et al. 2016 with any classifier):

    exp( E_x KL( p(y|x) || p(y) ) ),    p(y) = E_x p(y|x).

It is 1 when every sample gets the same prediction (or every prediction is the same
blur), and the number of classes K when predictions are confident (one-hot) and spread
evenly over the classes. 0 log 0 is taken as 0.
"""
import numpy as np


def _as_probs(probs):
    p = np.asarray(probs.numpy() if hasattr(probs, 'numpy') else probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f'probs must be a non-empty (samples, classes) array, got shape {p.shape}')
    if not np.all(np.isfinite(p)) or p.min() < 0 or not np.allclose(p.sum(1), 1, atol=1e-4):
        raise ValueError('probs must be probabilities (non-negative rows summing to 1): '
                         'apply softmax to the logits first')
    return p


def _xlogy_ratio(p, q):
    """p log(p / q) elementwise, 0 where p == 0."""
    out = np.zeros_like(p)
    nz = p > 0
    out[nz] = p[nz] * (np.log(p[nz]) - np.log(np.broadcast_to(q, p.shape)[nz]))
    return out


def classifier_score(probs, splits=1, return_std=False):
    """exp(E KL(p(y|x) || p(y))) of an (N, K) array of class probabilities.

    With splits > 1 the samples are cut into that many equal parts (as the Inception
    Score is usually reported) and the mean over parts is returned, with the standard
    deviation when return_std=True.
    """
    p = _as_probs(probs)
    if not 1 <= splits <= len(p):
        raise ValueError(f'splits must be between 1 and the number of samples ({len(p)}), got {splits}')
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        scores.append(float(np.exp(_xlogy_ratio(part, marginal).sum(axis=1).mean())))
    mean = float(np.mean(scores))
    return (mean, float(np.std(scores))) if return_std else mean
