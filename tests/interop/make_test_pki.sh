#!/usr/bin/env bash
# Make a throw-away dev PKI in the same layout as the gateway's dev PKI:
#   DIR/ca.cert.pem (+ DIR/ca.key.pem)
#   DIR/<PARTY>/{signing,encryption,tls}.{key,cert}.pem   (RSA 2048, PKCS#8 keys)
# Usage: make_test_pki.sh DIR [PARTY...]      (default parties: KR ID)
# For the interop peers' self-tests only; the gateway has its own PKI generator.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 DIR [PARTY...]" >&2; exit 2; fi
DIR=$1; shift
PARTIES=("$@"); [ ${#PARTIES[@]} -gt 0 ] || PARTIES=(KR ID)
mkdir -p "$DIR"
if [ ! -f "$DIR/ca.cert.pem" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DIR/ca.key.pem" 2>/dev/null
  openssl req -x509 -new -key "$DIR/ca.key.pem" -sha256 -days 3650 -subj "/C=XX/O=coconnect test/CN=coconnect test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$DIR/ca.cert.pem"
fi
serial=$(( (RANDOM << 16) | RANDOM ))
for P in "${PARTIES[@]}"; do
  mkdir -p "$DIR/$P"
  for U in signing encryption tls; do
    case $U in
      signing)    KU="critical,digitalSignature,nonRepudiation"; EXT="";;
      encryption) KU="critical,keyEncipherment,dataEncipherment"; EXT="";;
      tls)        KU="critical,digitalSignature,keyEncipherment"; EXT="extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1";;
    esac
    [ -f "$DIR/$P/$U.cert.pem" ] && continue
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DIR/$P/$U.key.pem" 2>/dev/null
    openssl req -new -key "$DIR/$P/$U.key.pem" -subj "/C=$P/O=coconnect test $P/CN=$P $U" -out "$DIR/$P/$U.csr.pem"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n%s\n' "$KU" "$EXT" > "$DIR/$P/$U.ext"
    serial=$((serial + 1))
    openssl x509 -req -in "$DIR/$P/$U.csr.pem" -CA "$DIR/ca.cert.pem" -CAkey "$DIR/ca.key.pem" -set_serial "$serial" \
      -days 825 -sha256 -extfile "$DIR/$P/$U.ext" -out "$DIR/$P/$U.cert.pem" 2>/dev/null
    rm -f "$DIR/$P/$U.csr.pem" "$DIR/$P/$U.ext"
  done
done
echo "test PKI in $DIR: CA + ${PARTIES[*]}" >&2
