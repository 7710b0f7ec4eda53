#!/usr/bin/env bash
# Prepare the interop peers (idempotent; cheap when everything is already in place):
#   1. Debian packages (installed with apt-get only when something is missing and we are root):
#      default-jdk-headless libwss4j-java xmlsec1 libxmlsec1-dev pkg-config python3-venv openssl
#   2. <repo>/target/interop/venv with tests/interop/requirements.txt (re-installed when the
#      requirements file changes)
#   3. the WSS4J peer compiled into <repo>/target/interop/wss4j (tests/interop/wss4j/build.sh)
#   4. the node peer's packages (tests/interop/node/package-lock.json) in <repo>/target/interop/node
#      xml-security-c-utils (Apache Santuario C++ tools) and nodejs/npm come with step 1.
# Env: PYTHON (default python3) creates the venv.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=$ROOT/target/interop/venv
PYTHON=${PYTHON:-python3}
log() { echo "interop setup: $*" >&2; }

# ---- 1. system packages
missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
command -v javac >/dev/null && command -v keytool >/dev/null || missing+=(default-jdk-headless)
[ -f /usr/share/java/wss4j.jar ] && [ -f /usr/share/java/xmlsec.jar ] || missing+=(libwss4j-java)
command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
command -v xsec-checksig >/dev/null || missing+=(xml-security-c-utils)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v openssl >/dev/null || missing+=(openssl)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if command -v pkg-config >/dev/null; then
  pkg-config --exists xmlsec1 || missing+=(libxmlsec1-dev)
else
  have_pkg libxmlsec1-dev || missing+=(libxmlsec1-dev)
fi
if ! command -v "$PYTHON" >/dev/null; then
  missing+=(python3 python3-venv)
elif ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    log "missing packages: ${missing[*]} (run as root, or apt-get install -y them)"; exit 1
  fi
fi

# ---- 2. Python venv for the zeep peer
REQ=$HERE/requirements.txt
stamp=$VENV/.requirements.sha256
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "venv is broken (its Python went away): recreating"; rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
   || ! "$VENV/bin/python" -c 'import zeep, xmlsec, lxml, signxml, pika' 2>/dev/null; then
  log "installing $REQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2
  "$VENV/bin/python" -c 'import zeep, xmlsec, lxml.etree, signxml' >&2  # fails on a libxml2 version mismatch
  echo "$want" > "$stamp"
fi

# ---- 3. WSS4J peer
"$HERE/wss4j/build.sh"

# ---- 4. node peer: exactly the locked packages (re-installed when the lockfile changes)
NODE_DIR=$ROOT/target/interop/node
node_want=$(sha256sum "$HERE/node/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$NODE_DIR/.lock.sha256" 2>/dev/null)" != "$node_want" ] || [ ! -d "$NODE_DIR/node_modules/soap" ]; then
  log "installing the node peer's packages"
  mkdir -p "$NODE_DIR"
  cp "$HERE/node/package.json" "$HERE/node/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --silent >&2)
  echo "$node_want" > "$NODE_DIR/.lock.sha256"
fi
log "ready: $VENV/bin/python $HERE/zeep_peer.py ... | $HERE/wss4j/run.sh ..."
