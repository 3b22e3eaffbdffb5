"""A process pool for the CPU-heavy parts (drawing the synthetic set, decoding images).

Results come back in job order, so they never depend on the number of workers.
On Linux the workers are forked (no re-import of the user's script); elsewhere
they are spawned. If no pool can be started, the jobs run in this process.
MINIGAN_DATA_WORKERS sets the number of workers (1: no pool).
"""
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .errors import warn


def cpu_count():
    """Cores this process may use (MINIGAN_DATA_WORKERS overrides)."""
    env = os.environ.get('MINIGAN_DATA_WORKERS')
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            warn(f'MINIGAN_DATA_WORKERS={env!r} is not an integer; ignored')
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def map_jobs(fn, jobs, workers=None):
    """[fn(job) for job in jobs], spread over `workers` processes (default: all cores)."""
    jobs = list(jobs)
    workers = cpu_count() if workers is None else int(workers)
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [fn(j) for j in jobs]
    # fork on Linux: no re-import of the user's script. Elsewhere spawn; if its workers cannot
    # start (e.g. a script without `if __name__ == "__main__":`), the pool breaks and the jobs
    # run here instead of hanging.
    method = 'fork' if sys.platform.startswith('linux') else 'spawn'
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            return list(pool.map(fn, jobs))
    except (BrokenProcessPool, OSError, PermissionError) as e:
        warn(f'worker processes failed ({type(e).__name__}: {e}); working in one process instead')
        return [fn(j) for j in jobs]
