"""The float32 GEMM ceilings of this machine: NumPy's OpenBLAS, minigan's own sgemm and torch.mm
(MKL), on a square product and on the shapes of the conv layers, same threads, median of 10.

    python bench/gemm_ceiling.py --threads 2
"""
import argparse
import time

import numpy as np

SHAPES = [(2048, 2048, 2048),      # square: the BLAS at its best
          (8192, 288, 32),         # classifier 32->32 3x3 forward: rows x K x output channels
          (8192, 1024, 128),       # DCGAN-32 D2 forward, a whole batch
          (512, 1024, 128),        # the same, one batch chunk
          (1024, 576, 64)]


def median_seconds(f, n=10):
    for _ in range(3):
        f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[n // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    import torch
    import minigan as mg
    from minigan import cpu_ext
    mg.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    ext = cpu_ext.ext()
    rng = np.random.default_rng(0)
    print(f'{args.threads} threads; GFLOP/s (2 m n k / median time)')
    print(f'{"m x k x n":>18} {"OpenBLAS":>9} {"own sgemm":>9} {"torch.mm":>9}')
    for m, k, n in SHAPES:
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        gflop = 2 * m * n * k / 1e9
        ext.set_own_sgemm(False)
        blas = median_seconds(lambda: ext.matmul(a, b))
        ext.set_own_sgemm(True)
        own = median_seconds(lambda: ext.matmul(a, b))
        ext.set_own_sgemm(False)
        tm = median_seconds(lambda: torch.mm(ta, tb))
        print(f'{f"{m}x{k}x{n}":>18} {gflop / blas:9.0f} {gflop / own:9.0f} {gflop / tm:9.0f}')


if __name__ == '__main__':
    main()
