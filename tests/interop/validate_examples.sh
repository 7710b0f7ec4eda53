#!/usr/bin/env bash
# Validate the Body child of every example SOAP envelope in examples/soap/
# against xsd/coconnect-messages.xsd (which imports xsd/lpco-co.xsd), and every
# bare payload example in examples/ (the LPCO documents co.xml and do.xml)
# against xsd/lpco-co.xsd directly.
#
# Usage: tests/interop/validate_examples.sh [file.xml ...]
#   With no argument, validates examples/soap/*.xml and examples/*.xml. Each file
#   is taken by its root: a SOAP Envelope, or an LPCO in urn:coconnect:xsd:lpco:1.
#   XSD_DIR overrides the schema folder (default: <repo>/xsd).
# Requires: xmllint (libxml2-utils). Exits non-zero if any example fails.
#
# Note: xmllint --xpath serialises the extracted element without the namespace
# declarations of its ancestors, so every namespace used inside the Body child
# must be declared on that child (or below it); the examples do so.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
XSD_DIR="${XSD_DIR:-$ROOT/xsd}"
SCHEMA="$XSD_DIR/coconnect-messages.xsd"
LPCO_SCHEMA="$XSD_DIR/lpco-co.xsd"

command -v xmllint >/dev/null 2>&1 || { echo "xmllint not found (apt-get install libxml2-utils)" >&2; exit 2; }
[ -f "$SCHEMA" ] || { echo "schema not found: $SCHEMA" >&2; exit 2; }
[ -f "$XSD_DIR/lpco-co.xsd" ] || echo "warning: $XSD_DIR/lpco-co.xsd missing; schema import will fail" >&2

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  shopt -s nullglob
  files=("$ROOT"/examples/soap/*.xml "$ROOT"/examples/*.xml)
fi
[ "${#files[@]}" -gt 0 ] || { echo "no examples found" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

SOAP11=http://schemas.xmlsoap.org/soap/envelope/
SOAP12=http://www.w3.org/2003/05/soap-envelope
LPCO_NS=urn:coconnect:xsd:lpco:1

fail=0
for f in "${files[@]}"; do
  name="$(basename "$f")"
  if ! xmllint --noout "$f" 2>"$tmp/err"; then
    echo "FAIL $name: not well-formed"; sed 's/^/    /' "$tmp/err"; fail=1; continue
  fi
  env_ns="$(xmllint --xpath 'namespace-uri(/*)' "$f" 2>/dev/null)"
  if [ "$env_ns" = "$LPCO_NS" ]; then
    # A bare CO or DO payload: the LPCO schema alone (a DO is the same schema, TypeCode 862).
    if xmllint --noout --schema "$LPCO_SCHEMA" "$f" 2>"$tmp/err"; then
      echo "ok   $name (LPCO $(xmllint --xpath "string(/*/*[local-name()='TypeCode'])" "$f"))"
    else
      echo "FAIL $name:"; grep -v ' validates$' "$tmp/err" | sed 's/^/    /'; fail=1
    fi
    continue
  fi
  if [ "$env_ns" != "$SOAP11" ] && [ "$env_ns" != "$SOAP12" ]; then
    echo "FAIL $name: root is neither a SOAP Envelope nor an LPCO (namespace '$env_ns')"; fail=1; continue
  fi
  n="$(xmllint --xpath "count(/*[local-name()='Envelope']/*[local-name()='Body']/*)" "$f" 2>/dev/null)"
  if [ "$n" != "1" ]; then
    echo "FAIL $name: soap:Body must have exactly one child element (found ${n:-0})"; fail=1; continue
  fi
  body="$tmp/${name%.xml}.body.xml"
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    xmllint --xpath "/*[local-name()='Envelope']/*[local-name()='Body']/*" "$f"
  } >"$body" 2>"$tmp/err" || { echo "FAIL $name: cannot extract Body child"; sed 's/^/    /' "$tmp/err"; fail=1; continue; }
  if xmllint --noout --schema "$SCHEMA" "$body" 2>"$tmp/err"; then
    echo "ok   $name ($(xmllint --xpath 'name(/*)' "$body"))"
  else
    echo "FAIL $name:"; grep -v ' validates$' "$tmp/err" | sed 's/^/    /'; fail=1
  fi
done
exit "$fail"
