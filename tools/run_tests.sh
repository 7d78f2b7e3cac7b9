#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole pytest suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k losses -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
# Optional system package for the HTML-report browser test (skipped if absent).
if [ -x tools/ci/install_system_deps.sh ]; then
  bash tools/ci/install_system_deps.sh || echo "[tests] system deps not installed; browser test will be skipped"
fi
VENV="${SEGREG_VENV:-$ROOT/.venv}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$VENV/bin/python" -m pytest "$@"
