#!/usr/bin/env bash
# Create the project virtual environment (.venv) if it is missing and install
# segreg with the exact tested versions of constraints.txt into it (the
# OpenMMLab fork stack, extra [onedl], and the test tools, extra [dev]).
# Re-running is cheap (a hash, no pip call): nothing is reinstalled unless
# pyproject.toml or constraints.txt changed. Used by run_demo.sh and
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
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check
       -c "$ROOT/constraints.txt")
  echo "[setup] installing torch + torchvision (constraints.txt; about a minute)"
  "${PIP[@]}" torch torchvision 2>&1 | grep -v "is ignored" || true
  echo "[setup] installing segreg and the MMSegmentation stack (about a minute)"
  "${PIP[@]}" -e "$ROOT[dev,onedl]" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -c 'import segreg, mmseg.models' >/dev/null 2>&1 || {
    echo "error: installation failed: 'import segreg' does not work in $VENV" >&2
    "$VENV/bin/python" -c 'import segreg, mmseg.models' || true
    exit 1
  }
  echo "$WANT" > "$STAMP"
  echo "[setup] done: $VENV"
fi
