"""The direct conv kernel (csrc/direct.cpp) against im2col + GEMM on the same layers, alternating
in one process (minigan._cpu.set_direct), float32, channels-last in and out, median of 12.
set_direct(True) lets conv.cpp take the direct kernel where its rule does (direct_for: 16-64
output channels for the forward, weight gradients under 128K values); on the other layers both
columns run im2col + GEMM, and their ratio shows the noise of the machine.

    python bench/direct_vs_gemm.py --threads 2 --op forward
"""
import argparse
import statistics
import time

import numpy as np

# name: (N, C, H, W, M, k, stride, padding), from shared/spec/models.md
LAYERS = {
    'classifier32/C2 (32->32)': (128, 32, 32, 32, 32, 3, 1, 1),
    'classifier32/C3 (32->64)': (128, 32, 16, 16, 64, 3, 1, 1),
    'classifier32/C4 (64->64)': (128, 64, 16, 16, 64, 3, 1, 1),
    'classifier32/C5 (64->128)': (128, 64, 8, 8, 128, 3, 1, 1),
    'dcgan32/D2 (64->128)': (64, 64, 16, 16, 128, 4, 2, 1),
    'dcgan32/D3 (128->256)': (64, 128, 8, 8, 256, 4, 2, 1),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--op', default='forward', choices=['forward', 'backward_data', 'backward_weight'])
    args = ap.parse_args()
    import minigan as mg
    from minigan import cpu_ext
    ext = cpu_ext.ext()
    if not ext.direct_available():
        raise SystemExit('this build has no direct conv (it needs AVX-512)')
    mg.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))    # noqa: E731
    print(f'{args.op}, {args.threads} threads: median ms (GFLOP/s)')
    try:
        for name, (n, c, h, w, m, k, s, p) in LAYERS.items():
            oh = (h + 2 * p - k) // s + 1
            x = nhwc(rng.standard_normal((n, c, h, w), dtype=np.float32))
            wt = rng.standard_normal((m, c, k, k), dtype=np.float32)
            gy = nhwc(rng.standard_normal((n, m, oh, oh), dtype=np.float32))
            f = {'forward': lambda: ext.conv2d_forward(x, wt, s, s, p, p, True, True),
                 'backward_data': lambda: ext.conv2d_backward_data(gy, wt, h, w, s, s, p, p, True, True),
                 'backward_weight': lambda: ext.conv2d_backward_weight(x, gy, k, k, s, s, p, p, True, True)}[args.op]
            ts = {True: [], False: []}
            for on in (True, False):
                ext.set_direct(on)
                f()
            for _ in range(12):
                for on in (True, False):
                    ext.set_direct(on)
                    t = time.perf_counter()
                    f()
                    ts[on].append(time.perf_counter() - t)
            gflop = 2 * n * oh * oh * m * c * k * k / 1e9
            d, g = statistics.median(ts[True]), statistics.median(ts[False])
            print(f'{name:28s} direct {1000 * d:7.2f} ({gflop / d:4.0f})   im2col+GEMM {1000 * g:7.2f} '
                  f'({gflop / g:4.0f})   ratio {d / g:.2f}')
    finally:
        ext.set_direct(True)


if __name__ == '__main__':
    main()
