"""The bookkeeping of a live run: what the training loop hands over after each step.

    run = RunRecorder(cfg, run_dir, setup, resume=False)
    with run.opened():                 # config.json, metrics.jsonl, the latest checkpoint restored, Ctrl-C caught
        record = run.count_step(metrics, seconds, lr)
        run.log_step(record)           # metrics.jsonl, progress bar or log line
        run.sample_grid()              # samples/step_NNNNNN.png from the fixed noise; returns its diversity
        run.end_epoch(test_acc)        # the epoch's means, samples/epoch_NNN.png, checkpoints, plots
        run.save_checkpoint()          # checkpoints/latest.npz, never with a weight that is not finite

Rules it keeps:
- A checkpoint is written only when every weight is finite; a loss or weight that is not
  stops the run (exit status 3) and names the last good checkpoint.
- Ctrl-C (or SIGTERM) finishes the step, saves a checkpoint and stops with exit status 130 (143);
  a second one quits at once.
- A resumed run continues exactly where its checkpoint left it: metrics.jsonl lines and sample
  grids written after that checkpoint (by a run that crashed) are dropped.
"""
import contextlib
import glob
import json
import os
import re
import shlex
import signal
import sys
import time

import numpy as np

from . import checkpoint, errors, runlog
from .atomic import copy_file, write_text
from .backend import get_array_module
from .data import save_grid
from .gan.sampling import generate
from .gan.trainer import NonFiniteLoss, count_correct
from .run_config import UsageError, write_config
from .tensor import tensor

PROG = 'minigan-train'
DIVERSITY_WARN = 0.3                   # warn when samples are < 30 % as diverse as real images ...
DIVERSITY_WARMUP = 200                 # ... after this many steps
REPORT_KEYS = ('loss_d', 'loss_g', 'loss', 'acc', 'd_x', 'wasserstein', 'gp')


def _fmt_time(s):
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f'{h}h{m:02d}m{sec:02d}s' if h else f'{m}m{sec:02d}s'


