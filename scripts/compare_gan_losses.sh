#!/usr/bin/env bash
# The three GAN losses from one starting point: each continues the same generator (stage 2 of the
# shipped model, MODEL_CARD.md) with a fresh discriminator/critic, configs/cpu-finetune.yaml,
# the same steps, seed and data; then one evaluation of all three on the validation persons.
#   scripts/compare_gan_losses.sh START_GENERATOR.keras STEPS OUT_DIR [DATA_DIR]
set -euo pipefail
start=${1:?start generator (.keras)}; steps=${2:?steps}; out=${3:?output folder}
data=${4:-../shared/data/lfw}
for gan in gan lsgan wgan-gp; do
    python train.py --gan "$gan" --config configs/cpu-finetune.yaml --data-dir "$data" \
        --output-dir "$out/$gan" --steps "$steps" --resume -q \
        --set train.init_from="$start"
done
python evaluate.py --data-dir "$data" --split val --output-dir "$out/eval" \
    --model "$out/gan/generator.keras" "$out/lsgan/generator.keras" "$out/wgan-gp/generator.keras"
