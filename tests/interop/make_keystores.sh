#!/usr/bin/env bash
# Convert the gateway's PEM dev PKI into JKS keystores for the WSS4J peer.
#
# Usage: make_keystores.sh PKI_DIR OUT_DIR [STOREPASS]
#   PKI_DIR: DIR/ca.cert.pem and DIR/<PARTY>/{signing,encryption}.{key,cert}.pem
#   STOREPASS: store AND key password of every keystore (default: $STOREPASS or "changeit")
#
# Writes (aliases are lower-case: JKS folds them):
#   OUT_DIR/<PARTY>.jks      PrivateKeyEntry <party>-signing, <party>-encryption and, when
#                            tls.key.pem exists, <party>-tls (each with chain [leaf, CA]);
#                            one keystore per party directory found
#   OUT_DIR/truststore.jks   trustedCertEntry ca, and <party>-signing, <party>-encryption for every party
#   OUT_DIR/ca-truststore.jks trustedCertEntry ca only
# Existing output files are replaced. Exit: 0 ok, 1 failure, 2 usage.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 PKI_DIR OUT_DIR [STOREPASS]" >&2; exit 2
fi
PKI=$1; OUT=$2; PASS=${3:-${STOREPASS:-changeit}}
command -v keytool >/dev/null || { echo "keytool not found (install default-jdk-headless)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
[ -f "$PKI/ca.cert.pem" ] || { echo "$PKI/ca.cert.pem missing" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

rm -f "$OUT/truststore.jks" "$OUT/ca-truststore.jks"
for ts in truststore ca-truststore; do
  keytool -importcert -noprompt -keystore "$OUT/$ts.jks" -storetype JKS -storepass "$PASS" \
    -alias ca -file "$PKI/ca.cert.pem" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
done

n=0
for pdir in "$PKI"/*/; do
  pdir=${pdir%/}; P=$(basename "$pdir")
  [ -f "$pdir/signing.key.pem" ] && [ -f "$pdir/encryption.key.pem" ] || continue
  p=$(echo "$P" | tr '[:upper:]' '[:lower:]')
  rm -f "$OUT/$P.jks"
  for U in signing encryption; do
    openssl pkcs12 -export -name "$p-$U" -inkey "$pdir/$U.key.pem" -in "$pdir/$U.cert.pem" \
      -certfile "$PKI/ca.cert.pem" -passout "pass:$PASS" -out "$TMP/$p-$U.p12" 2>"$TMP/err" \
      || { cat "$TMP/err" >&2; exit 1; }
    keytool -importkeystore -noprompt -srckeystore "$TMP/$p-$U.p12" -srcstoretype PKCS12 -srcstorepass "$PASS" \
      -srcalias "$p-$U" -destalias "$p-$U" -destkeystore "$OUT/$P.jks" -deststoretype JKS \
      -deststorepass "$PASS" -destkeypass "$PASS" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
    keytool -importcert -noprompt -keystore "$OUT/truststore.jks" -storetype JKS -storepass "$PASS" \
      -alias "$p-$U" -file "$pdir/$U.cert.pem" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
  done
  if [ -f "$pdir/tls.key.pem" ] && [ -f "$pdir/tls.cert.pem" ]; then   # for send --tls-client-alias
    openssl pkcs12 -export -name "$p-tls" -inkey "$pdir/tls.key.pem" -in "$pdir/tls.cert.pem" \
      -certfile "$PKI/ca.cert.pem" -passout "pass:$PASS" -out "$TMP/$p-tls.p12" 2>"$TMP/err" \
      || { cat "$TMP/err" >&2; exit 1; }
    keytool -importkeystore -noprompt -srckeystore "$TMP/$p-tls.p12" -srcstoretype PKCS12 -srcstorepass "$PASS" \
      -srcalias "$p-tls" -destalias "$p-tls" -destkeystore "$OUT/$P.jks" -deststoretype JKS \
      -deststorepass "$PASS" -destkeypass "$PASS" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
  fi
  n=$((n + 1))
done
[ $n -gt 0 ] || { echo "no party directories with signing/encryption keys under $PKI" >&2; exit 1; }
echo "wrote $n party keystore(s), truststore.jks and ca-truststore.jks to $OUT" >&2
