"""Training a run: the loop (loop.py), what it trains with (setup.py), where its batches come from (batches.py).

Who calls whom, top to bottom (each module imports only those below it):

    train.py                 the command: flags -> run_config.new_config -> the pieces below
    training/loop.py         fit(): the loop; run_training(): open the run folder, then fit
    run_recorder.py          the bookkeeping the loop hands each step to (logs, grids, checkpoints)
    gan/trainer.py           one step per algorithm: the D/critic update(s), then G's
    models/, nn/, optim/     the networks and their optimisers
"""
from .loop import fit, run_training, train_run  # noqa: F401
from .setup import TrainingSetup, make_optimizer  # noqa: F401
