#!/usr/bin/env bash
# Installs fgsm_jax into .venv (scripts/setup_venv.sh) and runs the FGSM experiment end to end on the Georgia Tech
# faces from a local copy: build the dataset (TFDS), train the original CNN, attack it with
# white-box FGSM at each eps, write JSON and figures to $WORKDIR (default runs/).
#   FGSM_JAX_DATASETS=/path/holding/gt_db bash scripts/run_experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS="${FGSM_JAX_DATASETS:-../shared/datasets}"
WORKDIR="${WORKDIR:-runs}"
if [ ! -d "$DATASETS/gt_db" ]; then
  echo "error: $DATASETS/gt_db not found (set FGSM_JAX_DATASETS to the folder holding gt_db/)" >&2
  exit 1
fi
bash scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"
.venv/bin/python experiments/train_classifier.py --dataset gt --manual-dir "$DATASETS/gt_db" \
  --data-dir "$WORKDIR/tfds" --workdir "$WORKDIR/gt_cnn" \
  --epochs 15 --cosine --flip --max-shift 8
.venv/bin/python experiments/fgsm_eval.py --workdir "$WORKDIR/gt_cnn" --eps 0,1,2,4,5,8,16
echo "results: $WORKDIR/gt_cnn/{metrics.json,fgsm_eval.json,accuracy_vs_eps.png,triplets_eps5.png}"
