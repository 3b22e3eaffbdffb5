#!/usr/bin/env bash
# The first contact with a GPU machine: at most 3 minutes, from the source tree, building and
# installing nothing (python3 runs minigan from here; the CUDA kernels load through NVRTC, the C++
# extension is optional).
#
#   OUT=folder bench/gpu_smoke.sh          (OUT unset: ./gpu-smoke)
#
# The parts, each under `timeout -s INT` (pytest and Python stop with their summary), each followed
# by a rewrite of $OUT/smoke.json (status, exit status, seconds and last line of every part so far):
#   env    the machine and the versions, what is missing                         -> env.txt    (~5 s)
#   tests  the loading, capture, kernel and CUDA-graph tests: pytest -m gpu -x, MINIGAN_CUDA_DEBUG=1
#          (kernel outputs poisoned with NaN), 4 workers and 60 s per test where
#          pytest-xdist and pytest-timeout are installed                         -> tests.log  (<= 80 s)
#   steps  bench/gpu_step_check.py: one training step of each model (dcgan, ralsgan, wgan, wgan-gp,
#          classifier) on cuda against the same step on the CPU                 -> steps.log, steps.json (<= 40 s)
#   bench  bench/gpu_compare_torch.py: one row (dcgan32_b64: minigan eager, graphed and PyTorch),
#          5 timed steps each                                                    -> bench.log, bench.json (<= 40 s)
# 7 files in all (the device tool brings back 8). Logs are unbuffered (PYTHONUNBUFFERED=1).
# Without a GPU every part says so and the script ends at once (the tests part only collects).
# Exit status: 0 every part passed; 1 a part failed or ran out of time; 2 no GPU.
set -u
. "$(dirname "$0")/gpu_lib.sh"
gpu_setup smoke.json ./gpu-smoke
gpu_env

TESTS=(tests/test_cuda_loading.py tests/test_cuda_capture.py tests/test_cuda_kernels.py tests/test_cuda_graph.py)
gpu_pytest_opts 60 4
gpu_part tests 80 tests.log env MINIGAN_CUDA_DEBUG=1 "$py" -m pytest -m gpu -x "${pytest_opts[@]}" "${TESTS[@]}"
gpu_part steps 40 steps.log env MINIGAN_CUDA_DEBUG=1 "$py" bench/gpu_step_check.py --json "$out/steps.json"
gpu_part bench 40 bench.log env -u MINIGAN_CUDA_DEBUG "$py" bench/gpu_compare_torch.py --only workloads \
    -w dcgan32_b64 --repeats 5 --warmup 2 --json "$out/bench.json"
gpu_finish
