"""Training a run: its pieces built from a config (setup.py), the batches (batches.py), the loop (loop.py).

The algorithms' steps are in minigan.gan; the bookkeeping of a run folder in minigan.run_recorder.
"""
from .loop import fit, run_training, train_run  # noqa: F401
from .setup import TrainingSetup, make_optimizer  # noqa: F401
