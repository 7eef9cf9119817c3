# Sourced by local.sh and tpu_pod.sh: run one command per worker, prefix each output
# line with the worker, and when any worker fails stop all the others.
#
#   supervise <stop_command> <command for worker 0> <command for worker 1> ...
#
# Each command is a string run by bash. `stop_command` (may be "") runs once after a
# failure, e.g. to kill the job on remote hosts that killing ssh does not reach.
# Returns the first non-zero exit code, or 0 when every worker succeeded.

supervise() {
  local stop="$1"; shift
  local pids=() i=0 status=0
  for cmd in "$@"; do
    # setsid: each worker is its own process group, so a stop reaches its children.
    setsid bash -c "set -o pipefail; ( $cmd ) 2>&1 | sed -u 's/^/[worker $i] /'" &
    pids+=("$!")
    i=$((i + 1))
  done
  trap 'for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done' INT TERM
  local live=("${pids[@]}")
  while (( ${#live[@]} > 0 )); do
    local still=() failed=0
    for p in "${live[@]}"; do
      if kill -0 "$p" 2>/dev/null; then still+=("$p"); continue; fi
      local code=0
      wait "$p" || code=$?
      if (( code != 0 && status == 0 )); then status=$code; failed=1; fi
    done
    live=("${still[@]+"${still[@]}"}")
    if (( failed )); then
      echo "[launch] a worker exited with code $status; stopping the others" >&2
      for p in "${live[@]+"${live[@]}"}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
      if [[ -n "$stop" ]]; then bash -c "$stop" || true; fi
    fi
    if (( ${#live[@]} > 0 )); then sleep 0.2; fi
  done
  trap - INT TERM
  return "$status"
}
