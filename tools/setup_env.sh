#!/usr/bin/env bash
# Create the project virtual environment (.venv) if it is missing and install
# segreg with its pinned dependencies into it. Re-running is cheap: nothing is
# reinstalled unless pyproject.toml changed. Used by run_demo.sh and
# run_tests.sh; source-able settings:
#   PYTHON=python3.11   interpreter that creates the venv (3.10-3.12)
#   SEGREG_VENV=path    where the venv lives (default: <repo>/.venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SEGREG_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
    echo "error: $PY is $("$PY" --version 2>&1); segreg needs Python 3.10-3.12 (set PYTHON=...)" >&2
    exit 2
  fi
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi

STAMP="$VENV/.segreg-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "[setup] installing torch 2.14.1 + torchvision 0.29.1 (about a minute)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    torch==2.14.1 torchvision==0.29.1 2>&1 | grep -v "is ignored" || true
  echo "[setup] installing segreg and the MMSegmentation stack (about a minute)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e "$ROOT[dev]" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -c 'import segreg, mmseg.models' >/dev/null 2>&1 || {
    echo "error: installation failed: 'import segreg' does not work in $VENV" >&2
    "$VENV/bin/python" -c 'import segreg, mmseg.models' || true
    exit 1
  }
  echo "$WANT" > "$STAMP"
  echo "[setup] done: $VENV"
fi
