# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/demo and scripts/devstack.
# Source it; it defines functions and BF_REPO, nothing runs on load.

BF_REPO=${BF_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

# Debian packages the build, the unit tests, the integration tests and the
# package test (dpkg-buildpackage, lintian) need.
BF_PACKAGES=(build-essential autoconf automake libtool pkg-config apache2 apache2-dev
    libapr1-dev libaprutil1-dev libpq-dev libjson-c-dev zlib1g-dev libssl-dev
    libcurl4-openssl-dev libcmocka-dev postgresql python3-pytest python3-requests
    python3-cryptography python3-jwt apache2-utils curl jq chromium
    dpkg-dev debhelper fakeroot lintian clang-format)

bf_say() { printf '%s: %s\n' "${BF_PROG:-${0##*/}}" "$*" >&2; }
bf_die() { bf_say "error: $*"; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
bf_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the packages in BF_PACKAGES that are missing (apt-get update once
# first).  Nothing happens, and nothing is fetched, when all are installed.
bf_ensure_packages() {
    local missing=() p st
    for p in "${BF_PACKAGES[@]}"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case "$st" in
            *" installed") ;;
            *) missing+=("$p") ;;
        esac
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        bf_say "all ${#BF_PACKAGES[@]} Debian packages present"
        return 0
    fi
    bf_say "installing missing Debian packages: ${missing[*]}"
    bf_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    bf_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Build the tree in BULKFHIR_BUILD_DIR (default $BF_REPO/build), VPATH.
# configure runs only when the build dir is not configured yet; make keeps
# the autotools files up to date after that.
bf_build() {
    local build=${BULKFHIR_BUILD_DIR:-$BF_REPO/build}
    if [ ! -x "$BF_REPO/configure" ] || [ ! -f "$BF_REPO/Makefile.in" ] ||
        [ "$BF_REPO/configure.ac" -nt "$BF_REPO/configure" ]; then
        bf_say "running ./autogen.sh"
        (cd "$BF_REPO" && ./autogen.sh) || return 1
    fi
    mkdir -p "$build"
    if [ ! -f "$build/Makefile" ]; then
        bf_say "configuring in $build"
        (cd "$build" && "$BF_REPO/configure" --enable-werror -q) || return 1
    fi
    bf_say "building in $build"
    make -C "$build" -j2 -s
}
