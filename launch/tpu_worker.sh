#!/usr/bin/env bash
# Runs ON each TPU VM worker (launch/tpu_pod.sh copies it to ~/ffnjax-worker.sh and calls it via
# `gcloud compute tpus tpu-vm ssh --worker=all`). Installs the package, and starts/stops the trainer.
set -euo pipefail

PROG=tpu_worker.sh

usage() {
  cat <<'EOF'
Usage (on a TPU VM worker; normally called by launch/tpu_pod.sh):
  tpu_worker.sh install --tarball=FILE [--python=PY] [--src=DIR] [--venv=DIR] [--dry_run]
  tpu_worker.sh train   [--log_dir=DIR] [--src=DIR] [--venv=DIR] [--dry_run] -- TRAINER FLAGS
  tpu_worker.sh stop    [--timeout=SECONDS]

install  stops a running trainer, unpacks FILE into --src (default ~/ffnjax), creates the venv
         (default ~/ffnjax-venv; needs Python >= 3.11) and runs
         pip install -c requirements/constraints.txt -e 'SRC[gcs]' 'jax[tpu]'
train    stops a trainer still running from an earlier launch (it checkpoints on SIGTERM), then runs
         python -m ffnjax.train TRAINER FLAGS, its output in DIR/worker-<id>.log (default
         ~/ffnjax-logs/<workdir base name>/) and echoed with a "[worker <id>]" prefix.
         Multi-host slices: exports JAX_COORDINATOR_ADDRESS (worker 0) so the trainer calls
         jax.distributed.initialize(); JAX reads the worker's id and count from the TPU metadata.
stop     SIGTERM to the running trainer; waits up to --timeout (default 600) for its checkpoint.
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
old() { echo "$PROG: warning: $1 is spelt $2 now (the old spelling still works)" >&2; }  # --kebab-case flags

show() {
  local out=() a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}

ACTION=${1:-}
[[ $ACTION == -h || $ACTION == --help ]] && { usage; exit 0; }
[[ $ACTION =~ ^(install|train|stop)$ ]] || { usage >&2; die "first argument: install, train or stop (got '${ACTION}')"; }
shift

SRC=$HOME/ffnjax VENV=$HOME/ffnjax-venv PYTHON=python3 TARBALL="" LOG_DIR="" DRY_RUN=0 TIMEOUT=600
PIDFILE=$HOME/ffnjax-train.pid  # one trainer per worker: the TPU chips are exclusive
TRAIN_ARGS=()
while (( $# )); do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dry_run) DRY_RUN=1 ;;
    --dry-run) old --dry-run --dry_run; DRY_RUN=1 ;;
    --src=*) SRC=${1#*=} ;;
    --venv=*) VENV=${1#*=} ;;
    --python=*) PYTHON=${1#*=} ;;
    --tarball=*) TARBALL=${1#*=} ;;
    --log_dir=*) LOG_DIR=${1#*=} ;;
    --log-dir=*) old --log-dir --log_dir; LOG_DIR=${1#*=} ;;
    --timeout=*) TIMEOUT=${1#*=} ;;
    --) shift; TRAIN_ARGS=("$@"); break ;;
    *) die "unknown option '$1' (trainer flags go after --); see --help" ;;
  esac
  shift
done

metadata() {  # a Cloud TPU VM's own attribute, e.g. agent-worker-number
  curl -sf --max-time 5 -H Metadata-Flavor:Google \
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/$1"
}

