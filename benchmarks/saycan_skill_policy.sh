#!/usr/bin/env bash
# The low-level policy of SayCan (issue 9): a CLIPort (VLM semantic stream, as the shipped put-block-in-bowl policy)
# trained on oracle demonstrations of single SayCan skills ("pick the X block and place it on the Y"), one skill per
# episode of the saycan-skills task. Writes checkpoints/cliport-saycan-skills (the default skill policy of
# `vlarm plan` / `vlarm run --planner saycan`). Logs and CPU times go to ${LOGS:-/work/logs/saycan}.
set -euo pipefail
cd "$(dirname "$0")/.."
export MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824 \
  HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
LOGS=${LOGS:-/work/logs/saycan}
DEMOS=${DEMOS:-120}
STEPS=${STEPS:-2000}
mkdir -p "$LOGS"
/usr/bin/time -v nice -n 10 .venv/bin/vlarm collect --task saycan-skills --split train --episodes "$DEMOS" \
  --out data/saycan-skills-train > "$LOGS/collect.log" 2> "$LOGS/collect.time"
/usr/bin/time -v nice -n 10 .venv/bin/vlarm train --policy cliport --task saycan-skills \
  --data data/saycan-skills-train --demos "$DEMOS" --steps "$STEPS" --batch-size 4 --lr 0.0005 --save-every 500 \
  --threads 1 --out runs/saycan-skills --semantic-vlm checkpoints/lit-sim-all-colors --grounding-fusion both \
  --grounding-score softmax > "$LOGS/train.log" 2> "$LOGS/train.time"