class RunRecorder:
    """The counters of a run (steps, epochs, per-epoch sums, time) and everything it writes."""

    def __init__(self, cfg, run_dir, setup, resume=False):
        self.cfg, self.run_dir, self.setup, self.resuming = cfg, run_dir, setup, resume
        self.gan = setup.gan
        self.interrupt_requested = False
        self.last_good = None                        # (path, step) of the newest checkpoint
        self._bar = None
        self.step, self.epoch = 0, 0                 # steps done, epochs completed
        self.epoch_sums, self.epoch_steps = {}, 0
        self.elapsed = 0.0                           # seconds spent in training steps, all sessions
        self.records = []
        self.metrics = None

    # ---- printing -------------------------------------------------------------------------------
    def say(self, msg):
        if self._bar is not None:
            self._bar.write(msg)
        else:
            print(msg, flush=True)

    def warn(self, msg):
        if self._bar is not None:
            self._bar.write('warning: ' + msg, file=sys.stderr)
        else:
            print('warning: ' + msg, file=sys.stderr, flush=True)

    # ---- opening and closing the run folder -----------------------------------------------------
    @contextlib.contextmanager
    def opened(self):
        """The run folder ready to train in, with Ctrl-C and SIGTERM caught; the progress bar and
        metrics.jsonl are closed at the end, however the block ends."""
        self._open()
        old_handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:                    # not the main thread: Ctrl-C stays a KeyboardInterrupt
                pass
        try:
            yield self
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self.metrics.close()

    def _open(self):
        os.makedirs(os.path.join(self.run_dir, 'samples'), exist_ok=True)
        metrics_path = os.path.join(self.run_dir, 'metrics.jsonl')
        if self.resuming:
            path, state = checkpoint.load_latest(self.run_dir, say=self.warn)
            if path is None:
                raise UsageError(f'{self.run_dir} has no usable checkpoint to resume from: start the run over '
                                 'with its first command and --restart')
            self.load_state_dict(state, path)
            self.last_good = (path, self.step)
            for f in glob.glob(os.path.join(self.run_dir, 'samples', 'step_*.png')):
                m = re.search(r'step_(\d+)', f)
                if m and int(m.group(1)) > self.step:
                    os.remove(f)                  # grids a crashed run drew after its checkpoint
            self.metrics = runlog.MetricsLog(metrics_path, resume_step=self.step)
            self.records = runlog.read_jsonl(metrics_path)
            self.say(f'resuming {self.run_dir} from {path} at step {self.step} (epoch {self.epoch + 1})')
        else:
            self.metrics = runlog.MetricsLog(metrics_path)
            self.records = []
        write_config(self.run_dir, self.cfg, self.setup.device, self.setup.dataset_info)

    def _on_signal(self, signum, frame):
        if self.interrupt_requested:
            raise KeyboardInterrupt if signum == signal.SIGINT else errors.Terminated()
        self.interrupt_requested = signum
        what = 'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'
        self.say(f'\n{what}: finishing this step, then saving a checkpoint (press Ctrl-C again to quit at once)')

    def finished(self):
        """Are the planned epochs (or --max-steps) done?"""
        return self.epoch >= self.cfg['epochs'] or (self.cfg['max_steps'] and self.step >= self.cfg['max_steps'])

    # ---- the steps ------------------------------------------------------------------------------
    def begin(self):
        """The progress bar (unless --quiet) and the line that says what is trained on what."""
        cfg, s = self.cfg, self.setup
        self._bar = self._progress_bar()
        what = ('conditional GAN' if self.cfg.get('conditional') else 'GAN') if self.gan else (
            f'upscaler x{cfg["scale"]}' if self.setup.sr else 'classifier')
        self.say(f'training {cfg["model"]} ({what}) on {s.dataset_info["name"]}: {len(s.ds)} images '
                 f'{"x".join(map(str, s.ds.image_shape))}, {s.steps_per_epoch} batches of '
                 f'{cfg["batch_size"]} per epoch, {s.planned} steps planned, device {s.device}; '
                 f'run folder {self.run_dir}')
        self._t_begin, self._images = time.perf_counter(), 0

    def _progress_bar(self):
        if self.cfg['quiet']:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=self.setup.planned, initial=self.step, unit='step', dynamic_ncols=True,
                    desc=f'epoch {self.epoch + 1}/{self.cfg["epochs"]}', file=sys.stderr)

    def count_step(self, metrics, seconds, lr):
        """One more step done: its line of metrics.jsonl (not yet written), and the epoch's running sums."""
        self.step += 1
        self.elapsed += seconds
        images = metrics.pop('real_images')
        self._images += images
        record = {'type': 'step', 'epoch': self.epoch + 1, 'step': self.step}
        record.update(metrics)
        record.update(lr=lr, step_time=seconds, images_per_s=images / seconds if seconds > 0 else 0.0,
                      elapsed=self.elapsed)
        for k, v in metrics.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        self.epoch_steps += 1
        return record

    def log(self, record):
        self.records.append(record)
        self.metrics.write(record)

    def log_step(self, record):
        """metrics.jsonl, then the progress bar (or a log line every --log-every steps with --quiet)."""
        self.log(record)
        keys = [k for k in REPORT_KEYS if k in record]
        if self._bar is not None:
            self._bar.set_description(f'epoch {record["epoch"]}/{self.cfg["epochs"]}', refresh=False)
            post = {k: f'{record[k]:.3f}' for k in keys}
            post['img/s'] = f'{record["images_per_s"]:.0f}'
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
        elif self.step % self.cfg['log_every'] == 0 or self.step == 1:
            planned = self.setup.planned
            left = (planned - self.step) * self.elapsed / max(self.step, 1)
            body = ' '.join(f'{k} {record[k]:.4f}' for k in keys)
            self.say(f'epoch {record["epoch"]}/{self.cfg["epochs"]} step {self.step}/{planned} {body} '
                     f'| {record["images_per_s"]:.0f} img/s | eta {_fmt_time(left)}')

    def end_epoch(self, test_acc=None, quality=None):
        """An 'epoch' line (the means of its steps; the classifier's train and test accuracy; an
        upscaler's PSNR and SSIM against bicubic), the epoch's sample grid (a GAN's, an upscaler's
        comparison), checkpoints/epoch_NNN.npz and latest.npz, and the plots."""
        cfg = self.cfg
        self.epoch += 1
        rec = {'type': 'epoch', 'epoch': self.epoch, 'step': self.step, 'steps': self.epoch_steps}
        rec.update({k: v / max(self.epoch_steps, 1) for k, v in self.epoch_sums.items()})
        if self.gan:
            name = f'step_{self.step:06d}.png'
            if self.step % cfg['sample_every'] == 0:          # this step's grid is already drawn
                rec['diversity'] = self.records[-1].get('diversity')
            else:
                rec['diversity'] = self.sample_grid(name)
            copy_file(os.path.join(self.run_dir, 'samples', name),
                      os.path.join(self.run_dir, 'samples', f'epoch_{self.epoch:03d}.png'))
        elif self.setup.sr:
            rec.update(quality)
            self.sr_comparison(f'epoch_{self.epoch:03d}.png')
        else:
            rec['train_acc'] = rec.pop('acc', None)
            rec['test_acc'] = test_acc
        self.log(rec)
        self.epoch_sums, self.epoch_steps = {}, 0
        self.save_checkpoint(epoch_file=True)
        self.write_plots()
        body = ' '.join(f'{k} {v:.4f}' for k, v in rec.items()
                        if k not in ('type', 'epoch', 'step', 'steps') and isinstance(v, float))
        self.say(f'epoch {self.epoch}/{cfg["epochs"]} done at step {self.step}: {body}')
        if self._bar is not None and self.epoch < cfg['epochs']:
            self._bar.set_description(f'epoch {self.epoch + 1}/{cfg["epochs"]}')

    # ---- samples, plots, sample quality --------------------------------------------------------
    def sample_grid(self, name=None):
        """samples/NAME (default step_NNNNNN.png): G on the fixed noise; returns the samples' diversity
        relative to real images, and warns of a mode collapse when it is low."""
        name = name or f'step_{self.step:06d}.png'
        images = generate(self.setup.G, self.setup.fixed_noise, self.setup.fixed_labels)
        path = os.path.join(self.run_dir, 'samples', name)
        save_grid(images, path, nrow=8)
        ratio = runlog.mean_pairwise_distance(images.numpy()) / max(self.setup.real_diversity, 1e-12)
        if self.step >= DIVERSITY_WARMUP and ratio < DIVERSITY_WARN:
            self.warn(f'possible mode collapse at step {self.step}: the fixed-noise samples are only '
                      f'{ratio:.2f} times as diverse as real images (mean pairwise distance); '
                      f'look at {path}')
        return ratio

    def sr_comparison(self, name):
        """samples/NAME: rows bicubic | the upscaler | original, of held-out images."""
        save_grid(self.setup.sr_comparison(), os.path.join(self.run_dir, 'samples', name), nrow=8)

    def sr_report(self):
        """The upscaler's PSNR and SSIM against bicubic now, printed and written to quality.json."""
        q = self.setup.sr_quality()
        q.update(step=self.step, held_out=int(len(self.setup.held_out)), scale=self.cfg['scale'])
        with open(os.path.join(self.run_dir, 'quality.json'), 'w', encoding='utf-8') as f:
            json.dump(q, f, indent=2)
            f.write('\n')
        self.say(f'held-out x{self.cfg["scale"]} at step {self.step}: PSNR {q["psnr"]:.2f} dB (bicubic '
                 f'{q["psnr_bicubic"]:.2f}), SSIM {q["ssim"]:.4f} (bicubic {q["ssim_bicubic"]:.4f}) on '
                 f'{q["held_out"]} images; quality.json')

    def write_plots(self, animation=True):
        """losses.png (and metrics.png with --eval-every); progress.gif too unless animation=False."""
        steps = [r for r in self.records if r.get('type') == 'step']
        epochs = [r for r in self.records if r.get('type') == 'epoch']
        title = f'{self.cfg["model"]} on {self.setup.dataset_info["name"]}'
        runlog.plot_losses(steps, epochs, self.setup.loss_keys, os.path.join(self.run_dir, 'losses.png'),
                           title=title)
        if self.cfg.get('eval_every'):
            evals = [r for r in self.records if r.get('type') == 'eval']
            if evals:
                runlog.plot_metric_history(evals, os.path.join(self.run_dir, 'metrics.png'), title=title)
        if self.gan and animation:
            frames = sorted(glob.glob(os.path.join(self.run_dir, 'samples', 'step_*.png')))
            if frames:
                runlog.make_gif(frames, os.path.join(self.run_dir, 'progress.gif'))

    def score_samples(self, scorer):
        """--eval-every: the sample-quality metrics of G now, as an 'eval' line of metrics.jsonl."""
        t0 = time.perf_counter()
        record = {'type': 'eval', 'epoch': self.epoch + 1, 'step': self.step}
        record.update(scorer(self.setup.G))
        record['eval_time'] = time.perf_counter() - t0
        self.log(record)
        body = ' '.join(f'{k} {record[k]:.4g}' for k in ('fd', 'kid', 'classifier_score', 'modes', 'label_kl'))
        self.say(f'eval at step {self.step}: {body} (floor: fd {record["fd_floor"]:.4g}, '
                 f'kid {record["kid_floor"]:.4g})')

    def confusion(self):
        """confusion.txt and confusion.png of the classifier on its test split (per-class counts when
        multi-label)."""
        s = self.setup
        z, y = s.predict_test()
        classes = list(s.ds.classes)
        acc = count_correct(tensor(z), tensor(y), s.multi_label)
        acc = acc[0] / max(acc[1], 1)
        split = s.test_ds.split or 'test'
        if s.multi_label:
            pred, truth = z > 0, y > 0.5
            matrix = np.stack([(pred & truth).sum(0), (pred & ~truth).sum(0),
                               (~pred & truth).sum(0), (~pred & ~truth).sum(0)], axis=1)
            cols = ['TP', 'FP', 'FN', 'TN']
            title = f'per-class counts on {split} data (label accuracy {acc:.2%})'
        else:
            matrix = runlog.confusion_matrix(y, z.argmax(axis=1), len(classes))
            cols = classes
            title = f'confusion matrix on {split} data (accuracy {acc:.2%})'
        write_text(os.path.join(self.run_dir, 'confusion.txt'), runlog.confusion_text(matrix, classes, cols, title))
        runlog.draw_matrix(matrix, classes, cols, os.path.join(self.run_dir, 'confusion.png'), title,
                           xlabel='predicted' if not s.multi_label else '', ylabel='true')

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self):
        st = {'step': self.step, 'epoch': self.epoch, 'epoch_sums': dict(self.epoch_sums),
              'epoch_steps': self.epoch_steps, 'elapsed': self.elapsed}
        st.update(self.setup.state_dict())
        return st

    def load_state_dict(self, st, path='the checkpoint'):
        self.setup.load_state_dict(st, path)
        self.step, self.epoch = int(st['step']), int(st['epoch'])
        self.epoch_sums, self.epoch_steps = dict(st['epoch_sums']), int(st['epoch_steps'])
        self.elapsed = float(st['elapsed'])

    def _check_weights_finite(self):
        for net in self.setup.nets.values():
            for name, p in net.named_parameters():
                xp = get_array_module(p.array)
                if not bool(xp.isfinite(p.array).all()):
                    raise NonFiniteLoss(f'weight {name}', 'not finite')

    def save_checkpoint(self, epoch_file=False):
        """latest.npz (and epoch_NNN.npz): never with broken weights, never half-written."""
        self._check_weights_finite()
        st = self.state_dict()
        path = checkpoint.save(checkpoint.latest_path(self.run_dir), st)
        if epoch_file:
            checkpoint.save(checkpoint.epoch_path(self.run_dir, self.epoch), st)
        self.last_good = (path, self.step)
        return path

    # ---- the three ways a run ends --------------------------------------------------------------
    def _close_outputs(self):
        if self.gan:
            last = os.path.join(self.run_dir, 'samples', f'step_{self.step:06d}.png')
            if not os.path.exists(last):
                self.sample_grid()
        elif self.setup.sr:
            self.sr_comparison(f'step_{self.step:06d}.png')
            self.sr_report()
        else:
            self.confusion()
        self.write_plots()

    def finish(self):
        """The planned steps are done: a last checkpoint, grid (or confusion matrix) and plots. Status 0."""
        wall = time.perf_counter() - self._t_begin
        if self.step != (self.last_good[1] if self.last_good else -1):
            self.save_checkpoint()
        self._close_outputs()
        rate = self._images / wall if wall > 0 else 0.0
        self.say(f'done: {self.step} steps, {self.epoch} epochs complete, {wall:.0f} s this session '
                 f'({rate:.0f} images/s); outputs in {self.run_dir}')
        return 0

    def stop_interrupted(self):
        """Ctrl-C or SIGTERM: a checkpoint of this step, and how to continue. Status 130 (143 for SIGTERM)."""
        path = self.save_checkpoint()
        self._close_outputs()
        self.say(f'interrupted at step {self.step}: checkpoint saved to {path}; '
                 f'continue with: python -m minigan.train --resume {shlex.quote(self.run_dir)}')
        return errors.TERMINATED if self.interrupt_requested == signal.SIGTERM else errors.INTERRUPTED

    def stop_non_finite(self, e, step):
        """A loss or weight became NaN or Inf at `step`: nothing more is saved. Status 3. The message
        ends with the command that goes on from the last good checkpoint at half the learning rate."""
        lower = f'--lr {self.cfg["lr"] / 2:g}'
        if self.last_good:
            where = (f'the last good checkpoint is {self.last_good[0]} (step {self.last_good[1]}); to go on from '
                     f'it with a lower learning rate: python -m minigan.train --resume '
                     f'{shlex.quote(self.run_dir)} {lower}')
        else:
            where = (f'no checkpoint was written yet: run the same command again with a lower learning rate '
                     f'({lower}); the run starts afresh in {self.run_dir}')
        msg = (f'{PROG}: error: {e.name} became {e.value} at step {step} (epoch {self.epoch + 1}); '
               f'stopped without saving the broken weights; {where}')
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        print(msg, file=sys.stderr, flush=True)
        try:
            self.write_plots()
        except Exception:
            pass
        return errors.NON_FINITE
