#!/usr/bin/env bash
# Build the oisp-sensor container image in two steps:
#   1. on the host, fetch (or build) the wheels of the package's dependencies into
#      build/image-wheels/, with the host's own pip, index and TLS trust;
#   2. podman build, which installs them with `pip install --no-index`: the build container
#      never talks to PyPI, so it needs neither PyPI access nor the host's CA certificates,
#      and the image runs offline.
#
# usage: deploy/build-image.sh [--tag NAME] [--base IMAGE] [--mmdebstrap-base] [--reuse]
#   --tag NAME         image name (default oisp-sensor:latest)
#   --base IMAGE       Debian 12 base image (default docker.io/library/debian:12-slim)
#   --mmdebstrap-base  no container registry reachable: make the base locally with mmdebstrap
#                      from the Debian mirror and `podman import` it (localhost/debian:12-mmdebstrap)
#   --reuse            skip the build when NAME exists and was built from the same sources
# env: PYTHON (default .venv/bin/python, else python3; must be Python 3.11 like Debian 12's),
#      PODMAN_BUILD_OPTS (default "--isolation chroot --network host": no OCI runtime needed
#      at build time, and apt reaches the mirror through the host's network).
set -euo pipefail

cd "$(dirname "$0")/.."
TAG=oisp-sensor:latest
BASE=docker.io/library/debian:12-slim
MMDEBSTRAP=0
REUSE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --mmdebstrap-base) MMDEBSTRAP=1; BASE=localhost/debian:12-mmdebstrap; shift ;;
    --reuse) REUSE=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
read -r -a BUILD_OPTS <<< "${PODMAN_BUILD_OPTS:---isolation chroot --network host}"
# --layers=false: no per-step layer cache (with the vfs storage driver each cached step is a
# full copy of the file system; several GB for the clang stage); --reuse covers rebuilds.
BUILD_OPTS+=(--layers=false)
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
command -v podman >/dev/null || { echo "build-image.sh: podman is not installed" >&2; exit 1; }

# The wheels must fit the image's interpreter (Debian 12: CPython 3.11).
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$pyver" != 3.11 ]; then
  echo "build-image.sh: $PYTHON is Python $pyver; the image has 3.11 (set PYTHON)" >&2
  exit 1
fi

# What the image is made of: a change to any of it means a rebuild under --reuse.
source_hash=$(
  { echo "$BASE"
    find deploy/Containerfile deploy/containerignore pyproject.toml bpf src -type f \
      ! -name '*.o' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)
if [ "$REUSE" = 1 ] &&
   [ "$(podman image inspect --format '{{index .Labels "org.oisp-sensor.source-hash"}}' "$TAG" 2>/dev/null)" = "$source_hash" ]; then
  echo "build-image.sh: $TAG is up to date (sources $source_hash)"
  exit 0
fi

if [ "$MMDEBSTRAP" = 1 ] && ! podman image exists "$BASE"; then
  command -v mmdebstrap >/dev/null || { echo "build-image.sh: apt-get install mmdebstrap" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "build-image.sh: making $BASE with mmdebstrap"
  mmdebstrap --variant=minbase --quiet bookworm "$tmp/base.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import --change 'CMD ["/bin/bash"]' "$tmp/base.tar" "$BASE" >/dev/null
fi

# Step 1: the dependencies' wheels (sdists are built into wheels here, on the host), plus
# the build backend pip needs for the package itself. The package's own wheel is dropped:
# the image builds it from the sources, with the BPF object compiled in the image.
WHEELS=build/image-wheels
rm -rf "$WHEELS"
mkdir -p "$WHEELS"
echo "build-image.sh: fetching wheels into $WHEELS"
"$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELS" .
"$PYTHON" -m pip download --quiet --only-binary :all: --dest "$WHEELS" 'setuptools>=68' wheel
rm -f "$WHEELS"/oisp_sensor-*.whl

# Step 2: the image.
echo "build-image.sh: podman build -t $TAG (base $BASE)"
previous=$(podman image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
podman build "${BUILD_OPTS[@]}" -f deploy/Containerfile --ignorefile deploy/containerignore \
  --build-arg BASE="$BASE" --label org.oisp-sensor.source-hash="$source_hash" -t "$TAG" .
# The image this one replaces would stay behind untagged (a full copy with vfs storage);
# podman refuses while a container or another tag still uses it, which is fine.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$TAG")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "build-image.sh: built $TAG ($(podman image inspect --format '{{.Size}}' "$TAG") bytes)"
