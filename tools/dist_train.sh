#!/usr/bin/env bash
# Distributed training on one or more nodes with PyTorch's torchrun.
#   bash tools/dist_train.sh CONFIG GPUS [train.py options...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# One node without PORT: torchrun --standalone picks a free port itself (no
# collision between jobs on one machine). Every rank destroys its process
# group before exiting, so a finished job exits 0 (docs/reliability.md).
#
# Pre-emption: SIGTERM or SIGUSR1 sent to this script is passed to the
# training ranks (not to torchrun, whose own handler would give them 30 s
# and then report a failure); they finish the current iteration, write one
# checkpoint and stop at the same iteration; this script then exits 75.
# Continue with the same command plus --resume.
#
# Exit status: 0 finished; 75 stopped by SIGTERM / SIGUSR1 after a
# checkpoint; 2 a config / data mistake (one line); else torchrun's status.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [tools/train.py options]" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
if [ "$NNODES" = 1 ] && [ -z "${PORT:-}" ]; then
  RDZV=(--standalone)
else
  RDZV=(--nnodes="$NNODES" --node_rank="$NODE_RANK"
        --master_addr="$MASTER_ADDR" --master_port="${PORT:-29500}")
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PYTHON" ] || PYTHON=python

# The ranks write their exit status here (tools/train.py): under torchrun a
# pre-empted rank exits 0, since torchrun reports any other status as a
# failure.
STATUS_FILE=$(mktemp "${TMPDIR:-/tmp}/segreg-status.XXXXXX")
trap 'rm -f "$STATUS_FILE"' EXIT
# torchrun: a SIGUSR1 that reaches it too (a signal to the whole process
# group) shuts the ranks down through its handler instead of killing it
export TORCHELASTIC_SIGNALS_TO_HANDLE=${TORCHELASTIC_SIGNALS_TO_HANDLE:-"SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"}

SEGREG_STATUS_FILE="$STATUS_FILE" PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run \
    "${RDZV[@]}" \
    --nproc_per_node="$GPUS" \
    "$ROOT/tools/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}" &
LAUNCHER=$!

# Pass SIGTERM / SIGUSR1 on to the ranks (torchrun's children); before they
# exist, to torchrun.
FORWARDED=""
forward() {
  pkill -"$1" -P "$LAUNCHER" 2>/dev/null || kill -"$1" "$LAUNCHER" 2>/dev/null \
    || true
  FORWARDED=1
}
trap 'forward TERM' TERM
trap 'forward USR1' USR1
rc=0
wait "$LAUNCHER" || rc=$?
# a trapped signal ends `wait` early (status > 128): wait again for torchrun
while [ -n "$FORWARDED" ] && [ "$rc" -gt 128 ]; do
  FORWARDED=""
  again=0
  wait "$LAUNCHER" || again=$?
  [ "$again" = 127 ] && break  # it had ended already: keep its status
  rc=$again
done
recorded=$(cat "$STATUS_FILE" 2>/dev/null || true)
if [ "$rc" = 0 ] && [ "$recorded" = 75 ]; then
  echo "dist_train.sh: training stopped by a signal after a checkpoint;" \
       "continue with the same command and --resume" >&2
  exit 75
fi
# torchrun exits 1 whatever a failed rank's status: prefer the rank's (2)
if [ "$rc" != 0 ] && [ -n "$recorded" ] && [ "$recorded" != 0 ]; then
  exit "$recorded"
fi
exit "$rc"