running() {  # a live process; not a zombie that its parent has yet to reap
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

stop_trainer() {
  [[ -f $PIDFILE ]] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  # Only a live ffnjax.train process: the pid may have been reused since the file was written.
  if [[ $pid =~ ^[0-9]+$ ]] && grep -qa ffnjax.train "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$PROG: stopping the running trainer (pid $pid) with a checkpoint" >&2
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while running "$pid" && (( waited < TIMEOUT )); do sleep 1; waited=$((waited + 1)); done
    if running "$pid"; then
      echo "$PROG: trainer $pid still running after ${TIMEOUT}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDFILE"
}

if [[ $ACTION == stop ]]; then
  if (( DRY_RUN )); then echo "kill -TERM \$(cat $PIDFILE)"; exit 0; fi
  stop_trainer
  exit 0
fi

if [[ $ACTION == install ]]; then
  [[ -n $TARBALL ]] || die "--tarball=FILE is required (the packed checkout; launch/tpu_pod.sh install makes it)"
  # [gcs]: gcsfs, for gs:// workdirs (config, metrics, evaluation outputs; Orbax writes arrays itself)
  pip_cmd=("$VENV/bin/pip" install -q -c "$SRC/requirements/constraints.txt" -e "${SRC}[gcs]" "jax[tpu]")
  if (( DRY_RUN )); then
    show rm -rf "$SRC"; show mkdir -p "$SRC"; show tar -xzf "$TARBALL" -C "$SRC"
    show "$PYTHON" -m venv "$VENV"; show "${pip_cmd[@]}"
    exit 0
  fi
  [[ -f $TARBALL ]] || die "--tarball=$TARBALL does not exist on $(hostname)"
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found on $(hostname); pass --python=PY (Python >= 3.11)"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    die "$PYTHON on $(hostname) is $("$PYTHON" -V 2>&1) but ffnjax needs Python >= 3.11; pass --python=python3.11" \
        "(sudo apt-get install -y python3.11 python3.11-venv) or choose a TPU runtime --version that has it"
  fi
  stop_trainer  # it runs from the tree about to be replaced
  rm -rf "$SRC"
  mkdir -p "$SRC"
  tar -xzf "$TARBALL" -C "$SRC"
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
  "${pip_cmd[@]}"
  echo "$PROG: installed $SRC into $VENV on $(hostname)"
  exit 0
fi

# train
(( ${#TRAIN_ARGS[@]} )) || die "no trainer flags: pass them after --, e.g. -- --config=FILE:NAME --workdir=DIR"
workdir=""
for a in "${TRAIN_ARGS[@]}"; do [[ $a == --workdir=* ]] && workdir=${a#*=}; done
[[ -n $workdir ]] || die "--workdir=DIR is required among the trainer flags"
worker=${TPU_WORKER_ID:-$(metadata agent-worker-number || true)}
[[ $worker =~ ^[0-9]+$ ]] || die "cannot tell this worker's id (not a Cloud TPU VM?); export TPU_WORKER_ID"
endpoints=${TPU_WORKER_HOSTNAMES:-$(metadata worker-network-endpoints || true)}
if [[ $endpoints == *,* && -z ${JAX_COORDINATOR_ADDRESS:-} ]]; then
  # Entries are "host" or "name:id:ip"; worker 0 comes first and hosts JAX's coordinator.
  first=${endpoints%%,*}
  export JAX_COORDINATOR_ADDRESS=${first##*:}:8476
fi
LOG_DIR=${LOG_DIR:-$HOME/ffnjax-logs/$(basename "$workdir")}
log="$LOG_DIR/worker-$worker.log"
cmd=("$VENV/bin/python" -m ffnjax.train "${TRAIN_ARGS[@]}")
if (( DRY_RUN )); then
  [[ -n ${JAX_COORDINATOR_ADDRESS:-} ]] && show export "JAX_COORDINATOR_ADDRESS=$JAX_COORDINATOR_ADDRESS"
  show cd "$SRC"
  echo "$(show "${cmd[@]}") >>$(show "$log") 2>&1"
  exit 0
fi
[[ -x ${cmd[0]} ]] || die "${cmd[0]} not found; run 'launch/tpu_pod.sh install' first"
stop_trainer
mkdir -p "$LOG_DIR"
cd "$SRC"
offset=$(( $(stat -c %s "$log" 2>/dev/null || echo 0) + 1 ))
echo "=== $(date -Is) worker $worker on $(hostname): $(show "${cmd[@]}")" >>"$log"
# The trainer writes to its log file, not to ssh: a dropped ssh connection must not kill it mid-save.
"${cmd[@]}" >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$PIDFILE"
trap 'kill -TERM "$pid" 2>/dev/null || true' HUP INT TERM  # the trainer checkpoints on SIGTERM
tail -c "+$offset" -f --pid="$pid" "$log" | sed -u "s/^/[worker $worker] /" &
tail_pid=$!
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
rc=0
wait "$pid" || rc=$?
wait "$tail_pid" 2>/dev/null || true
rm -f "$PIDFILE"
echo "[worker $worker] ffnjax.train exited $rc (log: $log)"
exit "$rc"
