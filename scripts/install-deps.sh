#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing coconnect needs, and only those
# that are missing (each is checked with `dpkg -s` first, so a second run is quick and changes
# nothing). Runs apt-get as root, or through sudo when it is available.
#
#   pkg-config libssl-dev            openssl crate
#   libxml2-dev libxmlsec1-dev       libxml2 / libxmlsec1 headers (xmlsec crate, build.rs bindgen)
#   libxmlsec1-openssl xmlsec1       the xmlsec1 OpenSSL engine; the xmlsec1 CLI (tests)
#   libclang-dev clang               bindgen (build.rs)
#   iso-codes                        ISO 3166-1 country list read by build.rs
#   libxml2-utils                    xmllint (tests/interop/validate_examples.sh)
#   nginx                            the reverse proxy the tests put in front of the gateway
#
# Rust itself (cargo, rustc >= 1.89) is not installed here: see https://rustup.rs.
set -euo pipefail

PACKAGES=(pkg-config libssl-dev libxml2-dev libxmlsec1-dev libxmlsec1-openssl xmlsec1 libclang-dev clang iso-codes libxml2-utils nginx)

log() { echo "install-deps: $*" >&2; }

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "not a Debian-like system (no dpkg/apt-get): install the equivalents of ${PACKAGES[*]} yourself"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if dpkg -s "$p" >/dev/null 2>&1; then
    :
  else
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  log "all ${#PACKAGES[@]} build packages are installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  log "missing packages: ${missing[*]}"
  log "run this script as root (or install sudo), or: apt-get install -y ${missing[*]}"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "missing: ${missing[*]}"
log "running: ${SUDO[*]:+${SUDO[*]} }apt-get update"
"${SUDO[@]}" apt-get update -qq
log "running: ${SUDO[*]:+${SUDO[*]} }apt-get install -y --no-install-recommends ${missing[*]}"
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
log "installed: ${missing[*]}"
