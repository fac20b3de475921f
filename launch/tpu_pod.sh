#!/usr/bin/env bash
# Train on a Cloud TPU VM slice (single host or pod): create/reuse the slice, install this checkout on
# every worker, run the trainer on all workers. After a preemption, run the same command again (or let
# launch/babysit.py do it): the slice is re-created and training resumes from the newest checkpoint.
set -euo pipefail

PROG=tpu_pod.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")

usage() {
  cat <<'EOF'
Usage: launch/tpu_pod.sh ACTION [options] [-- TRAINER FLAGS]

Actions:
  up       create the slice; reuse it when READY; delete and re-create it when PREEMPTED or TERMINATED
  install  pack this checkout (git-tracked + untracked, not ignored files), copy it to every worker,
           pip install -c requirements/constraints.txt -e '.[gcs]' 'jax[tpu]' into ~/ffnjax-venv there
  train    run python -m ffnjax.train TRAINER FLAGS on every worker (--worker=all) until it exits;
           worker i logs to ~/ffnjax-logs/<workdir base name>/worker-i.log on its VM
  run      up + install + train: the command to (re)run after a preemption
  status   print the slice's state (READY, PREEMPTED, ...)
  logs     copy every worker's ~/ffnjax-logs to ./logs/NAME/
  stop     SIGTERM the trainer on every worker (it saves a checkpoint and exits)
  delete   delete the slice

Options (or environment variables):
  --name=NAME               TPU_NAME          slice name
  --project=PROJECT         PROJECT           Google Cloud project
  --zone=ZONE               ZONE              e.g. us-east5-a
  --accelerator_type=TYPE   ACCELERATOR_TYPE  e.g. v5p-32 (up, run)
  --version=RUNTIME         TPU_VERSION       TPU software version, e.g. v2-alpha-tpuv5 (up, run)
  --spot | --preemptible                      create a spot / preemptible slice (up, run)
  --python=PY                                 Python >= 3.11 on the workers (default python3)
  --log_dir=DIR                               worker log directory (default ~/ffnjax-logs/<run>)
  --dry_run                                   print the commands, one per line; run nothing
  -h, --help

Use a gs:// --workdir: a slice's disks are lost when it is preempted or deleted, and all workers of a pod
must write the same checkpoint directory. Run the launcher where it can stay up (tmux, a small VM).
Example:
  launch/tpu_pod.sh run --name=ffnjax-a --project=P --zone=us-east5-a --accelerator_type=v5p-32 \
    --version=v2-alpha-tpuv5 --spot -- --config=configs/paper.py:baseline_285m_12l --workdir=gs://B/runs/a
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

run() { if (( DRY_RUN )); then show "$@"; else "$@"; fi; }

ACTION=${1:-}
[[ $ACTION == -h || $ACTION == --help ]] && { usage; exit 0; }
[[ $ACTION =~ ^(up|install|train|run|status|logs|stop|delete)$ ]] ||
  { usage >&2; die "first argument: up, install, train, run, status, logs, stop or delete (got '${ACTION}')"; }
shift

NAME=${TPU_NAME:-} PROJECT=${PROJECT:-} ZONE=${ZONE:-} ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-}
TPU_VERSION=${TPU_VERSION:-} CAPACITY="" PYTHON=python3 LOG_DIR="" DRY_RUN=0
TRAIN_ARGS=()
while (( $# )); do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dry_run) DRY_RUN=1 ;;
    --dry-run) old --dry-run --dry_run; DRY_RUN=1 ;;
    --name=*) NAME=${1#*=} ;;
    --project=*) PROJECT=${1#*=} ;;
    --zone=*) ZONE=${1#*=} ;;
    --accelerator_type=*) ACCELERATOR_TYPE=${1#*=} ;;
    --accelerator-type=*) old --accelerator-type --accelerator_type; ACCELERATOR_TYPE=${1#*=} ;;
    --version=*) TPU_VERSION=${1#*=} ;;
    --spot) CAPACITY=--spot ;;
    --preemptible) CAPACITY=--preemptible ;;
    --python=*) PYTHON=${1#*=} ;;
    --log_dir=*) LOG_DIR=${1#*=} ;;
    --log-dir=*) old --log-dir --log_dir; LOG_DIR=${1#*=} ;;
    --) shift; TRAIN_ARGS=("$@"); break ;;
    *) die "unknown option '$1' (trainer flags go after --); see --help" ;;
  esac
  shift
done

# Fail before touching anything: every missing setting is named with how to give it.
require() {  # require VALUE FLAG VAR
  [[ -n $1 ]] || die "$3 is not set; pass $2 or export $3"
}
require "$NAME" --name TPU_NAME
require "$PROJECT" --project PROJECT
require "$ZONE" --zone ZONE
if [[ $ACTION == up || $ACTION == run ]]; then
  require "$ACCELERATOR_TYPE" --accelerator_type ACCELERATOR_TYPE
  require "$TPU_VERSION" --version TPU_VERSION
