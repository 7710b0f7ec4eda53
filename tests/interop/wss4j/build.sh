#!/usr/bin/env bash
# Compile the WSS4J interop peer into <repo>/target/interop/wss4j/classes (never into the source tree).
# Idempotent: does nothing when the classes are newer than the source and the classpath is unchanged.
# Needs Debian's default-jdk-headless and libwss4j-java (tests/interop/setup.sh installs them).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=$ROOT/target/interop/wss4j
JARDIR=${WSS4J_JAR_DIR:-/usr/share/java}
JARS="wss4j.jar xmlsec.jar commons-logging.jar slf4j-api.jar commons-codec.jar woodstox-core.jar stax2-api.jar"
OPTIONAL_JARS="slf4j-nop.jar"   # silences "SLF4J: no binding" noise when present

cp=""
for j in $JARS; do
  [ -f "$JARDIR/$j" ] || { echo "build.sh: $JARDIR/$j missing (apt-get install -y libwss4j-java)" >&2; exit 1; }
  cp="$cp${cp:+:}$JARDIR/$j"
done
for j in $OPTIONAL_JARS; do [ -f "$JARDIR/$j" ] && cp="$cp:$JARDIR/$j"; done
command -v javac >/dev/null || { echo "build.sh: javac missing (apt-get install -y default-jdk-headless)" >&2; exit 1; }

mkdir -p "$OUT"
SRC=$HERE/Wss4jPeer.java
if [ -f "$OUT/classes/Wss4jPeer.class" ] && [ "$OUT/classes/Wss4jPeer.class" -nt "$SRC" ] \
   && [ -f "$OUT/classpath" ] && [ "$(cat "$OUT/classpath")" = "$cp" ]; then
  exit 0
fi
rm -rf "$OUT/classes.tmp"
mkdir -p "$OUT/classes.tmp"
javac -nowarn -encoding UTF-8 --release 17 -cp "$cp" -d "$OUT/classes.tmp" "$SRC" >&2
rm -rf "$OUT/classes"
mv "$OUT/classes.tmp" "$OUT/classes"
printf '%s' "$cp" > "$OUT/classpath"
echo "build.sh: compiled Wss4jPeer into $OUT/classes" >&2
