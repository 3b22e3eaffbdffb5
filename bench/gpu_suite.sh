#!/usr/bin/env bash
# Every GPU check and benchmark, in parts of at most 4 minutes each, so that a lease of a few minutes
# runs the parts it has time for (bench/gpu_smoke.sh first: it is the 3-minute first contact).
#
#   OUT=folder bench/gpu_suite.sh [PART...]      (OUT unset: ./gpu-results; no PART: all, in order)
#
# The parts, each under `timeout -s INT` (pytest and Python stop with their summary), each recorded in
# $OUT/suite.json as it ends (status, exit status, seconds, last line):
#   kernels    pytest -m gpu on the loading, capture, kernel and CUDA-graph tests      (<= 200 s)
#   ops        pytest -m gpu on every other test file (the ops on 'cuda')             (<= 230 s)
#              both with MINIGAN_CUDA_DEBUG=1 (kernel outputs poisoned with NaN), 120 s per test
#              with pytest-timeout, 8 workers with pytest-xdist                       -> tests.log
#   memcheck   compute-sanitizer memcheck on the kernel tests (NVRTC; float32, float64, TF32) (<= 225 s)
#   racecheck  compute-sanitizer racecheck on the float32 conv and batch-norm tests           (<= 225 s)
#              each after a pre-flight (the sanitizer on a tiny CuPy program, <= 45 s): where the
#              sanitizer is missing or refuses the device (gVisor: "Device not supported") the part
#              is skipped, saying why; CuPy's memory pool is off under it, so that an overrun is an
#              access outside an allocation                                           -> sanitizer.log
#   bench      bench/gpu_compare_torch.py --only ceiling --only workloads             (<= 230 s)
#   bench-more bench/gpu_compare_torch.py --only scaling --only layers                (<= 230 s)
#              the JSON rewritten after every row, both parts into one file           -> bench.log, bench.json
#   laptop     bench/laptop_vs_gpu.py, where $CPU_JSON (default bench/cpu_results.json: rows of
#              `python bench/compare_torch.py --json FILE` on the laptop) is there    -> laptop_vs_gpu.md/.png
# At most 8 files in $OUT: env.txt, suite.json and the files above. Logs are unbuffered.
# Exit status: 0 every part passed or was skipped; 1 a part failed or ran out of time; 2 no GPU.
set -u
. "$(dirname "$0")/gpu_lib.sh"
cpu_json="${CPU_JSON:-}"
if [ -n "$cpu_json" ] && [ -f "$cpu_json" ]; then       # read from where the script was called
    cpu_json="$(cd "$(dirname "$cpu_json")" && pwd)/$(basename "$cpu_json")"
