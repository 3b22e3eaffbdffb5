"""The training loop: one algorithm step after another, epoch after epoch.

This is the whole algorithm of a run, in the shape of pytorch/examples' dcgan/main.py:

    for each step:                          until the planned epochs or --max-steps are done
        metrics = trainer.step(batches)     gan/trainer.py: D's update(s), then G's (or one classifier batch)
        log the step                        metrics.jsonl, progress bar
        every --sample-every steps:         a grid of samples from a fixed noise batch
        at the end of an epoch:             the epoch's means, checkpoints, plots
        every --checkpoint-every steps:     checkpoints/latest.npz

Where the batches come from and what is built is in setup.py; what is written to
the run folder, and how, is in run_recorder.py (the calls on `run` below).
"""
import time

from ..gan.trainer import NonFiniteLoss
from ..run_lock import claim_existing, claim_new
from ..run_recorder import RunRecorder
from .setup import TrainingSetup


def fit(setup, run, scorer=None):
    """Train until the run is finished, Ctrl-C is pressed or a loss is not finite; returns the exit
    status (0, or 3 for a loss or weight that is not finite). `scorer(G)`, when given, returns the
    sample-quality metrics logged every --eval-every steps."""
    cfg, batches = run.cfg, setup.stream
    run.begin()
    while not run.finished():
        if not batches.active:
            batches.start_epoch()
        setup.schedule_learning_rate(run.step)
        t0 = time.perf_counter()
        try:                                       # gan/trainer.py: D's update(s), then G's
            metrics = setup.trainer.step(setup.source, run.step)
        except NonFiniteLoss as e:                 # raised before the bad loss changed any weight
            return run.stop_non_finite(e, run.step + 1)
        record = run.count_step(metrics, time.perf_counter() - t0, setup.learning_rate())
        draw_samples = setup.gan and run.step % cfg['sample_every'] == 0
        if draw_samples:
            record['diversity'] = run.sample_grid()
        run.log_step(record)
        try:
            if batches.remaining() == 0:           # the epoch is over
                batches.finish_epoch()
                run.end_epoch(**setup.epoch_report())
            elif run.step % cfg['checkpoint_every'] == 0:
                run.save_checkpoint()
        except NonFiniteLoss as e:                 # a weight went bad: the checkpoint was not written
            return run.stop_non_finite(e, run.step)
        if scorer is not None and run.step % cfg['eval_every'] == 0:
            run.score_samples(scorer)
        if draw_samples:
            run.write_plots(animation=False)       # the animation is redrawn once per epoch
        if run.interrupt_requested:                # Ctrl-C: save this step and stop
            return run.stop_interrupted()
    if scorer is not None and run.step % cfg['eval_every'] != 0:
        run.score_samples(scorer)                  # the finished generator is always scored
    return run.finish()


def run_training(setup, run, scorer=None):
    """Open the run folder (restoring its latest checkpoint when resuming), then fit; returns the exit status."""
    with run.opened():
        if run.finished():
            run.say(f'{run.run_dir} already finished at step {run.step}: raise --epochs or --max-steps '
                    'to train further')
            return 0
        return fit(setup, run, scorer)


def train_run(cfg, run_dir, resume=False):
    """`python -m minigan.train` without its command line: train (or resume) the run of a resolved
    config (run_config.new_config) in run_dir, holding its lock; returns the exit status."""
    with (claim_existing(run_dir) if resume else claim_new(run_dir)):
        setup = TrainingSetup(cfg)
        return run_training(setup, RunRecorder(cfg, run_dir, setup, resume))
