#!/usr/bin/env bash
# Build the Dockerfile's base image locally, for machines no registry serves base images to
# (CI's, this project's development machines): a minimal Debian bookworm with Python 3.11
# from this machine's own apt sources (mmdebstrap), imported as an image. `python` and `pip`
# are on PATH as in the official python image (a venv at /usr/local). Like that image it
# has no perl (usrmerge, which pulls it in, has done its work once the tree is built), no
# locales and no documentation.
#
#   helm/image/build-base.sh ENGINE TAG     e.g. "podman" localhost/compactor-base:bookworm
#
# Where a registry is reachable, skip this: the Dockerfile's default BASE is pulled.
set -euo pipefail
engine="$1"
tag="$2"
if $engine image exists "$tag" 2>/dev/null || $engine image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The machine's apt sources (deb822 files and the classic list), as mmdebstrap's mirrors.
mirrors=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [ -s "$f" ] && mirrors+=("$f")
done
echo "building $tag with mmdebstrap from ${mirrors[*]} (a few minutes)"
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-venv,ca-certificates,netbase,tzdata,passwd \
  --customize-hook='chroot "$1" python3 -m venv /usr/local' \
  --customize-hook='chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --autoremove usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl perl-modules-5.36 libperl5.36 > /dev/null' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/usr/share/info/*' \
  bookworm "$work/base.tar" "${mirrors[@]}"
$engine import --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' "$work/base.tar" "$tag"
