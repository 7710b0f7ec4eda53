#!/usr/bin/env bash
# The demo: installs the missing Debian packages, builds coconnect (debug) and runs
# `coconnect demo`: two gateways on loopback, Korea (KR) pushes examples/co.xml to Indonesia
# (ID) signed and encrypted, ID answers with a signed acknowledgement. Exits 0 only if the CO
# ends `acknowledged` on KR and `received` on ID.
#
#   scripts/demo.sh                    # throw-away folder, removed afterwards
#   scripts/demo.sh --keep /tmp/demo   # keep the generated PKI, configurations and databases
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

if ! command -v cargo >/dev/null 2>&1; then
  echo "demo: cargo not found; install Rust (https://rustup.rs), then run this again" >&2
  exit 1
fi

echo "demo: cargo run --locked -- demo $*" >&2
exec cargo run --locked -- demo "$@"
