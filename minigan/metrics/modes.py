"""Mode coverage from class predictions.

modes:    how many classes make up at least `threshold` (1%) of the predicted labels.
label_kl: KL(p_real || p_gen) between the real label distribution and the distribution
          of labels the evaluator gives the generated samples. A class the generator
          never produces would make this infinite, so both histograms are smoothed by
          half a count per class (Jeffreys' prior): a missing class then costs a large
          but finite amount.
"""
import numpy as np


def _labels(labels, num_classes, name):
    y = np.asarray(labels.numpy() if hasattr(labels, 'numpy') else labels).reshape(-1)
    if y.size == 0:
        raise ValueError(f'{name} is empty')
    if y.dtype.kind not in 'iu':
        raise TypeError(f'{name} must hold integer class indices, got {y.dtype}: '
                        'take argmax over the class axis of the probabilities')
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f'{name} has labels outside [0, {num_classes}): got {y.min()}..{y.max()}')
    return y


def label_histogram(labels, num_classes, smoothing=0.0):
    """Class frequencies (summing to 1), with `smoothing` pseudo-counts added to each class."""
    y = _labels(labels, num_classes, 'labels')
    counts = np.bincount(y, minlength=num_classes).astype(np.float64) + smoothing
    return counts / counts.sum()


def mode_count(labels, num_classes, threshold=0.01):
    """The number of classes predicted for at least `threshold` of the samples."""
    return int((label_histogram(labels, num_classes) >= threshold).sum())


def label_kl(real_labels, generated_labels, num_classes, smoothing=0.5):
    """KL(real label distribution || generated label distribution), in nats."""
    p = label_histogram(real_labels, num_classes, smoothing)
    q = label_histogram(generated_labels, num_classes, smoothing)
    nz = p > 0
    return float(max((p[nz] * (np.log(p[nz]) - np.log(q[nz]))).sum(), 0.0))
