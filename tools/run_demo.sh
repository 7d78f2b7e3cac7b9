#!/usr/bin/env bash
# The main job on the embedded default, on CPU: set up .venv if needed,
# generate the demo data, train the cross-entropy baseline and the
# cross-entropy + DualIoU arm, evaluate both and write the comparison report.
#   bash tools/run_demo.sh                  # 2 seeds per arm (default)
#   SEEDS="0 1 2" bash tools/run_demo.sh    # more seeds, tighter intervals
#   JOBS=1 bash tools/run_demo.sh           # one training at a time
# Re-running skips the arms that are already trained and evaluated.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
VENV="${SEGREG_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
SEEDS="${SEEDS:-0 1}"
OUT="${OUT:-work_dirs/demo}"
# trainings in parallel; ablate gives each OMP_NUM_THREADS = CPUs / JOBS
# unless OMP_NUM_THREADS is set
JOBS="${JOBS:-2}"

echo "[demo] generating the demo data (data/demo)"
mkdir -p "$OUT"
"$PY" tools/make_demo_data.py > "$OUT/make_data.log" 2>&1 || { cat "$OUT/make_data.log"; exit 1; }
tail -n 13 "$OUT/make_data.log"

# shellcheck disable=SC2086
"$PY" tools/ablate.py \
  --arms ce=configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py \
         ce+dual-iou=configs/demo/dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py \
  --baseline ce \
  --seeds $SEEDS \
  --jobs "$JOBS" \
  --work-root "$OUT" \
  --out "$OUT/report"
echo "[demo] report: $OUT/report/report.html (and report.md)"
