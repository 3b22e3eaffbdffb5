"""Metrics for generative models and classifiers, over NumPy arrays on the host.

GAN sample quality (features and probabilities come from an evaluator classifier):
fd (Fréchet distance), kid (unbiased kernel distance), classifier_score
(exp E KL(p(y|x) || p(y))), mode_count and label_kl (mode coverage).
Classifiers: confusion_matrix, per_class_scores, multilabel_scores, save_confusion_matrix.
"""
from .fd import fd, frechet_distance, feature_statistics, trace_sqrt_product  # noqa: F401
from .kid import kid, mmd2_unbiased, polynomial_kernel  # noqa: F401
from .classifier_score import classifier_score  # noqa: F401
from .modes import mode_count, label_kl, label_histogram  # noqa: F401
from .classification import (confusion_matrix, per_class_scores, multilabel_scores,  # noqa: F401
                             format_scores, confusion_matrix_image, save_confusion_matrix)
from .image_quality import psnr, ssim  # noqa: F401
