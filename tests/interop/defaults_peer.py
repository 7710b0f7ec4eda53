#!/usr/bin/env python3
"""Interoperability peers with their own default settings, for the matrix (docs/interop.md).

Sub-commands (one JSON line on stdout, diagnostics on stderr; exit 0 ok, 1 failure, 2 usage):

  zeep-sign   --class Signature|BinarySignature --key K.pem --cert C.pem --in ENV.xml --out OUT.xml
      zeep.wsse.signature.Signature / BinarySignature with zeep's defaults (rsa-sha1, sha1,
      exc-c14n; Signature names the signer by X509Data issuer-serial + certificate in a
      SecurityTokenReference, BinarySignature by a token reference); no Timestamp (zeep adds none).
  zeep-verify --cert C.pem --in MSG.xml
      zeep.wsse.signature.verify_envelope (as zeep verifies a signed response).
  signxml-verify --cert C.pem --in MSG.xml
      signxml's XMLVerifier with its default expectations (no SHA-1), every reference checked;
      reports whether the SOAP Body was among the signed elements.
  wcf-build --suite basic256sha256|basic256 --key K.pem --cert C.pem --recipient R.pem
            --in ENV11.xml --out OUT.xml
      NOT a real WCF: a message in the shape .NET Framework WCF sends by default with
      BasicHttpBinding, Message security and certificate credentials (asymmetric WS-Security
      1.0, protection order SignBeforeEncryptAndEncryptSignature, SOAP 1.1, no WS-Addressing),
      built from WCF's reference source and documentation with python-xmlsec: Timestamp first,
      the sender's certificate as a BinarySecurityToken, a signature over Timestamp and Body
      (exc-c14n; rsa-sha256 and sha256 for Basic256Sha256, rsa-sha1 and sha1 for Basic256),
      an EncryptedKey (rsa-oaep-mgf1p, DigestMethod sha1) naming the recipient by its SKI with
      the ReferenceList inside it, the Body content and the signature encrypted with
      AES-256-CBC, no KeyInfo in the EncryptedData.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import sys
import traceback
import uuid

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
WSA = "http://www.w3.org/2005/08/addressing"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
SKI = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
EK_TOKEN = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"


class Failure(Exception):
    pass


def emit(result, code):
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def parse(path):
    from lxml import etree
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    return etree.parse(path, parser).getroot()


def write(root, path):
    from lxml import etree
    with open(path, "wb") as f:
        f.write(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def zeep_sign(a):
    from zeep.wsse.signature import BinarySignature, Signature
    cls = {"Signature": Signature, "BinarySignature": BinarySignature}[a.cls]
    envelope = parse(a.input)
    # zeep's own defaults: no signature_method, no digest_method.
    cls(a.key, a.cert).apply(envelope, {})
    write(envelope, a.out)
    return {"ok": True, "class": a.cls, "out": a.out}


def zeep_verify(a):
    from zeep.exceptions import SignatureVerificationFailed
    from zeep.wsse.signature import verify_envelope
    envelope = parse(a.input)
    try:
        verify_envelope(envelope, a.cert)
    except SignatureVerificationFailed as e:
        raise Failure(f"zeep: signature verification failed: {e!r}")
    return {"ok": True}


def signxml_verify(a):
    from lxml import etree
    from signxml import SignatureConfiguration, XMLVerifier
    data = open(a.input, "rb").read()
    cert = open(a.cert).read()
    config = SignatureConfiguration(expect_references=True, location=".//")
    results = XMLVerifier().verify(data, x509_cert=cert, expect_config=config)
    root = etree.fromstring(data)
    body = [b for b in root if b.tag in ("{%s}Body" % SOAP11, "{%s}Body" % SOAP12)]
    signed_tags = [etree.QName(r.signed_xml).localname for r in results]
    body_id = body[0].get("{%s}Id" % WSU) if body else None
    body_signed = any(r.signed_xml is not None and r.signed_xml.get("{%s}Id" % WSU) == body_id for r in results)
    if not body_signed:
        raise Failure(f"signxml verified {signed_tags}, not the Body")
    return {"ok": True, "signed": signed_tags}


def wcf_build(a):
    import xmlsec
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from lxml import etree

    sha256 = a.suite == "basic256sha256"
    sig_method = xmlsec.constants.TransformRsaSha256 if sha256 else xmlsec.constants.TransformRsaSha1
    digest = xmlsec.constants.TransformSha256 if sha256 else xmlsec.constants.TransformSha1
    cert_der = x509.load_pem_x509_certificate(open(a.cert, "rb").read()).public_bytes(Encoding.DER)
    recipient_pem = open(a.recipient, "rb").read()
    recipient = x509.load_pem_x509_certificate(recipient_pem)
    # WCF names a certificate it does not include by its SKI extension when it has one.
    ski = recipient.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    src = parse(a.input)
    body_src = [c for c in src if c.tag == "{%s}Body" % SOAP11]
    if not body_src:
        raise Failure("input must be a SOAP 1.1 envelope (BasicHttpBinding)")
    payload = etree.tostring(body_src[0][0]).decode()
    now = datetime.datetime.now(datetime.timezone.utc)
    created = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    expires = (now + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    guid = uuid.uuid4()
    ts_id, bst_id = "uuid-%s-1" % guid, "uuid-%s-2" % guid
    envelope = f"""<s:Envelope xmlns:s="{SOAP11}" xmlns:u="{WSU}"><s:Header><o:Security s:mustUnderstand="1" xmlns:o="{WSSE}"><u:Timestamp u:Id="{ts_id}"><u:Created>{created}</u:Created><u:Expires>{expires}</u:Expires></u:Timestamp><o:BinarySecurityToken u:Id="{bst_id}" ValueType="{X509V3}" EncodingType="{B64}">{base64.b64encode(cert_der).decode()}</o:BinarySecurityToken></o:Security></s:Header><s:Body u:Id="_1">{payload}</s:Body></s:Envelope>"""
    root = etree.fromstring(envelope.encode())
    security = root.find(".//{%s}Security" % WSSE)

    # The signature over the Timestamp and the Body, its key named by a reference to the
    # BinarySecurityToken (the initiator's token is included: AlwaysToRecipient).
    signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, sig_method)
    ctx = xmlsec.SignatureContext()
    for uid in [ts_id, "_1"]:
        node = root.xpath("//*[@u:Id=$id]", namespaces={"u": WSU}, id=uid)[0]
        ctx.register_id(node, "Id", WSU)
        ref = xmlsec.template.add_reference(signature, digest, uri="#" + uid)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    str_ = etree.SubElement(key_info, "{%s}SecurityTokenReference" % WSSE)
    etree.SubElement(str_, "{%s}Reference" % WSSE, {"URI": "#" + bst_id, "ValueType": X509V3})
    security.append(signature)
    ctx.key = xmlsec.Key.from_file(a.key, xmlsec.constants.KeyDataFormatPem)
    ctx.sign(signature)

    # One AES-256 key for the Body content and the signature. python-xmlsec transports a session
    # key only into an EncryptedKey inside the EncryptedData's KeyInfo: the Body is encrypted so,
    # then that EncryptedKey is moved into the Security header as WCF places it (with its SKI
    # reference and a ReferenceList), and the EncryptedData keep no KeyInfo (WCF writes none).
    session = os.urandom(32)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(recipient_pem, xmlsec.constants.KeyDataFormatCertPem))

    def data_template(type_uri, data_id):
        tmpl = xmlsec.template.encrypted_data_create(
            root, xmlsec.constants.TransformAes256Cbc, type=type_uri, id=data_id, ns="e")
        xmlsec.template.encrypted_data_ensure_cipher_value(tmpl)
        return tmpl

    body = root.find("{%s}Body" % SOAP11)
    tmpl = data_template("http://www.w3.org/2001/04/xmlenc#Content", "_2")
    ki = xmlsec.template.encrypted_data_ensure_key_info(tmpl, ns="ds")
    ek = xmlsec.template.add_encrypted_key(ki, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(ek)
    ectx = xmlsec.EncryptionContext(manager)
    ectx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, session)
    encrypted_body = ectx.encrypt_xml(tmpl, body)
    ek = encrypted_body.find(".//{%s}EncryptedKey" % XENC)
    body_ki = ek.getparent()
    body_ki.getparent().remove(body_ki)
    tmpl = data_template("http://www.w3.org/2001/04/xmlenc#Element", "_3")
    sctx = xmlsec.EncryptionContext()
    sctx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, session)
    encrypted_signature = sctx.encrypt_xml(tmpl, signature)

    ek.set("Id", "_0")
    method = ek.find("{%s}EncryptionMethod" % XENC)
    etree.SubElement(method, "{%s}DigestMethod" % DS, {"Algorithm": DS + "sha1"})
    for old in ek.findall("{%s}KeyInfo" % DS):
        ek.remove(old)
    ki = etree.Element("{%s}KeyInfo" % DS)
    s = etree.SubElement(ki, "{%s}SecurityTokenReference" % WSSE)
    kid = etree.SubElement(s, "{%s}KeyIdentifier" % WSSE, {"ValueType": SKI, "EncodingType": B64})
    kid.text = base64.b64encode(ski).decode()
    method.addnext(ki)
    refs = etree.SubElement(ek, "{%s}ReferenceList" % XENC)
    etree.SubElement(refs, "{%s}DataReference" % XENC, {"URI": "#_2"})
    etree.SubElement(refs, "{%s}DataReference" % XENC, {"URI": "#_3"})
    # Timestamp, BinarySecurityToken, EncryptedKey, then the encrypted signature.
    encrypted_signature.addprevious(ek)
    write(root, a.out)
    return {"ok": True, "suite": a.suite, "out": a.out, "not_real_wcf": True}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("zeep-sign")
    s.add_argument("--class", dest="cls", choices=["Signature", "BinarySignature"], required=True)
    for name in ("key", "cert", "out"):
        s.add_argument("--" + name, required=True)
    s.add_argument("--in", dest="input", required=True)
    for name in ("zeep-verify", "signxml-verify"):
        s = sub.add_parser(name)
        s.add_argument("--cert", required=True)
        s.add_argument("--in", dest="input", required=True)
    s = sub.add_parser("wcf-build")
    s.add_argument("--suite", choices=["basic256sha256", "basic256"], required=True)
    for name in ("key", "cert", "recipient", "out"):
        s.add_argument("--" + name, required=True)
    s.add_argument("--in", dest="input", required=True)
    try:
        a = p.parse_args()
    except SystemExit as e:
        emit({"ok": False, "error": "usage"}, 2 if e.code else 0)
    commands = {"zeep-sign": zeep_sign, "zeep-verify": zeep_verify, "signxml-verify": signxml_verify,
                "wcf-build": wcf_build}
    try:
        emit(commands[a.cmd](a), 0)
    except Failure as e:
        emit({"ok": False, "error": str(e)}, 1)
    except Exception as e:  # a library's own refusal is a failed cell, with its message
        traceback.print_exc(file=sys.stderr)
        emit({"ok": False, "error": f"{type(e).__name__}: {e}"}, 1)


if __name__ == "__main__":
    main()
