#!/usr/bin/env bash
# Launch the WSS4J interop peer (builds it first if needed). All arguments go to Wss4jPeer.
# stdout: one JSON line; stderr: diagnostics; exit 0 ok, 1 failure, 2 usage error.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=$ROOT/target/interop/wss4j
if ! "$HERE/build.sh"; then
  echo '{"ok":false,"stage":"build","error":"could not build the WSS4J peer"}'
  exit 1
fi
exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto ${WSS4J_PEER_JAVA_OPTS:-} \
  -cp "$(cat "$OUT/classpath"):$OUT/classes" Wss4jPeer "$@"
