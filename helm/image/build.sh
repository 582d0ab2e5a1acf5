#!/usr/bin/env bash
# Build helm/Dockerfile as IMAGE (the Makefile's `make image`).
#
#   helm/image/build.sh IMAGE
#
# The base is the Dockerfile's default (the official python image) when the engine can pull
# it; where no registry serves it, a Debian base built from this machine's apt sources
# (build-base.sh). BASE=... picks one explicitly. Builds reach PyPI on the host network;
# behind a TLS-intercepting proxy the host's CA bundle is mounted into the build (read
# only, never copied into the image).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
image="$1"
engine="$("$repo/helm/image/podman.sh")"
default_base="$(sed -n 's/^ARG BASE=//p' "$repo/helm/Dockerfile")"
base="${BASE:-}"
if [ -z "$base" ]; then
  if $engine image inspect "$default_base" >/dev/null 2>&1 || $engine pull -q "$default_base" >/dev/null 2>&1; then
    base="$default_base"
  else
    base="localhost/compactor-base:bookworm"
    echo "no registry serves $default_base here: building $base from this machine's apt sources"
    "$repo/helm/image/build-base.sh" "$engine" "$base"
  fi
fi
args=(--network host --build-arg "BASE=$base" -f "$repo/helm/Dockerfile" -t "$image")
ca="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
if [ -s "$ca" ]; then
  args+=(-v "$ca:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
fi
case "$engine" in
  *podman*) args+=(--ignorefile "$repo/helm/Dockerfile.dockerignore") ;;
esac
echo "building $image from $base"
start=$(date +%s)
$engine build "${args[@]}" "$repo"
$engine image inspect "$image" --format '{{.Size}}' |
  awk -v t=$(( $(date +%s) - start )) '{printf "built in %d s; image size %.0f MB\n", t, $1/1e6}'
