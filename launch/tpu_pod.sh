#!/usr/bin/env bash
# A Cloud TPU pod slice: create it, install this checkout on every worker, run one
# experiment on all workers at once, delete it.
#
#   launch/tpu_pod.sh create
#   launch/tpu_pod.sh setup
#   launch/tpu_pod.sh run --config=experiments/<name>.py --workdir=<shared dir> [overrides]
#   launch/tpu_pod.sh delete
#
# Environment (defaults in brackets):
#   TPU_NAME [bigmodels]   ZONE [us-central2-b]   ACCELERATOR [v4-16]
#   RUNTIME [tpu-ubuntu2204-base]   PROJECT [gcloud's default]
#   REMOTE_DIR [bigmodels]  the checkout on each worker, relative to its home
#   REMOTE_PYTHON [.venv/bin/python]  relative to REMOTE_DIR
#
# `run` starts `python -m bigmodels.main` on every worker over ssh, with
# --config.distributed.coordinator=cluster (JAX finds the other workers itself), and
# prefixes each line with its worker. If one worker fails, the others are stopped
# (their ssh sessions, then `pkill -f bigmodels.main` on every worker).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/supervise.sh"

TPU_NAME="${TPU_NAME:-bigmodels}"
ZONE="${ZONE:-us-central2-b}"
ACCELERATOR="${ACCELERATOR:-v4-16}"
RUNTIME="${RUNTIME:-tpu-ubuntu2204-base}"
REMOTE_DIR="${REMOTE_DIR:-bigmodels}"
REMOTE_PYTHON="${REMOTE_PYTHON:-.venv/bin/python}"
gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone "$ZONE")
if [[ -n "${PROJECT:-}" ]]; then where+=(--project "$PROJECT"); fi

on_worker() {   # on_worker <worker|all> <command>: the gcloud ssh command line, quoted
  printf '%q ' "${gcloud_tpu[@]}" ssh "$TPU_NAME" "${where[@]}" "--worker=$1" "--command=$2"
}

num_workers() {
  local ips
  ips="$("${gcloud_tpu[@]}" describe "$TPU_NAME" "${where[@]}" \
         --format='value(networkEndpoints[].ipAddress)')"
  awk -F';' '{print NF}' <<<"$ips"
}

case "${1:-}" in
  create)
    "${gcloud_tpu[@]}" create "$TPU_NAME" "${where[@]}" --accelerator-type="$ACCELERATOR" \
      --version="$RUNTIME"
    ;;
  setup)
    # Copies this checkout (tracked files) to every worker and installs it with the TPU jax.
    archive="$(mktemp --suffix=.tar.gz)"
    git -C "$here/.." archive --format=tar.gz -o "$archive" HEAD
    "${gcloud_tpu[@]}" scp "$archive" "$TPU_NAME:bigmodels.tar.gz" "${where[@]}" --worker=all
    bash -c "$(on_worker all "mkdir -p $REMOTE_DIR && tar -xzf bigmodels.tar.gz -C $REMOTE_DIR \
&& cd $REMOTE_DIR && python3 -m venv .venv && .venv/bin/pip install -q -e . 'jax[tpu]'")"
    rm -f "$archive"
    ;;
  run)
    shift
    if [[ $# -lt 2 ]]; then
      echo "usage: launch/tpu_pod.sh run --config=... --workdir=... [overrides]" >&2
      exit 2
    fi
    args=$(printf ' %q' "$@")
    remote="cd $REMOTE_DIR && $REMOTE_PYTHON -m bigmodels.main$args \
--config.distributed.coordinator=cluster"
    n="$(num_workers)"
    commands=()
    for ((w = 0; w < n; w++)); do commands+=("$(on_worker "$w" "$remote")"); done
    supervise "$(on_worker all "pkill -f bigmodels.main || true")" "${commands[@]}"
    ;;
  delete)
    "${gcloud_tpu[@]}" delete "$TPU_NAME" "${where[@]}" --quiet
    ;;
  *)
    echo "usage: launch/tpu_pod.sh create | setup | run --config=... --workdir=... | delete" >&2
    exit 2
    ;;
esac
