#!/usr/bin/env bash
# The paper's Table 1 (issue 19): GAN, LSGAN and WGAN-GP trained from the same initial weights,
# seed, data, blur, content loss and step budget (configs/table1/*.yaml differ only in the loss),
# one after another (two cores cannot run two trainings well), each resumable: rerun this script
# after an interruption and every run continues from its last checkpoint. Each run's generator at
# the end of the budget (generator_last.keras) is copied to models/table1/, then all three and
# their common start are evaluated in one run on all validation persons.
#   scripts/table1.sh [DATA_DIR] [OUT_DIR]
#   EVAL_FLAGS="--identity none" scripts/table1.sh     # extra evaluate.py flags
set -euo pipefail
data=${1:-../shared/data/lfw}; out=${2:-runs/table1}
mkdir -p models/table1
for gan in gan lsgan wgan-gp; do
    python train.py --gan "$gan" --config "configs/table1/$gan.yaml" --data-dir "$data" \
        --output-dir "$out/$gan" --resume
    cp "$out/$gan/generator_last.keras" "models/table1/$gan.keras"
done
# shellcheck disable=SC2086  # EVAL_FLAGS is a list of flags
python evaluate.py --data-dir "$data" --split val --output-dir "$out/eval" ${EVAL_FLAGS:-} \
    --model tfdeblur/pretrained/generator_look.keras \
    models/table1/gan.keras models/table1/lsgan.keras models/table1/wgan-gp.keras
