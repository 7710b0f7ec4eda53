#!/usr/bin/env bash
# THE test command of coconnect: unit tests, the two-gateway integration tests
# (tests/gateway) and the interoperability peers (WSS4J, zeep), in one cargo build.
#
#   scripts/test.sh                                            # SQLite only
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/test.sh
#                                                              # also PostgreSQL
#
# With DATABASE_URL set, the store and gateway tests create fresh databases
# (coconnect_test_<uuid>) on that server and run against PostgreSQL as well as SQLite; the
# role in the URL needs CREATEDB. Extra arguments go to `cargo test` (e.g. a test name filter).
# Exits with cargo's status.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"
"$ROOT/tests/interop/setup.sh"

if [ -n "${DATABASE_URL:-}" ]; then
  echo "test: DATABASE_URL is set: store and gateway tests also run on PostgreSQL" >&2
else
  echo "test: DATABASE_URL is not set: SQLite only" >&2
fi

echo "test: cargo test --locked --all-targets $*" >&2
status=0
cargo test --locked --all-targets "$@" || status=$?
exit "$status"
