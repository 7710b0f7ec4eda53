#!/usr/bin/env python3
"""Interoperability test peer for the coconnect gateway, built on python zeep (4.3.1) + python-xmlsec.

Sub-commands:
  list-operations WSDL                 operation names per binding
  send      --wsdl W --url URL --user U --password P --key K.pem --cert C.pem --envelope-body F
  sign-only --wsdl W --key K.pem --cert C.pem --envelope-body F --out SIGNED.xml

The message is signed with zeep.wsse.signature.BinarySignature (rsa-sha256, sha256 digests,
exc-c14n, BST + SecurityTokenReference/Reference), preceded by a wsu:Timestamp that this peer adds
(zeep signs the Timestamp when one is present; it never creates one itself). No encryption: the
gateway's partner profile for zeep is `sign`.

Modes (--mode):
  call  (default) the payload file is parsed with the WSDL's schema into a zeep object and the
        operation is called through zeep (zeep builds and serializes the document/literal envelope).
  raw   the payload is put verbatim into a SOAP 1.1 envelope, signed with the same zeep wsse
        objects and posted with zeep's transport (WSDL optional; SOAPAction from --action).

Output: one JSON line on stdout; diagnostics on stderr. Exit: 0 ok, 1 failure, 2 usage error.
Only local files and http(s) URLs on 127.0.0.1 / localhost / ::1 are ever loaded or posted to.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import traceback
from urllib.parse import urlparse

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
CC_NS = "urn:coconnect:soap:v1"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class UsageError(Exception):
    pass


class Failure(Exception):
    def __init__(self, stage, msg):
        super().__init__(msg)
        self.stage = stage


def emit(result, code):
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    sys.exit(code)


class JsonArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"usage error: {message}\n")
        emit({"ok": False, "error": f"usage: {message}"}, 2)


def check_local_url(url):
    u = urlparse(url)
    if u.scheme in ("http", "https"):
        if (u.hostname or "") not in LOCAL_HOSTS:
            raise Failure("network", f"refusing non-local URL {url} (only 127.0.0.1/localhost/::1)")
    elif u.scheme not in ("", "file"):
        raise Failure("network", f"unsupported URL scheme in {url}")


# ------------------------------------------------------------------------------------------------
# zeep pieces (imported lazily so that usage errors work without the venv)

def zeep_imports():
    try:
        import xmlsec  # noqa: F401
        import zeep  # noqa: F401
        from lxml import etree  # noqa: F401
    except ImportError as e:
        raise Failure("setup", f"{e}: run tests/interop/setup.sh and use target/interop/venv/bin/python")


def make_transport(timeout, tls_ca=None, user=None, password=None):
    import requests
    from zeep.transports import Transport

    class LocalOnlyTransport(Transport):
        """zeep Transport that only reaches local files and loopback URLs and keeps the last
        envelope it posted (after zeep applied WS-Security)."""

        last_request = None

        def load(self, url):
            check_local_url(url)
            return super().load(url)

        def post(self, address, message, headers):
            check_local_url(address)
            self.last_request = message
            self.last_headers = dict(headers)
            return super().post(address, message, headers)

    session = requests.Session()
    session.trust_env = False  # no proxies from the environment
    if user is not None:
        session.auth = requests.auth.HTTPBasicAuth(user, password)
    if tls_ca:
        session.verify = tls_ca
    return LocalOnlyTransport(session=session, timeout=timeout, operation_timeout=timeout)


def make_client(wsdl, transport):
    from zeep import Client, Settings

    if not os.path.exists(wsdl):
        check_local_url(wsdl)
    settings = Settings(strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True)
    try:
        return Client(wsdl, transport=transport, settings=settings)
    except Failure:
        raise
    except Exception as e:
        raise Failure("wsdl", f"cannot load WSDL {wsdl}: {type(e).__name__}: {e}")


def make_wsse(key, cert, key_password, ttl, must_understand, with_timestamp):
    import xmlsec
    from lxml import etree
    from zeep.utils import detect_soap_env
    from zeep.wsse.signature import BinarySignature
    from zeep.wsse.utils import WSU, get_security_header

    def fmt(t):
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

    class PeerBinarySignature(BinarySignature):
        """zeep's BinarySignature, preceded by a wsu:Timestamp (Created/Expires, UTC, ms) in
        wsse:Security so that zeep signs it too. One object, not a list: zeep 4.3.1 accepts a
        list of wsse objects when sending but then calls `client.wsse.verify()` on the list when
        processing the reply (AttributeError). verify() is a no-op: zeep's own check would verify
        the reply against OUR certificate and not check which node was signed; verify_response()
        does the reply check when asked to."""

        def apply(self, envelope, headers):
            security = get_security_header(envelope)
            if must_understand:
                security.set(etree.QName(detect_soap_env(envelope), "mustUnderstand"), "1")
            if with_timestamp:
                now = datetime.datetime.now(datetime.timezone.utc)
                security.append(WSU.Timestamp(
                    WSU.Created(fmt(now)),
                    WSU.Expires(fmt(now + datetime.timedelta(seconds=ttl)))))
            return super().apply(envelope, headers)

        def verify(self, envelope):
            return envelope

    try:
        return PeerBinarySignature(
            key, cert, key_password,
            signature_method=xmlsec.constants.TransformRsaSha256,
            digest_method=xmlsec.constants.TransformSha256)
    except OSError as e:
        raise Failure("keys", f"cannot read key/cert: {e}")


def read_payload(path):
    """The Body payload element: the file's root, or, when the file is a whole SOAP 1.1
    Envelope (e.g. examples/soap/*.xml), the first element child of its Body."""
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
        root = etree.parse(path, parser).getroot()
    except (OSError, etree.XMLSyntaxError) as e:
        raise Failure("payload", f"cannot read payload {path}: {e}")
    if root.tag == f"{{{SOAP11_NS}}}Envelope":
        body = root.find(f"{{{SOAP11_NS}}}Body")
        kids = [c for c in body if isinstance(c.tag, str)] if body is not None else []
        if not kids:
            raise Failure("payload", f"{path}: SOAP Envelope without a Body payload")
        root = kids[0]
    return root


def find_binding(client, operation, binding_name=None):
    """(binding QName, binding) having `operation`: --binding if given (QName text or local
    name), else the first SOAP 1.1 binding (the gateway's wire format is SOAP 1.1)."""
    from zeep.wsdl.bindings.soap import Soap11Binding

    candidates = []
    for qname, binding in client.wsdl.bindings.items():
        if operation not in getattr(binding, "_operations", {}):
            continue
        if binding_name and binding_name not in (str(qname), etree_localname(qname)):
            continue
        candidates.append((qname, binding))
    if not candidates:
        raise Failure("wsdl", f"no binding in the WSDL has an operation {operation!r}"
                      + (f" (binding {binding_name!r})" if binding_name else ""))
    soap11 = [c for c in candidates if isinstance(c[1], Soap11Binding)]
    return (soap11 or candidates)[0]


def etree_localname(qname):
    from lxml import etree

    return etree.QName(qname).localname


def payload_to_kwargs(client, binding, operation, payload):
    """Parse the payload element with the WSDL's schema: zeep then re-serializes it itself."""
    op = binding._operations[operation]
    body = getattr(op.input, "body", None)
    elm = None
    try:
        elm = client.get_element(payload.tag)
    except Exception as e:
        raise Failure("payload", f"payload root {payload.tag} is not an element of the WSDL: {e}")
    if body is not None and getattr(body, "qname", None) is not None and body.qname != elm.qname:
        raise Failure("payload", f"payload root {payload.tag} is not {operation}'s input {body.qname}")
    try:
        obj = elm.parse(payload, client.wsdl.types)
    except Exception as e:
        raise Failure("payload", f"payload does not parse with the WSDL schema: {type(e).__name__}: {e}")
    return {k: obj[k] for k in obj}


def prepare_call(args, transport, wsse):
    """Client with wsse applied, the binding having the operation, and the operation's kwargs."""
    client = make_client(args.wsdl, transport)
    client.wsse = wsse
    qname, binding = find_binding(client, args.operation, args.binding)
    kwargs = payload_to_kwargs(client, binding, args.operation, read_payload(args.envelope_body))
    return client, qname, binding, kwargs


def build_request(args, transport, wsse):
    """(signed envelope element, http headers) without sending anything."""
    from lxml import etree

    if args.mode == "call":
        if not args.wsdl:
            raise UsageError("--mode call needs --wsdl")
        client, _, binding, kwargs = prepare_call(args, transport, wsse)
        try:
            return binding._create(args.operation, (), kwargs, client=client,
                                   options={"address": getattr(args, "url", None) or "http://127.0.0.1/"})
        except Exception as e:
            raise Failure("serialize", f"zeep could not build {args.operation}: {type(e).__name__}: {e}")
    env = etree.Element(etree.QName(SOAP11_NS, "Envelope"), nsmap={"soap": SOAP11_NS})
    etree.SubElement(env, etree.QName(SOAP11_NS, "Header"))
    body = etree.SubElement(env, etree.QName(SOAP11_NS, "Body"))
    body.append(read_payload(args.envelope_body))
    action = args.action or f"urn:coconnect:soap:v1/{args.operation}"
    headers = {"SOAPAction": f'"{action}"', "Content-Type": "text/xml; charset=utf-8"}
    env, headers = wsse.apply(env, headers)
    return env, headers


def describe_security(envelope):
    """Summary of the produced wsse:Security header (for the JSON line)."""
    from lxml import etree

    sec = envelope.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")
    if sec is None:
        return {"securityHeader": None}
    order = [etree.QName(c).localname for c in sec if isinstance(c.tag, str)]
    body = envelope.find(f"{{{SOAP11_NS}}}Body")
    refs = [r.get("URI") for r in sec.iterfind(f"{{{DS_NS}}}Signature/{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")]
    sm = sec.find(f"{{{DS_NS}}}Signature/{{{DS_NS}}}SignedInfo/{{{DS_NS}}}SignatureMethod")
    first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    return {
        "securityHeader": order,
        "mustUnderstand": sec.get(f"{{{SOAP11_NS}}}mustUnderstand"),
        "bodyId": body.get(f"{{{WSU_NS}}}Id") if body is not None else None,
        "references": refs,
        "signatureMethod": sm.get("Algorithm") if sm is not None else None,
        "payload": etree.QName(first).localname if first is not None else None,
    }


# ------------------------------------------------------------------------------------------------
# reply verification (our own: which nodes are signed, by whom, chain to the CA)

def verify_response(content, ca_path):
    import xmlsec
    from lxml import etree

    out = {"responseVerified": False}
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    doc = etree.fromstring(content, parser)
    if doc.tag != f"{{{SOAP11_NS}}}Envelope":
        raise Failure("response-verify", "response is not a SOAP 1.1 Envelope")
    body = doc.find(f"{{{SOAP11_NS}}}Body")
    sec = doc.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")
    if body is None or sec is None:
        raise Failure("response-verify", "response has no Body or no wsse:Security header")
    sigs = sec.findall(f"{{{DS_NS}}}Signature")
    if len(sigs) != 1:
        raise Failure("response-verify", f"expected one ds:Signature in the header, found {len(sigs)}")
    sig = sigs[0]
    ts = sec.find(f"{{{WSU_NS}}}Timestamp")
    if ts is None:
        raise Failure("response-verify", "response has no wsu:Timestamp")
    # certificate: STR/Reference -> BST
    ref = sig.find(f"{{{DS_NS}}}KeyInfo/{{{WSSE_NS}}}SecurityTokenReference/{{{WSSE_NS}}}Reference")
    if ref is None or not (ref.get("URI") or "").startswith("#"):
        raise Failure("response-verify", "signature KeyInfo is not an STR Reference to a BST")
    bst = [e for e in sec.iterfind(f"{{{WSSE_NS}}}BinarySecurityToken")
           if e.get(f"{{{WSU_NS}}}Id") == ref.get("URI")[1:]]
    if len(bst) != 1:
        raise Failure("response-verify", "STR does not resolve to exactly one BinarySecurityToken")
    b64 = "".join((bst[0].text or "").split())
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(
        b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n-----END CERTIFICATE-----\n"
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pem)
        cert_file = f.name
    try:
        p = subprocess.run(["openssl", "verify", "-CAfile", ca_path, cert_file],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise Failure("response-verify", f"signer certificate not trusted: {p.stdout.strip()} {p.stderr.strip()}")
        subj = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", cert_file],
                              capture_output=True, text=True).stdout.strip()
        out["responseSigner"] = subj.removeprefix("subject=").strip()
    finally:
        os.unlink(cert_file)
    # ids must be unique, else a wrapped copy could be the one verified
    ids = {}
    for el in doc.iter():
        if isinstance(el.tag, str) and el.get(f"{{{WSU_NS}}}Id") is not None:
            i = el.get(f"{{{WSU_NS}}}Id")
            if i in ids:
                raise Failure("response-verify", f"duplicate wsu:Id {i}")
            ids[i] = el
    ctx = xmlsec.SignatureContext()
    for el in ids.values():
        ctx.register_id(el, "Id", WSU_NS)
    ctx.key = xmlsec.Key.from_memory(pem.encode(), xmlsec.constants.KeyDataFormatCertPem, None)
    try:
        ctx.verify(sig)
    except xmlsec.Error as e:
        raise Failure("response-verify", f"response signature invalid: {e}")
    uris = [r.get("URI") for r in sig.iterfind(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")]
    signed = {u[1:] for u in uris if u and u.startswith("#")}
    out["responseSignedIds"] = sorted(signed)
    body_id, ts_id = body.get(f"{{{WSU_NS}}}Id"), ts.get(f"{{{WSU_NS}}}Id")
    if not body_id or body_id not in signed:
        raise Failure("response-verify", "response signature does not cover the SOAP Body")
    if not ts_id or ts_id not in signed:
        raise Failure("response-verify", "response signature does not cover the Timestamp")
    expires = ts.find(f"{{{WSU_NS}}}Expires")
    if expires is not None and expires.text:
        t = datetime.datetime.fromisoformat(expires.text.strip().replace("Z", "+00:00"))
        if t < datetime.datetime.now(datetime.timezone.utc):
            raise Failure("response-verify", f"response Timestamp expired at {expires.text}")
    out["responseVerified"] = True
    return out


# ------------------------------------------------------------------------------------------------
# sub-commands

def cmd_list_operations(args):
    zeep_imports()
    client = make_client(args.wsdl, make_transport(args.timeout))
    bindings = {}
    for qname, binding in client.wsdl.bindings.items():
        bindings[str(qname)] = sorted(getattr(binding, "_operations", {}).keys())
    services = {}
    for sname, service in client.wsdl.services.items():
        services[sname] = {pname: str(port.binding.name) for pname, port in service.ports.items()}
    ops = sorted({o for v in bindings.values() for o in v})
    return {"ok": True, "bindings": bindings, "operations": ops, "services": services}


def cmd_sign_only(args):
    from lxml import etree

    zeep_imports()
    transport = make_transport(args.timeout)
    wsse = make_wsse(args.key, args.cert, args.key_password, args.ttl, args.must_understand,
                     not args.no_timestamp)
    envelope, headers = build_request(args, transport, wsse)
    data = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    with open(args.out, "wb") as f:
        f.write(data)
    r = {"ok": True, "mode": args.mode, "out": args.out,
         "soapAction": headers.get("SOAPAction")}
    r.update(describe_security(envelope))
    return r


def cmd_send(args):
    from lxml import etree

    zeep_imports()
    check_local_url(args.url)
    transport = make_transport(args.timeout, args.tls_ca, args.user, args.password)
    wsse = make_wsse(args.key, args.cert, args.key_password, args.ttl, args.must_understand,
                     not args.no_timestamp)
    result = {"ok": True, "mode": args.mode}
    import requests

    client = binding = None
    try:
        if args.mode == "call":
            if not args.wsdl:
                raise UsageError("--mode call needs --wsdl")
            # zeep builds, signs (client.wsse) and posts the message itself.
            client, qname, binding, kwargs = prepare_call(args, transport, wsse)
            service = client.create_service(qname, args.url)
            with client.settings(raw_response=True):
                response = getattr(service, args.operation)(**kwargs)
        else:
            envelope, headers = build_request(args, transport, wsse)
            response = transport.post_xml(args.url, envelope, headers)
    except requests.RequestException as e:
        raise Failure("http", f"POST {args.url} failed: {e}")
    except (Failure, UsageError):
        raise
    except Exception as e:
        raise Failure("zeep", f"{type(e).__name__}: {e}")

    if transport.last_request is not None:
        sent = etree.fromstring(transport.last_request)
        result.update(describe_security(sent))
        result["soapAction"] = transport.last_headers.get("SOAPAction")
        if args.save_request:
            with open(args.save_request, "wb") as f:
                f.write(transport.last_request)
    if args.save_response:
        with open(args.save_response, "wb") as f:
            f.write(response.content)

    result["httpStatus"] = response.status_code
    result["responseContentType"] = response.headers.get("Content-Type")
    sys.stderr.write(f"HTTP {response.status_code}, {len(response.content)} bytes\n")
    try:
        doc = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as e:
        result.update(ok=False, stage="http" if response.status_code != 200 else "response",
                      error=f"HTTP {response.status_code}: response is not XML: {e}",
                      responseText=response.text[:500])
        return result
    # cc:Status of the Body's payload (cc:Acknowledgement/cc:Status), else the first one anywhere
    status = doc.find(f"{{{SOAP11_NS}}}Body/*/{{{CC_NS}}}Status")
    if status is None:
        status = doc.find(f".//{{{CC_NS}}}Status")
    result["status"] = status.text.strip() if status is not None and status.text else None
    fault = doc.find(f"{{{SOAP11_NS}}}Body/{{{SOAP11_NS}}}Fault")
    if fault is not None:
        result["faultcode"] = fault.findtext("faultcode")
        result["faultstring"] = fault.findtext("faultstring")
    body = doc.find(f"{{{SOAP11_NS}}}Body")
    first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    result["responseBodyChild"] = etree.QName(first).localname if first is not None else None

    if response.status_code != 200 or fault is not None:
        result.update(ok=False, stage="http",
                      error=f"HTTP {response.status_code}" + (" with SOAP Fault" if fault is not None else ""))
        return result
    # let zeep deserialize the reply with the WSDL (exercises zeep's parsing; not required)
    if args.mode == "call":
        try:
            parsed = binding.process_reply(client, binding._operations[args.operation], response)
            result["zeepParsed"] = True
            if result["status"] is None and parsed is not None and "Status" in parsed:
                result["status"] = parsed["Status"]
        except Exception as e:
            result["zeepParsed"] = False
            result["zeepParseError"] = f"{type(e).__name__}: {e}"
    if result["status"] is None:
        result.update(ok=False, stage="response", error="no cc:Status in the reply")
    if args.response_ca:
        try:
            result.update(verify_response(response.content, args.response_ca))
        except Failure as e:
            result.update(ok=False, stage=e.stage, error=str(e), responseVerified=False)
    else:
        result["responseVerified"] = None
    return result


def main(argv=None):
    ap = JsonArgumentParser(prog="zeep_peer.py", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=JsonArgumentParser)

    p = sub.add_parser("list-operations", help="operation names per binding of a WSDL")
    p.add_argument("wsdl", metavar="WSDL_PATH_OR_URL")
    p.add_argument("--timeout", type=int, default=30)

    def common(p):
        p.add_argument("--wsdl", help="WSDL path or loopback URL (required for --mode call)")
        p.add_argument("--key", required=True, help="signing key, PEM (PKCS#8)")
        p.add_argument("--cert", required=True, help="signing certificate, PEM")
        p.add_argument("--key-password", default=None)
        p.add_argument("--envelope-body", required=True,
                       help="file with the Body payload element (or a whole SOAP 1.1 envelope: its Body's child)")
        p.add_argument("--operation", default="SendCO")
        p.add_argument("--binding", help="WSDL binding (QName or local name); default: first SOAP 1.1 binding")
        p.add_argument("--mode", choices=["call", "raw"], default="call")
        p.add_argument("--action", default=None,
                       help="SOAPAction for --mode raw (default urn:coconnect:soap:v1/OPERATION; "
                            "call mode uses the WSDL's)")
        p.add_argument("--ttl", type=int, default=300, help="Timestamp lifetime, seconds")
        p.add_argument("--must-understand", action="store_true",
                       help="set soap:mustUnderstand=1 on wsse:Security (zeep does not by default)")
        p.add_argument("--no-timestamp", action="store_true", help="send no wsu:Timestamp")
        p.add_argument("--timeout", type=int, default=30)

    p = sub.add_parser("send", help="sign with zeep and POST; print the ack's Status")
    common(p)
    p.add_argument("--url", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--response-ca", help="CA PEM: verify the reply's signature (Body+Timestamp, signer chains to CA)")
    p.add_argument("--tls-ca", help="CA PEM for https")
    p.add_argument("--save-request")
    p.add_argument("--save-response")

    p = sub.add_parser("sign-only", help="sign with zeep and write the envelope to --out")
    common(p)
    p.add_argument("--out", required=True)

    args = ap.parse_args(argv)
    try:
        if args.cmd == "list-operations":
            r = cmd_list_operations(args)
        elif args.cmd == "send":
            r = cmd_send(args)
        else:
            r = cmd_sign_only(args)
    except UsageError as e:
        sys.stderr.write(f"usage error: {e}\n")
        emit({"ok": False, "error": f"usage: {e}"}, 2)
    except Failure as e:
        sys.stderr.write(f"FAILED ({e.stage}): {e}\n")
        emit({"ok": False, "stage": e.stage, "error": str(e)}, 1)
    except Exception as e:  # unexpected
        traceback.print_exc()
        emit({"ok": False, "stage": "internal", "error": f"{type(e).__name__}: {e}"}, 1)
    emit(r, 0 if r.get("ok") else 1)


if __name__ == "__main__":
    main()
