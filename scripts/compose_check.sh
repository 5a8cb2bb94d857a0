#!/usr/bin/env bash
# Build the oransim image and run `docker-compose up SERVICE` for real, then check that each
# service wrote a complete run folder into ./runs on the host. Needs a running Docker engine.
# (The test suite checks docker-compose.yml and the Dockerfile without one: tests/test_compose.py.)
#
# Usage: scripts/compose_check.sh [SERVICE ...]          default: standalone
# Environment:
#   BASE_IMAGE=IMAGE   build on IMAGE instead of the Dockerfile's python:3.11-slim-bookworm
#   LOCAL_BASE=1       no registry: first build a Debian bookworm base with debootstrap (needs root
#                      and debootstrap; about a minute), carrying this machine's CA bundle for pip,
#                      and build on it
#   BUILD_NETWORK=host the network of `docker build` (default: host, which pip needs behind a proxy)
set -euo pipefail
cd "$(dirname "$0")/.."

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(standalone)

compose() {
    if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
docker info >/dev/null 2>&1 || { echo "compose_check: no Docker engine reachable (docker info failed)" >&2; exit 2; }

if [ "${LOCAL_BASE:-0}" = 1 ]; then
    BASE_IMAGE=oransim-base:bookworm
    if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        rootfs=$(mktemp -d /tmp/oransim-rootfs.XXXXXX)
        trap 'rm -rf "$rootfs"' EXIT
        echo "compose_check: debootstrap bookworm into $rootfs"
        debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-pip,python3-dev,g++,make,ca-certificates \
            bookworm "$rootfs" >/dev/null
        # pip inside the build verifies TLS against this machine's CA bundle (it may hold a proxy's CA)
        cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
        tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
        rm -rf "$rootfs"
        trap - EXIT
    fi
fi

build_args=()
[ -n "${BASE_IMAGE:-}" ] && build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
image=$(python3 -c "import yaml; s = yaml.safe_load(open('docker-compose.yml'))['services']; print(s['${services[0]}'].get('image', 'oransim:latest'))" 2>/dev/null || echo oransim:latest)
t0=$(date +%s)
docker build --network "${BUILD_NETWORK:-host}" "${build_args[@]}" -t "$image" .
echo "compose_check: image $image built in $(( $(date +%s) - t0 )) s"

mkdir -p runs
status=0
for svc in "${services[@]}"; do
    stamp=$(mktemp)
    t0=$(date +%s)
    if compose up --no-build --exit-code-from "$svc" "$svc"; then
        folders=$(find runs -name manifest.json -newer "$stamp" -printf '%h\n')
        if [ -n "$folders" ]; then
            echo "compose_check: $svc OK in $(( $(date +%s) - t0 )) s, wrote: $folders"
        else
            echo "compose_check: $svc exited 0 but wrote no run folder under ./runs" >&2
            status=1
        fi
    else
        echo "compose_check: $svc failed" >&2
        status=1
    fi
    rm -f "$stamp"
    compose rm -f -s "$svc" >/dev/null 2>&1 || true
done
exit $status
