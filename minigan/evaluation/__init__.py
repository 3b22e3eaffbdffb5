"""Judging a trained run: the sample-quality metrics of a generator (sample_metrics.py), the evaluator
classifier they look through (evaluator.py), memorisation (memorisation.py), and the per-class scores
of a classifier run (classifier_run.py). `python -m minigan.evaluate` is their command line."""
from .class_metrics import balanced_labels, format_class_table, per_class_metrics, summary as class_summary  # noqa: F401
from .classifier_run import evaluate_classifier_run  # noqa: F401
from .evaluator import (EvaluateError, TrainingEvaluator, default_cache_dir, evaluator_accuracy,  # noqa: F401
                        get_evaluator, load_evaluator, real_splits, subsample)
from .memorisation import memorisation_figure, nearest_neighbours  # noqa: F401
from .sample_metrics import (METRIC_KEYS, RealReference, compare, evaluate_generator,  # noqa: F401
                             evaluator_outputs)
