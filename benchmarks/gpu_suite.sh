#!/usr/bin/env bash
# The segreg GPU suite: one command, at most ~8 minutes on one H100 / H200.
#
#   benchmarks/gpu_suite.sh OUT_DIR            # full run on cuda:0
#   benchmarks/gpu_suite.sh OUT_DIR --dry-run  # tiny shapes on the CPU (CI)
#
# Writes OUT_DIR/{loss_fp32,loss_bf16,train_step,attention,head_cost,suite}.json and
# OUT_DIR/summary.md (benchmarks/gpu_suite.py says what each holds).
#
# Runs from this checkout (segreg is imported from the source tree). On a
# stock torch image without internet, the OpenMMLab stack segreg needs is
# installed from a local wheel folder when `import mmseg` fails:
#   SEGREG_WHEELS=/path/to/wheelhouse benchmarks/gpu_suite.sh OUT_DIR
# (default: ./wheelhouse). Build that folder on a machine with internet and
# the image's Python version (dependencies included; onedl-mmcv is an sdist,
# pip wheel builds it):
#   pip wheel -w wheelhouse onedl-mmengine==0.10.12 onedl-mmcv==2.3.6 \
#       onedl-mmsegmentation==1.4.2 ftfy==6.3.1 regex==2026.11.19 \
#       scipy==1.17.1
#   rm -f wheelhouse/torch-* wheelhouse/nvidia_* wheelhouse/triton-*
# and copy it beside the checkout: the image's torch is kept as it is.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [--dry-run]" >&2
    exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
WHEELS="${SEGREG_WHEELS:-$REPO/wheelhouse}"
if ! "$PY" -c "import mmseg, mmengine" >/dev/null 2>&1; then
    if [ ! -d "$WHEELS" ]; then
        echo "$0: mmseg is not importable and the wheel folder $WHEELS does" \
             "not exist; set SEGREG_WHEELS (see the header of this script)" >&2
        exit 2
    fi
    "$PY" -m pip install --no-index --find-links "$WHEELS" \
        onedl-mmengine onedl-mmcv onedl-mmsegmentation ftfy regex scipy
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$REPO/benchmarks/gpu_suite.py" "$@"
