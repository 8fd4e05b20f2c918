#!/usr/bin/env bash
# Reproduce the shipped fast generator (tfdeblur/pretrained/generator_fast.keras, `--model fast`):
# stages 1-3 of the default model (scripts/reproduce_default.sh; shared, not trained twice when
# RUNS_DIR is the same), then the 4-block fine-tune from stage 3 and its distillation from
# stage 3 (fast 2, the fast model shipped until 2026-12-03, now generator_look.keras), then its
# re-distillation from the shipped default (fast 3; MODEL_CARD.md, the fast model). About 3 h 30 min
# after stage 3 on 2 CPU cores.
#
#   scripts/reproduce_fast.sh [RUNS_DIR]           (default RUNS_DIR: runs/reproduce)
#
# Run from the repository root; resumable like reproduce_default.sh. The result is
# RUNS_DIR/fast3_redistill/generator_last.keras. The fine-tune was run as 4,000 steps, then resumed to
# 7,000, 10,000 and 14,000 (each resume restarted the linear decay); the script does the same.
cd "$(dirname "$0")/.."
RUNS=${1:-runs/reproduce}
source scripts/reproduce_common.sh

stages_1_to_3  # shared with reproduce_default.sh (reproduce_common.sh)

# fast 1: the 6-block stage-3 generator cut to 4 blocks (layers matched by name: res5-res6
# dropped), LSGAN on `train-heavy` blur, lr 1e-4; D fresh
need "$RUNS/s3/generator.keras"
for steps in 4000 7000 10000 14000; do
    run_stage fast1_finetune "$steps" configs/cpu-fast-finetune.yaml \
        --set train.init_from="$RUNS/s3/generator.keras"
done
# fast 2: 6,000 steps from the 14,000-step fast generator, distilled from the stage-3 generator
need "$RUNS/fast1_finetune/generator.keras"
run_stage fast2_distill 6000 configs/cpu-fast-distill.yaml \
    --set train.init_from="$RUNS/fast1_finetune/generator.keras" \
    --set train.distill_from="$RUNS/s3/generator.keras"

# fast 3: 7,000 steps from fast 2, distilled from the shipped (stage-6) default
need "$RUNS/fast2_distill/generator.keras"
run_stage fast3_redistill 7000 configs/cpu-fast-distill.yaml \
    --set train.init_from="$RUNS/fast2_distill/generator.keras"

echo "done: $RUNS/fast3_redistill/generator_last.keras (shipped: tfdeblur/pretrained/generator_fast.keras)"
