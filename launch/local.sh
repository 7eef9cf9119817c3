#!/usr/bin/env bash
# N processes of one run on this machine, joined through jax.distributed: the way to
# test multi-host code paths without a cluster.
#
#   launch/local.sh <num_processes> --config=experiments/<name>.py --workdir=<dir> [overrides]
#
# Environment:
#   CPU_DEVICES_PER_PROCESS=K  give each process K fake CPU devices (default: leave the
#                              devices alone, e.g. one process per GPU is not arranged)
#   PORT=P                     the coordinator port (default: a free one)
#   PYTHON=...                 the interpreter (default: python)
# Output lines are prefixed with [worker i]; if one process fails, the others are stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/supervise.sh"

if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: launch/local.sh <num_processes> --config=... --workdir=... [overrides]" >&2
  exit 2
fi
n="$1"; shift
python="${PYTHON:-python}"
port="${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')}"
if [[ -n "${CPU_DEVICES_PER_PROCESS:-}" ]]; then
  export JAX_PLATFORMS=cpu
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$CPU_DEVICES_PER_PROCESS"
fi

args=$(printf ' %q' "$@")
commands=()
for ((i = 0; i < n; i++)); do
  commands+=("$(printf '%q' "$python") -m bigmodels.main$args \
--config.distributed.coordinator=localhost:$port --config.distributed.num_processes=$n \
--config.distributed.process_id=$i")
done
supervise "" "${commands[@]}"
