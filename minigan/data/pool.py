"""A process pool for the CPU-heavy parts (drawing the synthetic set, decoding images).

Results come back in job order, so they never depend on the number of workers.
On Linux the workers are forked (no re-import of the user's script); elsewhere
they are spawned. If no pool can be started, the jobs run in this process.
"""
import multiprocessing
import os

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
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context('fork' if 'fork' in methods and os.name == 'posix'
                                      and not _is_macos() else 'spawn')
    try:
        pool = ctx.Pool(workers)
    except (OSError, ValueError, ImportError) as e:
        warn(f'could not start {workers} worker processes ({e}); working in one process')
        return [fn(j) for j in jobs]
    try:
        return pool.map(fn, jobs, chunksize=1)
    finally:
        pool.terminate()
        pool.join()


def _is_macos():
    import sys
    return sys.platform == 'darwin'
