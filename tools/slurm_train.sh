#!/usr/bin/env bash
# Training under SLURM as a batch job that survives its time limit and
# pre-emption: it checkpoints, requeues itself and resumes exactly.
#
#   [GPUS=8 GPUS_PER_NODE=4 CPUS_PER_TASK=5 TIME=2-00:00:00 PREEMPT_SECS=300 \
#    SBATCH_ARGS="--account=X" SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [tools/train.py options]
#
# On a login node (no SLURM_JOB_ID) it submits itself with sbatch: GPUS tasks,
# GPUS_PER_NODE per node (one GPU each), --requeue, --signal=B:USR1@PREEMPT_SECS,
# the log slurm-<JOB_NAME>-<job id>.out in the current folder (appended by
# every requeued run), TIME as --time if set; SBATCH_ARGS come last and win.
# Inside a job (that batch job, or your own sbatch script or salloc) it runs
# one task per GPU with srun (tools/train.py --launcher slurm).
#
# Time limit and pre-emption: PREEMPT_SECS seconds (default 300) before the
# limit SLURM sends SIGUSR1 to this script, which passes it on to the tasks
# through srun; a SIGTERM (pre-emption, `scancel --signal=TERM JOBID`) is
# passed on the same way. Every rank finishes its current iteration, one
# checkpoint is written (atomically), and tools/train.py exits 75; this
# script then requeues the job (`scontrol requeue $SLURM_JOB_ID`; same job
# ID and log). The requeued run (SLURM_RESTART_COUNT > 0) trains with
# --resume in place of any --resume given: it continues from the last
# checkpoint of the work dir, bit-identical to an uninterrupted run
# (docs/reliability.md). The first run never resumes on its own, so a stale
# work dir is not continued by accident; pass --resume for that.
# PREEMPT_SECS must cover one iteration, one checkpoint and (a signal during
# validation stops it early) one validation iteration.
#
# Exit status inside the job: 0 finished; 75 stopped by a signal after a
# checkpoint (requeued, or to be resumed by hand when requeueing is refused,
# e.g. under salloc); 2 a config / data mistake, reported in one line;
# otherwise srun's status.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: [GPUS=4 GPUS_PER_NODE=4 CPUS_PER_TASK=5 TIME=... PREEMPT_SECS=300 SBATCH_ARGS=... SRUN_ARGS=...] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [tools/train.py options]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
PREEMPT_SECS=${PREEMPT_SECS:-300}
SBATCH_ARGS=${SBATCH_ARGS:-""}
SRUN_ARGS=${SRUN_ARGS:-""}
# inside the batch job $0 is SLURM's copy of this script: the checkout comes
# from the submitting shell
ROOT=${SEGREG_ROOT:-"$(cd "$(dirname "$0")/.." && pwd)"}
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PYTHON" ] || PYTHON=python

if [ -z "${SLURM_JOB_ID:-}" ]; then
  TIME_ARG=()
  [ -z "${TIME:-}" ] || TIME_ARG=(--time="$TIME")
  # shellcheck disable=SC2086
  exec sbatch \
    --partition="$PARTITION" \
    --job-name="$JOB_NAME" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    ${TIME_ARG[@]+"${TIME_ARG[@]}"} \
    --requeue \
    --signal=B:USR1@"$PREEMPT_SECS" \
    --open-mode=append \
    --output="slurm-%x-%j.out" \
    --export=ALL,SEGREG_ROOT="$ROOT" \
    $SBATCH_ARGS \
    "$ROOT/tools/slurm_train.sh" "$PARTITION" "$JOB_NAME" "$CONFIG" "$@"
fi

# a requeued run resumes from the work dir, whatever --resume the first had
ARGS=()
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
  prev=""
  for arg in "$@"; do
    if [ "$prev" = --resume ] && [ "${arg#-}" = "$arg" ]; then
      prev=""
      continue  # the checkpoint file given to --resume
    fi
    prev=$arg
    case "$arg" in --resume | --resume=*) continue ;; esac
    ARGS+=("$arg")
  done
  ARGS+=(--resume)
  echo "slurm_train.sh: run $SLURM_RESTART_COUNT of job $SLURM_JOB_ID" \
       "resumes from the work dir" >&2
else
  ARGS=("$@")
fi

# tools/train.py writes its exit status here: srun's own status can be
# another task's, killed by --kill-on-bad-exit while it was exiting too
STATUS_FILE=$(mktemp "${TMPDIR:-/tmp}/segreg-status.XXXXXX")
trap 'rm -f "$STATUS_FILE"' EXIT

# shellcheck disable=SC2086
SEGREG_STATUS_FILE="$STATUS_FILE" PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
srun --kill-on-bad-exit=1 \
    --cpus-per-task="${SLURM_CPUS_PER_TASK:-$CPUS_PER_TASK}" \
    $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm \
    ${ARGS[@]+"${ARGS[@]}"} &
STEP=$!

# srun passes SIGUSR1 / SIGTERM on to the tasks
FORWARDED=""
forward() { kill -"$1" "$STEP" 2>/dev/null || true; FORWARDED=1; }
trap 'forward USR1' USR1
trap 'forward TERM' TERM
rc=0
wait "$STEP" || rc=$?
# a trapped signal ends `wait` early (status > 128): wait again for srun
while [ -n "$FORWARDED" ] && [ "$rc" -gt 128 ]; do
  FORWARDED=""
  again=0
  wait "$STEP" || again=$?
  [ "$again" = 127 ] && break  # it had ended already: keep its status
  rc=$again
done

if [ "$(cat "$STATUS_FILE" 2>/dev/null)" = 75 ]; then
  if scontrol requeue "$SLURM_JOB_ID"; then
    echo "slurm_train.sh: checkpoint written; job $SLURM_JOB_ID requeued," \
         "it resumes from the work dir" >&2
  else
    echo "slurm_train.sh: checkpoint written, but job $SLURM_JOB_ID could" \
         "not be requeued; continue with the same command and --resume" >&2
  fi
  exit 75
fi
exit "$rc"
