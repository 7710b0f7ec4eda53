#!/usr/bin/env bash
# Runs one cargo-fuzz target of fuzz/ for a while. Not part of CI.
#
#   scripts/fuzz.sh [TARGET] [SECONDS] [LIBFUZZER-FLAG...]
#
# TARGET is `inbound` (default: the whole receive path, bytes -> WS-Security -> header and CO)
# or `payload` (the readers behind the signature check); SECONDS defaults to 300. Installs
# cargo-fuzz from crates.io when it is missing. cargo fuzz needs nightly-only flags
# (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
#
# The corpus grows in fuzz/corpus/TARGET/ (git-ignored but for the seed-* files), findings go
# to fuzz/artifacts/TARGET/ (crash-*, leak-*, timeout-*, oom-*), the full libFuzzer log to
# fuzz/artifacts/TARGET/run-*.log. Prints the number of runs, the coverage and the findings;
# exits 1 when the run found something. To replay a finding:
#   cd fuzz && RUSTC_BOOTSTRAP=1 COCONNECT_FUZZ_DEBUG=1 cargo fuzz run TARGET artifacts/TARGET/crash-...
set -euo pipefail

target=${1:-inbound}
seconds=${2:-300}
shift $(( $# < 2 ? $# : 2 ))
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

case "$target" in
  inbound|payload) ;;
  *) echo "fuzz.sh: unknown target $target (inbound or payload)" >&2; exit 2 ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

mkdir -p "corpus/$target" "artifacts/$target"
log="artifacts/$target/run-$(date -u +%Y%m%dT%H%M%SZ).log"
findings() { find "artifacts/$target" -maxdepth 1 -type f ! -name 'run-*.log' | sort; }
before=$(findings)

echo "fuzz.sh: cargo fuzz run $target for ${seconds}s (log: fuzz/$log)" >&2
set +e
cargo fuzz run "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
  -dict="$root/fuzz/coconnect.dict" "$@" >"$log" 2>&1
status=$?
set -e

# libFuzzer's last status line: #RUNS ... cov: N ft: N corp: N/SIZE ... exec/s: N rss: N
grep -E '^#[0-9]+' "$log" | tail -n 1 || true
grep -E '^(Done [0-9]+ runs|stat::)' "$log" || true
new=$(comm -13 <(echo "$before") <(findings) | sed '/^$/d')
if [ -n "$new" ] || [ "$status" -ne 0 ]; then
  echo "fuzz.sh: cargo fuzz exited $status; new findings:" >&2
  echo "${new:-  (none written: see the log)}" | sed 's|^|  fuzz/|'
  grep -E -m 5 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|SUMMARY' "$log" || true
  exit 1
fi
echo "fuzz.sh: no crash, leak or timeout"
