#!/usr/bin/env bash
# Self-test of the interop peers WITHOUT the gateway: a throw-away PKI, the WSS4J peer against
# itself, xmlsec1 (libxmlsec1, as used by the gateway) against WSS4J output, zeep output checked
# by WSS4J and xmlsec1, and both peers' `send` against tests/interop/mock_gateway.py (127.0.0.1).
# Run tests/interop/setup.sh first. Prints "N passed, N failed"; exit 1 if anything failed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=$ROOT/target/interop/venv/bin/python
W=$HERE/wss4j/run.sh
Z=$HERE/zeep_peer.py
FX=$HERE/fixtures
T=$(mktemp -d /tmp/coconnect-interop.XXXXXX)
MOCK_PID=""
cleanup() { [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
pass=0; fail=0
WSU=http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd
SOAP=http://schemas.xmlsoap.org/soap/envelope/

# check NAME EXPECTED_RC JSON_SUBSTRING -- command...
check() {
  local name=$1 want=$2 expect=$3; shift 3
  local out rc
  out=$("$@" 2>"$T/last.err"); rc=$?
  if [ "$rc" = "$want" ] && [[ "$out" == *"$expect"* ]]; then
    pass=$((pass + 1)); echo "ok   - $name"
  else
    fail=$((fail + 1)); echo "FAIL - $name (rc=$rc, want $want, expected '$expect')"
    echo "       stdout: ${out:0:600}"; sed 's/^/       stderr: /' "$T/last.err" | head -8
  fi
}

"$HERE/make_test_pki.sh" "$T/pki" KR ID 2>/dev/null
"$HERE/make_test_pki.sh" "$T/rogue" KR 2>/dev/null            # same names, other CA: untrusted
"$HERE/make_keystores.sh" "$T/pki" "$T/ks" changeit 2>/dev/null
"$HERE/make_keystores.sh" "$T/rogue" "$T/rks" changeit 2>/dev/null
KS="--storepass changeit"
ID_PROC=(--keystore "$T/ks/ID.jks" $KS --alias id-encryption --trust "$T/ks/truststore.jks")
KR_SIGN=(--keystore "$T/ks/KR.jks" $KS --sign-alias kr-signing --trust "$T/ks/truststore.jks")

# ---- WSS4J against itself
check "wss4j sign+encrypt (GCM)" 0 '"symmetricAlgorithm":"http://www.w3.org/2009/xmlenc11#aes256-gcm"' \
  "$W" sign-only "${KR_SIGN[@]}" --enc-cert-alias id-encryption --in "$FX/unsigned-sendco.xml" --out "$T/enc.xml"
check "wss4j process sign+encrypt" 0 '"bodyChild":"SendCORequest"' \
  "$W" process "${ID_PROC[@]}" --in "$T/enc.xml" --require-encryption
check "wss4j process: Body+Timestamp signed, decrypted" 0 '"bodySigned":true,"timestampSigned":true,"encrypted":true,"bodyEncrypted":true' \
  "$W" process "${ID_PROC[@]}" --in "$T/enc.xml"
check "wss4j process with wrong recipient key fails" 1 '"ok":false' \
  "$W" process --keystore "$T/ks/KR.jks" $KS --alias kr-encryption --trust "$T/ks/truststore.jks" --in "$T/enc.xml"
python3 - "$T/enc.xml" "$T/enc-tampered.xml" <<'EOF'
import sys
s = open(sys.argv[1]).read()
i = s.index('<xenc:CipherValue>', s.index('<xenc:EncryptedData')) + len('<xenc:CipherValue>') + 20
s = s[:i] + ('A' if s[i] != 'A' else 'B') + s[i + 1:]
open(sys.argv[2], 'w').write(s)
EOF
check "wss4j process tampered ciphertext fails" 1 '"ok":false' \
  "$W" process "${ID_PROC[@]}" --in "$T/enc-tampered.xml"
check "wss4j sign+encrypt (CBC)" 0 'aes256-cbc' \
  "$W" sign-only "${KR_SIGN[@]}" --enc-cert-alias id-encryption --sym-alg cbc --layout timestamp-first --in "$FX/unsigned-sendco.xml" --out "$T/enc-cbc.xml"
check "wss4j process CBC, timestamp-first layout" 0 '"bodyChild":"SendCORequest"' \
  "$W" process "${ID_PROC[@]}" --in "$T/enc-cbc.xml" --require-encryption

check "wss4j sign only" 0 '"encrypted":false' \
  "$W" sign-only "${KR_SIGN[@]}" --no-encrypt --in "$FX/unsigned-sendco.xml" --out "$T/signed.xml"
check "wss4j process signed" 0 '"signedElements":["Body","Timestamp"]' \
  "$W" process "${ID_PROC[@]}" --in "$T/signed.xml"
check "wss4j process signed with --require-encryption fails" 1 '"error":"Body was not encrypted"' \
  "$W" process "${ID_PROC[@]}" --in "$T/signed.xml" --require-encryption
sed 's#<cc:Sender>KR</cc:Sender>#<cc:Sender>XX</cc:Sender>#' "$T/signed.xml" > "$T/signed-tampered.xml"
check "wss4j process tampered body fails" 1 '"ok":false' \
  "$W" process "${ID_PROC[@]}" --in "$T/signed-tampered.xml"
check "rogue signer (other CA)" 0 '"ok":true' \
  "$W" sign-only --keystore "$T/rks/KR.jks" $KS --sign-alias kr-signing --no-encrypt --in "$FX/unsigned-sendco.xml" --out "$T/rogue.xml"
check "wss4j process untrusted signer fails" 1 '"ok":false' \
  "$W" process "${ID_PROC[@]}" --in "$T/rogue.xml"
check "wss4j sign with 1s TTL" 0 '"ok":true' \
  "$W" sign-only "${KR_SIGN[@]}" --no-encrypt --ttl 1 --in "$FX/unsigned-sendco.xml" --out "$T/short.xml"
sleep 2
check "wss4j process expired timestamp fails" 1 '"ok":false' \
  "$W" process "${ID_PROC[@]}" --in "$T/short.xml"
check "wss4j process expired timestamp with --no-timestamp-check" 0 '"ok":true' \
  "$W" process "${ID_PROC[@]}" --in "$T/short.xml" --no-timestamp-check
check "wss4j usage error" 2 '"ok":false' "$W" process --in x

# ---- libxmlsec1 (xmlsec1 CLI) against WSS4J output
XV=(xmlsec1 --verify --enabled-reference-uris same-doc --id-attr:Id "$SOAP:Body" --id-attr:Id "$WSU:Timestamp")
check "xmlsec1 verifies WSS4J signature" 0 '' "${XV[@]}" --pubkey-cert-pem "$T/pki/KR/signing.cert.pem" "$T/signed.xml"
check "xmlsec1 rejects tampered WSS4J message" 1 '' "${XV[@]}" --pubkey-cert-pem "$T/pki/KR/signing.cert.pem" "$T/signed-tampered.xml"
# decrypt WSS4J's EncryptedKey (OAEP, SHA-1/MGF1-SHA1) with openssl and its GCM EncryptedData with xmlsec1
python3 - "$T/enc.xml" "$T" <<'EOF'
import re, base64, sys
s = open(sys.argv[1]).read(); t = sys.argv[2]
ek = re.search(r'<xenc:EncryptedKey.*?<xenc:CipherValue>(.*?)</xenc:CipherValue>', s, re.S).group(1)
open(t + '/ek.bin', 'wb').write(base64.b64decode(ek))
ed = re.search(r'<xenc:EncryptedData.*?</xenc:EncryptedData>', s, re.S).group(0)
ed = re.sub(r'<ds:KeyInfo.*?</ds:KeyInfo>', '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyName>k</ds:KeyName></ds:KeyInfo>', ed, flags=re.S)
open(t + '/ed.xml', 'w').write(ed)
EOF
check "openssl unwraps WSS4J RSA-OAEP(SHA-1) key" 0 '' openssl pkeyutl -decrypt -inkey "$T/pki/ID/encryption.key.pem" \
  -in "$T/ek.bin" -out "$T/aes.key" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
check "xmlsec1 decrypts WSS4J aes256-gcm EncryptedData" 0 'SendCORequest' xmlsec1 --decrypt --aeskey:k "$T/aes.key" "$T/ed.xml"

# ---- zeep output checked by WSS4J and xmlsec1
ZS=(--wsdl "$FX/selftest.wsdl" --key "$T/pki/KR/signing.key.pem" --cert "$T/pki/KR/signing.cert.pem" --envelope-body "$FX/sendco-payload.xml")
check "zeep list-operations" 0 '"operations":["SendCO"]' "$PY" "$Z" list-operations "$FX/selftest.wsdl"
check "zeep usage error" 2 '"ok":false' "$PY" "$Z" send --wsdl x
for m in call raw; do
  check "zeep sign-only ($m)" 0 '"securityHeader":["Signature","BinarySecurityToken","Timestamp"]' \
    "$PY" "$Z" sign-only "${ZS[@]}" --mode $m --out "$T/zeep-$m.xml"
  check "wss4j processes zeep-signed message ($m)" 0 '"signedElements":["Body","Timestamp"]' \
    "$W" process "${ID_PROC[@]}" --in "$T/zeep-$m.xml"
  check "xmlsec1 verifies zeep-signed message ($m)" 0 '' "${XV[@]}" --pubkey-cert-pem "$T/pki/KR/signing.cert.pem" "$T/zeep-$m.xml"
done
sed 's#>KR</ns0:Sender>#>XX</ns0:Sender>#' "$T/zeep-call.xml" > "$T/zeep-tampered.xml"
check "wss4j rejects tampered zeep message" 1 '"ok":false' "$W" process "${ID_PROC[@]}" --in "$T/zeep-tampered.xml"

# ---- send against the mock endpoint (HTTP side only; requests then verified with WSS4J)
"$W" sign-only --keystore "$T/ks/ID.jks" $KS --sign-alias id-signing --no-encrypt --in "$FX/unsigned-ack.xml" --out "$T/ack.xml" >/dev/null 2>&1
sed 's#>Accepted<#>Rejected<#' "$T/ack.xml" > "$T/ack-tampered.xml"
start_mock() {  # ACK_FILE
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
  rm -rf "$T/mock"; : > "$T/mock.port"
  python3 "$HERE/mock_gateway.py" --ack "$1" --user partner --password s3cret --save-dir "$T/mock" \
    --max-requests 10 --timeout 120 > "$T/mock.port" 2>"$T/mock.err" &
  MOCK_PID=$!
  for _ in $(seq 50); do grep -q '^PORT' "$T/mock.port" && break; sleep 0.1; done
  URL="http://127.0.0.1:$(awk '/^PORT/{print $2}' "$T/mock.port")/soap"
}
start_mock "$T/ack.xml"
check "wss4j send (sign+encrypt), signed ack verified" 0 '"status":"Accepted","responseBodyChild":"Acknowledgement","responseVerified":true' \
  "$W" send --url "$URL" --user partner --password s3cret "${KR_SIGN[@]}" --enc-cert-alias id-encryption \
  --in "$FX/unsigned-sendco.xml" --action urn:coconnect:soap:v1/SendCO
check "mock received request verifies with WSS4J" 0 '"encrypted":true' "$W" process "${ID_PROC[@]}" --in "$T/mock/request-1.xml" --require-encryption
check "wss4j send, wrong password -> 401" 1 '"httpStatus":401' \
  "$W" send --url "$URL" --user partner --password nope "${KR_SIGN[@]}" --enc-cert-alias id-encryption --in "$FX/unsigned-sendco.xml"
for m in call raw; do
  check "zeep send ($m), signed ack verified" 0 '"status":"Accepted"' \
    "$PY" "$Z" send "${ZS[@]}" --mode $m --url "$URL" --user partner --password s3cret --response-ca "$T/pki/ca.cert.pem"
done
check "zeep call mode: zeep parses the ack" 0 '"zeepParsed":true' \
  "$PY" "$Z" send "${ZS[@]}" --url "$URL" --user partner --password s3cret
check "mock received zeep request verifies with WSS4J" 0 '"signedElements":["Body","Timestamp"]' \
  "$W" process "${ID_PROC[@]}" --in "$T/mock/request-3.xml"
start_mock "$T/ack-tampered.xml"
check "wss4j send: tampered ack fails" 1 '"stage":"response-verify"' \
  "$W" send --url "$URL" --user partner --password s3cret "${KR_SIGN[@]}" --no-encrypt --in "$FX/unsigned-sendco.xml"
check "zeep send: tampered ack fails with --response-ca" 1 '"stage":"response-verify"' \
  "$PY" "$Z" send "${ZS[@]}" --url "$URL" --user partner --password s3cret --response-ca "$T/pki/ca.cert.pem"

# ---- the project's real contract, when present: wsdl/coconnect.wsdl and examples/soap/<Operation>.xml
if [ -f "$ROOT/wsdl/coconnect.wsdl" ]; then
  check "zeep list-operations wsdl/coconnect.wsdl" 0 '"SendCO"' "$PY" "$Z" list-operations "$ROOT/wsdl/coconnect.wsdl"
  for f in "$ROOT"/examples/soap/*.xml; do
    [ -f "$f" ] || continue
    op=$(basename "$f" .xml)
    check "wss4j sign+encrypt examples/soap/$op.xml" 0 '"ok":true' \
      "$W" sign-only "${KR_SIGN[@]}" --enc-cert-alias id-encryption --in "$f" --out "$T/ex-$op.xml"
    check "wss4j process examples/soap/$op.xml" 0 "\"bodyChild\":\"${op}Request\"" \
      "$W" process "${ID_PROC[@]}" --in "$T/ex-$op.xml" --require-encryption
    check "zeep sign-only (call, real WSDL) $op" 0 "\"soapAction\":\"\\\"urn:coconnect:soap:v1/$op\\\"\"" \
      "$PY" "$Z" sign-only --wsdl "$ROOT/wsdl/coconnect.wsdl" --operation "$op" --key "$T/pki/KR/signing.key.pem" \
      --cert "$T/pki/KR/signing.cert.pem" --envelope-body "$f" --out "$T/zex-$op.xml"
    check "wss4j processes zeep $op" 0 "\"bodyChild\":\"${op}Request\"" \
      "$W" process "${ID_PROC[@]}" --in "$T/zex-$op.xml"
  done
fi

echo "selftest: $pass passed, $fail failed"
[ "$fail" = 0 ]
