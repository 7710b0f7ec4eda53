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

# Library, binary and integration tests (benchmarks are run with `cargo bench`, see README).
echo "test: cargo test --locked --lib --bins --tests $*" >&2
log=$(mktemp)
# Tests that could not run (the PostgreSQL variants without DATABASE_URL) write a line here
# (src/store/testdb.rs, postgres_or_skip): they are counted as skipped, not as passed.
export COCONNECT_SKIP_LOG
COCONNECT_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$COCONNECT_SKIP_LOG"' EXIT
set +e
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
skipped=$(grep -c '^skipped' "$COCONNECT_SKIP_LOG" || true)
halves=$(grep -c '^postgres-half-skipped' "$COCONNECT_SKIP_LOG" || true)
if [ "$skipped" -gt 0 ] || [ "$halves" -gt 0 ]; then
  echo "test: skipped because DATABASE_URL is not set: $skipped PostgreSQL test(s)" \
    "($(grep '^skipped' "$COCONNECT_SKIP_LOG" | cut -f2 | sort -u | paste -sd, -)), and the" \
    "PostgreSQL half of $halves store test run(s); set DATABASE_URL to run them (CI does)"
fi
# One closing line with the totals of every test binary; a skipped test is not a passed one.
awk -v skipped="$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p - skipped, f, skipped }' "$log"
exit "$status"
