#!/bin/bash
# The m6r6 relay's recipe probes (docs/training.md, "Choosing the relay's recipe"): short
# branches from one relay checkpoint that each change one recipe value, validated on Set5.
#
#   tools/recipe_probes.sh [STATE_FOLDER [OUT]]      # defaults: training/memnet-sr-m6r6 runs/probes
#   PROBES="base batch32" tools/recipe_probes.sh     # only some of them
#
# Every probe copies STATE_FOLDER (a run folder with checkpoints/last.state.pt) and resumes it at
# one thread, so the relay's own state is never touched and two probes can share the 2 cores.
# Peak phase: 250 steps at the relay's learning rate at its 4,863-step state (9.66e-4, held
# constant): base (batch 16 of 31², the relay's recipe), batch32, patch41 and l1; base-long runs
# base on to the CPU time batch32 took (474 steps). Decay phase: the two equal-CPU endpoints at
# lr 1e-4, again for equal CPU time (base-long-decay 180 steps, batch32-decay 100).
# Afterwards: python docs/make_learning_curves.py OUT/NAME prints each probe's validation.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${1:-training/memnet-sr-m6r6}
out=${2:-runs/probes}
probes=${PROBES:-base batch32 patch41 l1 base-long base-long-decay batch32-decay}
memnet=${MEMNET:-memnet}
recipe=configs/sr-m6r6-relay.yaml
start=$(python -c "import torch,sys; print(torch.load(sys.argv[1], weights_only=False)['iteration'])" \
    "$state/checkpoints/last.state.pt")
mkdir -p "$out"

branch() {  # branch NAME FROM ITERATIONS LR [--set ...]
    local name=$1 from=$2 until=$3 lr=$4
    shift 4
    rm -rf "${out:?}/$name"
    cp -r "$from" "$out/$name"
    "$memnet" train "$recipe" --out "$out/$name" --resume auto --set train.threads=1 \
        --set schedule.kind=constant --set optim.lr="$lr" --set train.iterations="$until" \
        "$@" > "$out/$name.log" 2>&1
    echo "$name: $(grep '^validation @' "$out/$name.log" | tail -1)"
}

peak=9.66e-4
for probe in $probes; do
    case $probe in
        base) branch base "$state" $((start + 250)) $peak ;;
        batch32) branch batch32 "$state" $((start + 250)) $peak --set train.batch_size=32 ;;
        patch41) branch patch41 "$state" $((start + 250)) $peak --set data.patch_size=41 ;;
        l1) branch l1 "$state" $((start + 250)) $peak --set train.loss=l1 ;;
        base-long) branch base-long "$out/base" $((start + 474)) $peak ;;
        base-long-decay) branch base-long-decay "$out/base-long" $((start + 654)) 1e-4 ;;
        batch32-decay) branch batch32-decay "$out/batch32" $((start + 350)) 1e-4 \
            --set train.batch_size=32 ;;
        *) echo "unknown probe $probe" >&2; exit 2 ;;
    esac
done
