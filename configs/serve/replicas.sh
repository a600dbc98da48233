#!/usr/bin/env bash
# Several `xception serve` replicas behind nginx on loopback: what a KServe InferenceService with
# several replicas does behind its router, on one machine (docs/serve.md).
#
#   configs/serve/replicas.sh WEIGHTS [REPLICAS=2] [PORT=8000] [-- extra `xception serve` options]
#
# Replica k listens on 127.0.0.1:PORT+k, nginx on 127.0.0.1:PORT. Runs until SIGTERM or Ctrl-C, then
# stops nginx gracefully and sends SIGTERM to every replica (each finishes what it has in flight).
set -euo pipefail
weights=${1:?usage: replicas.sh WEIGHTS [REPLICAS] [PORT] [-- serve options]}
replicas=${2:-2}
port=${3:-8000}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
xception=${XCEPTION:-xception}
command -v nginx >/dev/null || { echo "replicas.sh: nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

scratch=$(mktemp -d -t xception-replicas-XXXXXX)
pids=()
stop() {
    trap - TERM INT EXIT
    [ -f "$scratch/nginx.pid" ] && kill -QUIT "$(cat "$scratch/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
    rm -rf "$scratch"
    exit "$status"
}
trap stop TERM INT EXIT

servers=""
for k in $(seq 1 "$replicas"); do
    $xception serve --weights "$weights" --port $((port + k)) "$@" &
    pids+=($!)
    servers+="        server 127.0.0.1:$((port + k)) max_fails=1 fail_timeout=2s;"$'\n'
done
for k in $(seq 1 "$replicas"); do  # nginx starts once every replica is ready
    until curl -sf "http://127.0.0.1:$((port + k))/v2/health/ready" >/dev/null; do
        kill -0 "${pids[$((k - 1))]}" 2>/dev/null || { echo "replicas.sh: replica $k exited" >&2; exit 1; }
        sleep 0.5
    done
done
mkdir -p "$scratch/tmp"
{
    [ "$(id -u)" = 0 ] && echo "user root;"  # the workers write the temporary files in $scratch
    sed -e "s/@PORT@/$port/g" "$here/nginx.conf" | awk -v servers="$servers" '/^@SERVERS@$/ { printf "%s", servers; next } { print }'
} > "$scratch/nginx.conf"
nginx -p "$scratch" -c "$scratch/nginx.conf" -g "daemon off;" &
pids+=($!)
echo "replicas.sh: $replicas replicas behind nginx at http://127.0.0.1:$port" >&2
wait "${pids[-1]}"
