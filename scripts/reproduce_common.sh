# Shared by scripts/reproduce_default.sh and scripts/reproduce_fast.sh (sourced, not run).
#
# run_stage NAME STEPS CONFIG [train.py flags...]
#   trains one stage into $RUNS/NAME with `train.py --resume`, so an interrupted stage continues
#   from its last checkpoint (with the same batches an uninterrupted run would see). A stage that
#   finished writes $RUNS/NAME/reproduce-done-STEPS and is skipped on the next run of the script.
#   The marker, not generator.keras, says "done": training writes generator.keras at every new best
#   validation PSNR, so it exists long before a stage ends.
set -euo pipefail

PYTHON=${PYTHON:-python}
DATA=${DATA:-${TFDEBLUR_DATA:-../shared/data/lfw}}
GAN=lsgan  # every stage of both shipped models is LSGAN

run_stage() {
    local name=$1 steps=$2 config=$3
    shift 3
    local out="$RUNS/$name" marker="$RUNS/$name/reproduce-done-$steps"
    if [[ -e "$marker" ]]; then
        echo "== $name: done ($steps steps), skipped"
        return 0
    fi
    echo "== $name: $config, $steps steps -> $out"
    local rc=0
    "$PYTHON" train.py --gan "$GAN" --config "$config" --data-dir "$DATA" --output-dir "$out" \
        --steps "$steps" --resume "$@" || rc=$?
    # exit 1 also means "trained to the end, but some images were skipped": done if the summary
    # says the run reached its steps; a non-finite loss (also 1) does not reach them.
    if [[ $rc -eq 1 ]] && "$PYTHON" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["steps"] < int(sys.argv[2]))' \
        "$out/summary.json" "$steps" 2>/dev/null; then
        rc=0
    fi
    if [[ $rc -ne 0 ]]; then
        echo "== $name: train.py exited with $rc; run the script again to resume this stage" >&2
        exit "$rc"
    fi
    touch "$marker"
}

need() {  # a stage's input from an earlier stage
    if [[ ! -e "$1" ]]; then
        echo "error: $1 is missing (an earlier stage did not finish)" >&2
        exit 2
    fi
}

stages_1_to_3() {  # the stages both shipped models start from
    # 1: from scratch, `train` blur
    run_stage s1 3027 configs/cpu.yaml
    # 2: stronger blur (`train-heavy`); G and D from stage 1's checkpoint
    need "$RUNS/s1/checkpoints"
    run_stage s2 1200 configs/cpu-finetune.yaml --set train.init_from="$RUNS/s1/checkpoints"
    # 3: the long run, decay from 25% of the steps; G from stage 2's best
    need "$RUNS/s2/generator.keras"
    run_stage s3 18000 configs/cpu-finetune.yaml --set train.decay_start=0.25 \
        --set train.init_from="$RUNS/s2/generator.keras"
}
