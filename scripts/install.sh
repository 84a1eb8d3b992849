#!/bin/sh
# oisp-sensor installer for CI machines and servers (Debian 12+, Ubuntu 24.04+). Idempotent:
# run it again and it only does what is missing.
#
#   curl -fsSL https://sensor.oisp.dev/install.sh | sudo sh      # or: sudo sh scripts/install.sh
#
# What it does: checks root, Linux and kernel BTF; installs the Debian packages it needs
# (only those missing); creates a venv; installs the sensor into it (from the checkout this
# script lives in, else OISP_SENSOR_SOURCE, else PyPI); builds the BPF object when the
# source has none; links `oisp-sensor` into /usr/local/bin (on sudo's secure_path).
#
# Environment: OISP_PREFIX (/opt/oisp-sensor), OISP_VENV ($OISP_PREFIX/venv),
# OISP_BIN_DIR (/usr/local/bin), OISP_SENSOR_SOURCE (a checkout, a wheel, a pip
# requirement), OISP_REINSTALL=1 (reinstall even when the same version is there).
set -eu

PREFIX=${OISP_PREFIX:-/opt/oisp-sensor}
VENV=${OISP_VENV:-$PREFIX/venv}
BIN_DIR=${OISP_BIN_DIR:-/usr/local/bin}
BTF=${OISP_BTF_PATH:-/sys/kernel/btf/vmlinux}
SOURCE=${OISP_SENSOR_SOURCE:-}
# Where a piped install (curl ... | sh) takes the sensor from; a release build sets it.
DEFAULT_SOURCE=""

say() { echo "oisp-sensor install: $*"; }
die() { echo "oisp-sensor install: error: $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "Linux only (eBPF)"
[ "$(id -u)" -eq 0 ] || die "run as root: the sensor loads eBPF programs (curl -fsSL .../install.sh | sudo sh)"
[ -r "$BTF" ] || die "this kernel ($(uname -r)) has no BTF ($BTF is missing): the sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian 11+, Ubuntu 20.10+ and the GitHub/GitLab/CircleCI Linux runners have it)"
command -v apt-get >/dev/null 2>&1 || die "Debian/Ubuntu only (no apt-get); elsewhere install python3 >= 3.11 and libbpf 1.x, then pip install the sensor"

# The source: the checkout around this script (sh scripts/install.sh), unless told otherwise.
if [ -z "$SOURCE" ]; then
    here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || true)
    if [ -n "$here" ] && [ -f "$here/../pyproject.toml" ] && grep -q '^name = "oisp-sensor"' "$here/../pyproject.toml"; then
        SOURCE=$(cd "$here/.." && pwd)
    else
        SOURCE=$DEFAULT_SOURCE
    fi
fi
[ -n "$SOURCE" ] || die "no sensor source: run scripts/install.sh from a checkout, or set OISP_SENSOR_SOURCE to a checkout, a wheel or a pip requirement (git+https://...)"

# Debian packages: runtime (python3 >= 3.11, venv, libbpf 1.x); to build the BPF object
# from a checkout also clang, llvm, bpftool, libbpf-dev and make.
packages="python3 python3-venv libbpf1 ca-certificates"
if [ -d "$SOURCE" ] && [ ! -f "$SOURCE/src/oisp_sensor/bpf/oisp.bpf.o" ]; then
    packages="$packages clang llvm libbpf-dev bpftool make"
fi
missing=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    for p in $missing; do
        apt-cache show "$p" >/dev/null 2>&1 || die "package $p is not available on this system: the sensor needs libbpf 1.x and python3 >= 3.11 (Debian 12, Ubuntu 24.04 or newer)"
    done
    # shellcheck disable=SC2086  # word splitting wanted: one argument per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || die "apt-get install failed:$missing"
else
    say "Debian packages present"
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 >= 3.11 needed, found $(python3 -V 2>&1)"

# The BPF object (a checkout has none until built): CO-RE, built once against this kernel's BTF.
if [ -d "$SOURCE" ] && [ ! -f "$SOURCE/src/oisp_sensor/bpf/oisp.bpf.o" ]; then
    say "building the BPF object"
    make -s -C "$SOURCE" bpf >/dev/null || die "building the BPF object failed (make -C $SOURCE bpf)"
fi

# The venv, and the sensor in it (skipped when this very version is installed).
if [ ! -x "$VENV/bin/python" ]; then
    say "creating the venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
wanted=""
if [ -f "$SOURCE/pyproject.toml" ]; then
    wanted=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SOURCE/pyproject.toml" | head -n 1)
fi
installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("oisp-sensor"))' 2>/dev/null || true)
if [ -n "$wanted" ] && [ "$installed" = "$wanted" ] && [ -z "${OISP_REINSTALL:-}" ] \
    && "$VENV/bin/python" -c 'import importlib.resources as r, sys; sys.exit(not r.files("oisp_sensor").joinpath("bpf/oisp.bpf.o").is_file())' 2>/dev/null; then
    say "oisp-sensor $installed already installed in $VENV"
else
    say "installing oisp-sensor from $SOURCE into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$SOURCE" || die "pip install $SOURCE failed"
fi
"$VENV/bin/python" -c 'import importlib.resources as r, sys; sys.exit(not r.files("oisp_sensor").joinpath("bpf/oisp.bpf.o").is_file())' \
    || die "the installed package has no BPF object (oisp_sensor/bpf/oisp.bpf.o): build it first (make bpf) or use a release"

mkdir -p "$BIN_DIR"
ln -sf "$VENV/bin/oisp-sensor" "$BIN_DIR/oisp-sensor"
say "ready: $BIN_DIR/oisp-sensor ($("$BIN_DIR/oisp-sensor" --version)); check the machine with: sudo oisp-sensor check"