fi
if [[ $ACTION == train || $ACTION == run ]]; then
  (( ${#TRAIN_ARGS[@]} )) || die "no trainer flags: pass them after --, e.g. -- --config=FILE:NAME --workdir=gs://..."
  workdir=""
  for a in "${TRAIN_ARGS[@]}"; do [[ $a == --workdir=* ]] && workdir=${a#*=}; done
  [[ -n $workdir ]] || die "--workdir=DIR is required among the trainer flags (use gs://BUCKET/...)"
  [[ $workdir == gs://* ]] || echo "$PROG: warning: --workdir=$workdir is on the workers' own disks: lost when" \
    "the slice is preempted or deleted, and not shared by a pod's workers; use gs://BUCKET/..." >&2
fi
if (( ! DRY_RUN )); then
  command -v gcloud >/dev/null 2>&1 ||
    die "gcloud not found on PATH; install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install"
  if [[ $ACTION == install || $ACTION == run ]]; then
    command -v git >/dev/null 2>&1 || die "git not found on PATH; it lists the checkout's files to copy"
  fi
fi

TPU=(gcloud compute tpus tpu-vm)
WHERE=("--zone=$ZONE" "--project=$PROJECT")

do_up() {
  local describe=("${TPU[@]}" describe "$NAME" "${WHERE[@]}" "--format=value(state)")
  local create=("${TPU[@]}" create "$NAME" "${WHERE[@]}" "--accelerator-type=$ACCELERATOR_TYPE"
                "--version=$TPU_VERSION")
  [[ -n $CAPACITY ]] && create+=("$CAPACITY")
  local delete=("${TPU[@]}" delete "$NAME" "${WHERE[@]}" --quiet)
  if (( DRY_RUN )); then
    show "${describe[@]}"
    echo "# if $NAME is PREEMPTED or TERMINATED:"
    show "${delete[@]}"
    echo "# if $NAME does not exist (or was deleted above); a READY slice is reused:"
    show "${create[@]}"
    return
  fi
  local state err
  err=$(mktemp)
  if state=$("${describe[@]}" 2>"$err"); then
    rm -f "$err"
  elif grep -qi 'not.found' "$err"; then
    rm -f "$err"; state=ABSENT
  else
    cat "$err" >&2; rm -f "$err"
    die "could not describe TPU $NAME in $ZONE/$PROJECT (see the gcloud error above)"
  fi
  echo "$PROG: TPU $NAME: ${state:-ABSENT}" >&2
  case ${state:-ABSENT} in
    READY) return 0 ;;
    PREEMPTED|TERMINATED) "${delete[@]}"; "${create[@]}" ;;
    ABSENT) "${create[@]}" ;;
    *) die "TPU $NAME is $state; wait until it is READY (or '$PROG delete') and run again" ;;
  esac
}

do_install() {
  # Staged under fixed names, so every launch overwrites the same two files in the workers' home.
  local stage="${TMPDIR:-/tmp}/ffnjax-stage"  # shown by --dry_run; a real run uses a fresh mktemp -d
  (( DRY_RUN )) || stage=$(mktemp -d)
  # Tracked and untracked files (not .gitignored ones such as venvs and caches); --ignore-failed-read
  # tolerates tracked files deleted in the working tree.
  local ls=(git -C "$REPO" ls-files -z --cached --others --exclude-standard)
  local tar=(tar -C "$REPO" --null --ignore-failed-read -czf "$stage/ffnjax.tgz" -T -)
  if (( DRY_RUN )); then echo "$(show "${ls[@]}") | $(show "${tar[@]}")"; else "${ls[@]}" | "${tar[@]}"; fi
  run cp "$HERE/tpu_worker.sh" "$stage/ffnjax-worker.sh"
  run "${TPU[@]}" scp "$stage/ffnjax.tgz" "$stage/ffnjax-worker.sh" "$NAME:" "${WHERE[@]}" --worker=all
  run "${TPU[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all \
    "--command=bash ffnjax-worker.sh install --tarball=ffnjax.tgz $(show "--python=$PYTHON")"
  (( DRY_RUN )) || rm -rf "$stage"
}

do_train() {
  local opts=()
  [[ -n $LOG_DIR ]] && opts+=("--log_dir=$LOG_DIR")
  run "${TPU[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all \
    "--command=bash ffnjax-worker.sh train $(show "${opts[@]}" -- "${TRAIN_ARGS[@]}")"
}

case $ACTION in
  up) do_up ;;
  install) do_install ;;
  train) do_train ;;
  run) do_up; do_install; do_train ;;
  status) run "${TPU[@]}" describe "$NAME" "${WHERE[@]}" "--format=value(state)" ;;
  logs) (( DRY_RUN )) || mkdir -p "logs/$NAME"
        run "${TPU[@]}" scp --recurse "$NAME:ffnjax-logs" "logs/$NAME/" "${WHERE[@]}" --worker=all ;;
  stop) run "${TPU[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all "--command=bash ffnjax-worker.sh stop" ;;
  delete) run "${TPU[@]}" delete "$NAME" "${WHERE[@]}" --quiet ;;
esac