fi
gpu_setup suite.json ./gpu-results
cpu_json="${cpu_json:-bench/cpu_results.json}"
gpu_env
PARTS=(kernels ops memcheck racecheck bench bench-more laptop)
if [ $# -eq 0 ]; then set -- "${PARTS[@]}"; fi
for p in "$@"; do
    [[ " ${PARTS[*]} " == *" $p "* ]] || { echo "unknown part $p: the parts are ${PARTS[*]}" >&2; exit 1; }
done

CUDA_TESTS=(tests/test_cuda_loading.py tests/test_cuda_capture.py tests/test_cuda_kernels.py tests/test_cuda_graph.py)
IGNORE_CUDA_TESTS=()
for f in "${CUDA_TESTS[@]}"; do IGNORE_CUDA_TESTS+=(--ignore="$f"); done
KERNELS='(conv_primitives_match_reference or batch_norm_act_matches_reference or optimizer_steps_match_reference or sgd_momentum_step_matches_reference) and nvrtc'
SHARED='(conv_primitives_match_reference and float32 or batch_norm_act_matches_reference and float32) and nvrtc'
NO_POOL=(-c 'import sys, cupy, pytest; cupy.cuda.set_allocator(None); sys.exit(pytest.main(sys.argv[1:]))')

sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
preflight=""          # empty: not tried yet; "ok"; else why the sanitizer cannot run here

sanitizer_preflight() {   # sets $preflight: can compute-sanitizer instrument this GPU?
    if [ -n "$preflight" ]; then return; fi
    if [ -z "$sanitizer" ]; then preflight="compute-sanitizer is not on the PATH nor in /usr/local/cuda/bin"; return; fi
    local log="$out/sanitizer.log" rc
    echo "=== sanitizer pre-flight: memcheck on a tiny CuPy program" | tee -a "$log"
    timeout -s INT -k 5 45 "$sanitizer" --tool memcheck --error-exitcode 99 "$py" -c \
        'import cupy as cp; x = cp.arange(8, dtype=cp.float32); print("pre-flight sum", float((x * 2).sum()))' \
        > "$out/preflight.tmp" 2>&1
    rc=$?
    cat "$out/preflight.tmp" >> "$log"
    if [ "$rc" -eq 0 ] && grep -q 'pre-flight sum 56.0' "$out/preflight.tmp" \
            && grep -q 'ERROR SUMMARY: 0 errors' "$out/preflight.tmp"; then
        preflight=ok
    else
        preflight="compute-sanitizer cannot instrument this GPU (status $rc): $(grep -m1 -iE 'not supported|error|fail' \
            "$out/preflight.tmp" | cut -c1-200)"
    fi
    rm -f "$out/preflight.tmp"
    echo "=== sanitizer pre-flight: $preflight" | tee -a "$log"
}

sanitized() {   # sanitized PART TOOL -k EXPRESSION: one sanitizer part, after the pre-flight
    local name=$1 tool=$2 expr=$3
    if [ "$gpu" = no ]; then gpu_skip "$name" "no GPU: $no_gpu"; return; fi
    sanitizer_preflight
    if [ "$preflight" != ok ]; then gpu_skip "$name" "$preflight"; return; fi
    gpu_part "$name" 180 sanitizer.log env MINIGAN_CUDA_DEBUG=1 "$sanitizer" --tool "$tool" --error-exitcode 99 \
        --print-limit 20 "$py" "${NO_POOL[@]}" -q -m gpu -p no:xdist tests/test_cuda_kernels.py -k "$expr"
}

for p in "$@"; do
    case $p in
        kernels)
            gpu_pytest_opts 120 8
            gpu_part kernels 200 tests.log env MINIGAN_CUDA_DEBUG=1 "$py" -m pytest -m gpu "${pytest_opts[@]}" \
                "${CUDA_TESTS[@]}" ;;
        ops)
            gpu_pytest_opts 120 8
            gpu_part ops 230 tests.log env MINIGAN_CUDA_DEBUG=1 "$py" -m pytest -m gpu "${pytest_opts[@]}" tests \
                "${IGNORE_CUDA_TESTS[@]}" ;;
        memcheck) sanitized memcheck memcheck "$KERNELS" ;;
        racecheck) sanitized racecheck racecheck "$SHARED" ;;
        bench)
            gpu_part bench 230 bench.log env -u MINIGAN_CUDA_DEBUG "$py" bench/gpu_compare_torch.py \
                --only ceiling --only workloads --json "$out/bench.json" ;;
        bench-more)
            gpu_part bench-more 230 bench.log env -u MINIGAN_CUDA_DEBUG "$py" bench/gpu_compare_torch.py \
                --only scaling --only layers --json "$out/bench.json" ;;
        laptop)
            if [ -f "$cpu_json" ] && [ -f "$out/bench.json" ]; then
                gpu_part laptop 30 bench.log "$py" bench/laptop_vs_gpu.py "$cpu_json" "$out/bench.json" \
                    --md "$out/laptop_vs_gpu.md" --png "$out/laptop_vs_gpu.png"
            else
                gpu_skip laptop "needs $cpu_json (python bench/compare_torch.py --json FILE, on the laptop) and \
$out/bench.json (the bench part)"
            fi ;;
    esac
done
gpu_finish
