#!/usr/bin/env bash
# Which container engine builds and runs the image, printed for the Makefile: docker where a
# daemon answers, else podman with this folder's containers.conf. Installs podman, runc and
# mmdebstrap with apt-get where they are missing and we are root (CI's machines), and says
# why not otherwise (exit 3). catatonit is the pause process of `podman kube play`'s pods.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo docker
  exit 0
fi
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1 || ! command -v catatonit >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends podman runc catatonit mmdebstrap uidmap >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends podman runc catatonit mmdebstrap uidmap >/dev/null; }; } ||
      { echo "podman could not be installed with apt-get" >&2; exit 3; }
  else
    echo "no container engine: install podman (or run a docker daemon); installing needs root and apt-get" >&2
    exit 3
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "podman here runs as root only (the image test starts hardened containers on the host network)" >&2
  exit 3
fi
echo "env CONTAINERS_CONF=$here/containers.conf podman"
