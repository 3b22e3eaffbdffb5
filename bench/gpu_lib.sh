# Shared by bench/gpu_smoke.sh and bench/gpu_suite.sh (sourced, not run): the run's setting-up, the
# machine's description, a time-limited part that records itself in a JSON summary.
#
# After `gpu_setup SUMMARY_NAME DEFAULT_OUT`: the shell is in the repository root, $out is the output
# folder ($OUT, else DEFAULT_OUT), $py the Python (python3, or $PYTHON), $gpu "yes" or "no" and
# $no_gpu why not, $pytest_opts the pytest options that the installed plugins allow (per-test
# timeouts with pytest-timeout; parallel workers with pytest-xdist, when $workers > 1).

gpu_setup() {
    summary_name=$1
    out="${OUT:-$2}"
    mkdir -p "$out" && out=$(cd "$out" && pwd) || { echo "cannot make the output folder $out" >&2; exit 1; }
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
    py="${PYTHON:-python3}"
    status=0
    started=$SECONDS
    local probe
    probe=$(timeout -s INT -k 5 60 "$py" -c '
from minigan import backend
try:
    backend.cupy_or_raise()
    print("GPU: yes")
except RuntimeError as e:
    print(e)' 2>&1 | tail -n 1)
    if [ "$probe" = "GPU: yes" ]; then
        gpu=yes no_gpu=""
    else
        gpu=no no_gpu="${probe:-the GPU check printed nothing}"
    fi
    summary_write init "" "" "" ""
}

# The machine, the versions and what is missing, into $out/env.txt (a few seconds).
gpu_env() {
    {
        date -u
        uname -a
        nproc
        timeout 10 nvidia-smi 2>&1 || echo "nvidia-smi: not here"
        timeout 10 nvcc --version 2>&1 | tail -n 2 || echo "nvcc: not here"
        echo "GPU for minigan: $gpu ${no_gpu}"
        timeout -s INT 30 "$py" - <<'EOF'
import sys
from importlib import metadata
print('python', sys.version.split()[0], sys.executable)
for name in ('numpy', 'scipy', 'pillow', 'numba', 'tqdm', 'pytest', 'pytest-timeout', 'pytest-xdist',
             'hypothesis', 'cupy-cuda13x', 'cupy-cuda12x', 'torch'):       # read, not imported: no time spent
    try:
        print(f'{name:15s} {metadata.version(name)}')
    except metadata.PackageNotFoundError:
        print(f'{name:15s} not installed')
from minigan import cpu_ext
print('minigan C++ extension:', 'built' if cpu_ext.ext() is not None else 'not built (optional: numpy/numba paths)')
EOF
    } > "$out/env.txt" 2>&1
    cat "$out/env.txt"
}

# pytest options from the plugins that are installed: per-test timeouts, and `workers` workers.
# Without a GPU the tests are only collected (the files must import; every GPU test would skip).
gpu_pytest_opts() {
    local per_test=$1 workers=$2
    if [ "$gpu" = no ]; then pytest_opts=(--collect-only -qq); return; fi
    pytest_opts=(-q -rfEs --durations=10)
    if "$py" -c 'import pytest_timeout' 2>/dev/null; then
        pytest_opts+=(--timeout="$per_test")
    fi
    if [ "$workers" -gt 1 ] && "$py" -c 'import xdist' 2>/dev/null; then
        pytest_opts+=(-n "$workers")
    fi
}

# summary_write PART STATUS RC SECONDS NOTE: the part's line in $out/$summary_name, rewritten whole.
summary_write() {
    "$py" - "$out/$summary_name" "$gpu" "$no_gpu" "$@" <<'EOF' || echo "could not write the summary" >&2
import json, os, sys, time
path, gpu, no_gpu, part, state, rc, seconds, note = sys.argv[1:9]
try:
    with open(path) as f:
        data = json.load(f)
except (OSError, ValueError):
    data = {'gpu': gpu == 'yes', 'no_gpu': no_gpu or None, 'started': time.strftime('%Y-%m-%d %H:%M:%S'),
            'parts': {}}
if part != 'init':
    data['parts'][part] = {'status': state, 'rc': int(rc), 'seconds': int(seconds), 'note': note}
data['updated'] = time.strftime('%Y-%m-%d %H:%M:%S')
with open(path + '.part', 'w') as f:
    json.dump(data, f, indent=1)
os.replace(path + '.part', path)
EOF
}

# gpu_part NAME LIMIT LOG COMMAND...: run COMMAND under `timeout -s INT LIMIT` (so that pytest and
# Python stop with their summary), its output appended to $out/LOG and shown; record it:
# passed (0), timed out (124/137), else failed; without a GPU, skipped when it did what it could
# (status 0) or said that it needs a GPU (status 2 and "no GPU" on its last line).
gpu_part() {
    local name=$1 limit=$2 log=$3 start=$SECONDS rc state note
    shift 3
    echo "=== $name (at most ${limit}s): $*" | tee -a "$out/$log"
    timeout -s INT -k 10 "$limit" "$@" 2>&1 | tee -a "$out/$log"
    rc=${PIPESTATUS[0]}
    note=$(grep -v '^\s*$' "$out/$log" | tail -n 1 | cut -c1-300)
    case $rc in
        0) state=passed ;;
        124|137) state="timed out"; note="stopped after ${limit}s; last line: $note" ;;
        *) state=failed ;;
    esac
    if [ "$gpu" = no ] && { [ "$rc" -eq 0 ] || { [ "$rc" -eq 2 ] && [[ $note == *"no GPU"* ]]; }; }; then
        state=skipped                     # it did what it can without a GPU, or said it needs one
        if [[ $note != *"no GPU"* ]]; then note="no GPU: $no_gpu; the part: $note"; fi
    fi
    echo "=== $name: $state (status $rc, $((SECONDS - start))s)" | tee -a "$out/$log"
    summary_write "$name" "$state" "$rc" "$((SECONDS - start))" "$note"
    if [ "$state" != passed ] && [ "$state" != skipped ] && [ "$status" -eq 0 ]; then status=1; fi
}

# gpu_skip NAME NOTE: record a part that did not run.
gpu_skip() {
    echo "=== $1: skipped: $2"
    summary_write "$1" skipped 0 0 "$2"
}

# The exit status: 1 when a part failed or ran out of time, else 2 without a GPU (every part skipped),
# else 0.
gpu_finish() {
    echo "=== done in $((SECONDS - started))s; summary: $out/$summary_name"
    if [ "$status" -eq 0 ] && [ "$gpu" = no ]; then exit 2; fi
    exit "$status"
}
