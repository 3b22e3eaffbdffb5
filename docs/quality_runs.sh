#!/usr/bin/env bash
# The runs behind the README's results: every GAN variant on the real SVHN sample,
# on CIFAR-10 and on the synth set, classifier-32 on CIFAR-10, and the evaluation
# metrics of each GAN run. One run after another on the CPU (2 threads); each run
# is given a step budget of a few minutes, so the samples show where a variant
# stands after that much CPU time, not what it reaches when trained for hours.
#
#   bash docs/quality_runs.sh [RUNS_DIR] [SHARED_DATA_DIR]      # about an hour on 2 cores
#
# Afterwards: RUNS_DIR/summary.jsonl holds one line per run (settings, steps, seconds),
# RUNS_DIR/*/eval/metrics.json the metrics, docs/results/*.png the final sample grids.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/quality}
DATA=${2:-../shared/data}
mkdir -p "$RUNS" docs/results
# the SVHN sample holds the first 1,083 training images of the official train_32x32.mat, in its
# layout: minigan finds it under the official name in a data folder of its own (and warns that
# its checksum is not the full file's)
mkdir -p "$RUNS/data/svhn"
ln -sf "$(realpath "$DATA/svhn/train_32x32_first1083.mat")" "$RUNS/data/svhn/train_32x32.mat"

# generator steps per variant: three to five minutes each on 2 cores at batch 64
steps_for() {
    case "$1" in
        dcgan) echo 800 ;;
        ralsgan) echo 600 ;;
        wgan) echo 35 ;;         # the first 25 generator steps take 100 critic steps each
        wgan-gp) echo 120 ;;     # 5 critic steps with the double-backprop penalty per generator step
    esac
}

run() {          # run NAME ARGS...: train, time it, and record the settings
    local name=$1; shift
    if [ -f "$RUNS/$name/checkpoints/latest.npz" ]; then
        echo "== $name: already there, skipped"; return
    fi
    echo "== $name: python -m minigan.train $*"
    local t0=$SECONDS
    python -m minigan.train --quiet --log-every 100 --out "$RUNS/$name" "$@"
    printf '{"run": "%s", "args": "%s", "seconds": %d}\n' "$name" "$*" $((SECONDS - t0)) >> "$RUNS/summary.jsonl"
}

# (with --batch-size 128 --crop-padding 4 it reached 77.8% after 10 epochs, still under-fitting)
run classifier-cifar10 --model classifier --data "$DATA/cifar10-jpg" --epochs 10 --batch-size 64 \
    --lr-schedule cosine

for model in dcgan ralsgan wgan wgan-gp; do
    steps=$(steps_for $model)
    run "$model-svhn" --model $model --data svhn --data-dir "$RUNS/data" --epochs 100000 --max-steps "$steps"
    run "$model-cifar10" --model $model --data "$DATA/cifar10-jpg" --epochs 100000 --max-steps "$steps"
    run "$model-synth" --model $model --data synth --subset 8000 --epochs 100000 --max-steps "$steps"
done

for run_dir in "$RUNS"/*-svhn "$RUNS"/*-synth "$RUNS"/*-cifar10; do
    name=$(basename "$run_dir")
    case "$name" in classifier-*) continue ;; esac
    last=$(ls "$run_dir"/samples/step_*.png | tail -n 1)
    cp "$last" "docs/results/$name.png"
    case "$name" in *-cifar10) continue ;; esac           # the README's metrics: synth and SVHN
    if [ ! -f "$run_dir/eval/metrics.json" ]; then
        python -m minigan.evaluate "$run_dir" --n 10000 --json "$run_dir/eval/scores.json"
    fi
done
