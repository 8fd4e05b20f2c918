#!/usr/bin/env bash
# Reproduce the shipped default generator (tfdeblur/pretrained/generator.keras): the six stages
# of MODEL_CARD.md's training table, end to end, on 2 CPU cores about 7.5 h of training.
#
#   scripts/reproduce_default.sh [RUNS_DIR]        (default RUNS_DIR: runs/reproduce)
#   DATA=path/to/lfw PYTHON=python3 scripts/reproduce_default.sh
#
# Run from the repository root. Resumable: run it again after an interruption (Ctrl-C, SIGTERM,
# a lost session) and it skips finished stages and resumes the unfinished one. The result is
# RUNS_DIR/s6_wider/generator.keras; compare it with the shipped one:
#   python evaluate.py --model tfdeblur/pretrained/generator.keras RUNS_DIR/s6_wider/generator.keras \
#       --data-dir ../shared/data/lfw --split val
# Differences from the recorded run (so the numbers will differ a little): stage 3 was stopped
# and resumed with changed --steps several times (its learning-rate schedule jumped), here it is
# one run of 18,000 steps; stage 4b was planned for 20,000 steps and stopped at 8,824 while its
# learning rate was still constant, here it runs 8,824 steps with decay_start 1.0 (constant).
cd "$(dirname "$0")/.."
RUNS=${1:-runs/reproduce}
source scripts/reproduce_common.sh

stages_1_to_3  # the ngf-24 crop stages, shared with reproduce_fast.sh
# 4a: probe of blur close to `eval` (paths 35-65 px) at lr 5e-5; G from stage 3, D fresh
need "$RUNS/s3/generator.keras"
run_stage s4a_probe 1500 configs/cpu-finetune.yaml --set train.g_lr=5e-5 --set train.d_lr=5e-5 \
    --set "data.blur={length: [35.0, 65.0], anxiety: [0.0, 0.06], p_identity: 0.05}" \
    --set train.init_from="$RUNS/s3/generator.keras"
# 4b: the same blur, lr 5e-5 constant; G and D from the probe's checkpoint
need "$RUNS/s4a_probe/checkpoints"
run_stage s4b 8824 configs/cpu-stage4.yaml --set train.decay_start=1.0 \
    --set train.init_from="$RUNS/s4a_probe/checkpoints"
# 5: grown from ngf 24 to 32 (train.init_grow in the config), 12,000 steps
need "$RUNS/s4b/generator.keras"
run_stage s5_wide 12000 configs/cpu-wide.yaml --set train.init_from="$RUNS/s4b/generator.keras"
# 6: grown from ngf 32 to 40, 9,000 steps: the shipped default
need "$RUNS/s5_wide/generator.keras"
run_stage s6_wider 9000 configs/cpu-wider.yaml --set train.init_from="$RUNS/s5_wide/generator.keras"

echo "done: $RUNS/s6_wider/generator.keras (shipped: tfdeblur/pretrained/generator.keras)"
