#!/usr/bin/env bash
# The paper's Table 1 (issue 19): GAN, LSGAN and WGAN-GP trained from the same initial weights,
# seed, data, blur, content loss and step budget (configs/table1/*.yaml differ only in the loss),
# one after another (two cores cannot run two trainings well), each resumable: rerun this script
# after an interruption and every run continues from its last checkpoint. Then one evaluation of
# all three on all validation persons, and the generators copied to models/table1/.
#   scripts/table1.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
data=${1:-../shared/data/lfw}; out=${2:-runs/table1}
for gan in gan lsgan wgan-gp; do
    python train.py --gan "$gan" --config "configs/table1/$gan.yaml" --data-dir "$data" \
        --output-dir "$out/$gan" --resume
done
python evaluate.py --data-dir "$data" --split val --output-dir "$out/eval" \
    --model "$out/gan/generator.keras" "$out/lsgan/generator.keras" "$out/wgan-gp/generator.keras"
mkdir -p models/table1
for gan in gan lsgan wgan-gp; do cp "$out/$gan/generator.keras" "models/table1/$gan.keras"; done
