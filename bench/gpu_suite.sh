#!/usr/bin/env bash
# The GPU checks and benchmarks, in this order, within about 8 minutes on an H100:
#   1. python -m pytest -m gpu -q        every GPU test (kernels, CUDA graphs, the ops on 'cuda')
#   2. compute-sanitizer memcheck, then racecheck, on the kernel tests of tests/test_cuda_kernels.py
#      (skipped, and said so, where compute-sanitizer is not installed)
#   3. bench/gpu_compare_torch.py        ceiling, training steps, batch scaling, conv layers (JSON + tables)
#   4. bench/laptop_vs_gpu.py            the laptop-versus-GPU table and plot, when CPU results are at hand
#
#   bench/gpu_suite.sh [OUT_DIR] [CPU_JSON]
#
# OUT_DIR: where everything is written (default: $OUT, else ./gpu-results): one log per step, the
# benchmark JSON and tables, summary.txt (a line per step: exit status, seconds, command).
# CPU_JSON: rows of `python bench/compare_torch.py --json FILE` from the laptop (default:
# bench/cpu_results.json); without it step 4 is skipped.
# Each step has a time limit; a failing step does not stop the others. The exit status is the first
# failing step's (124: a step ran out of time), 0 when all passed, 2 without a GPU.
set -u
out="${1:-${OUT:-./gpu-results}}"
cpu_json="${2:-}"
mkdir -p "$out"
out=$(cd "$out" && pwd)                       # the paths given are read from where the script was called,
if [ -n "$cpu_json" ] && [ -f "$cpu_json" ]; then  # then everything runs in the repository root
    cpu_json="$(cd "$(dirname "$cpu_json")" && pwd)/$(basename "$cpu_json")"
fi
cd "$(dirname "$0")/.."
cpu_json="${cpu_json:-bench/cpu_results.json}"
py="${PYTHON:-python}"
: > "$out/summary.txt"

if ! "$py" - <<'EOF'
import sys
from minigan import backend
try:
    backend.cupy_or_raise()
except RuntimeError as e:
    sys.exit(f'no GPU: {e}')
EOF
then
    exit 2
fi

status=0
step() {   # step NAME SECONDS COMMAND...: run it with a time limit, its output in OUT_DIR/NAME.log
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    rc=$?
    printf '%-18s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$*" | tee -a "$out/summary.txt"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
"$py" -c 'import cupy, numpy, sys; print(sys.version); print("cupy", cupy.__version__, "numpy", numpy.__version__)' \
    > "$out/versions.txt" 2>&1 || true

# 1. every GPU test; the slowest are listed, to size this step next time
step pytest-gpu 170 "$py" -m pytest -m gpu -q --durations=15

# 2. the kernels under compute-sanitizer: memcheck (out-of-bounds and misaligned accesses) on every
#    kernel test, racecheck (shared-memory hazards: the conv tiles, the batch-norm reductions) on float32.
#    CuPy's memory pool is turned off for them: inside a pooled block an overrun only hits a neighbour
#    array, which memcheck cannot tell from a legal access; with one cudaMalloc per array it can.
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
kernels='(conv_primitives_match_reference or batch_norm_act_matches_reference or optimizer_steps_match_reference or sgd_momentum_step_matches_reference) and nvrtc'
shared='(conv_primitives_match_reference and float32 or batch_norm_act_matches_reference and float32) and nvrtc'
no_pool=(-c 'import sys, cupy, pytest; cupy.cuda.set_allocator(None); sys.exit(pytest.main(sys.argv[1:]))')
if [ -n "$sanitizer" ]; then
    step memcheck 80 "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 20 \
        "$py" "${no_pool[@]}" -q -m gpu tests/test_cuda_kernels.py -k "$kernels"
    step racecheck 60 "$sanitizer" --tool racecheck --error-exitcode 99 --print-limit 20 \
        "$py" "${no_pool[@]}" -q -m gpu tests/test_cuda_kernels.py -k "$shared"
else
    echo "compute-sanitizer  skipped: not on PATH nor in /usr/local/cuda/bin" | tee -a "$out/summary.txt"
fi

# 3. the benchmarks
step gpu-benchmarks 170 "$py" bench/gpu_compare_torch.py --json "$out/gpu_results.json"

# 4. the laptop against the GPU
if [ -f "$cpu_json" ] && [ -f "$out/gpu_results.json" ]; then
    step laptop-vs-gpu 30 "$py" bench/laptop_vs_gpu.py "$cpu_json" "$out/gpu_results.json" \
        --md "$out/laptop_vs_gpu.md" --png "$out/laptop_vs_gpu.png"
else
    echo "laptop-vs-gpu      skipped: needs $cpu_json (python bench/compare_torch.py --json FILE, on the" \
         "laptop) and $out/gpu_results.json" | tee -a "$out/summary.txt"
fi

exit "$status"
