#!/usr/bin/env python3
"""Writes the committed seed corpus of fuzz/corpus/{inbound,payload}/ (seed-* files).

Run from anywhere after the `inbound` target has run once (it creates fuzz/fixture/: a dev PKI
and two genuine SendCOs signed by KR, one encrypted for ID). The splice seeds (first byte
0x80..0xBF, see fuzz_targets/inbound.rs) point at offsets of this machine's fixture; on
another fixture they land a few bytes off, which is still a useful start.
"""
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
FIX = FUZZ / "fixture"
INB = FUZZ / "corpus" / "inbound"
PAY = FUZZ / "corpus" / "payload"
NS = "urn:coconnect:soap:v1"

ENC = (FIX / "sendco.signed-encrypted.xml").read_bytes()
SIG = (FIX / "sendco.signed.xml").read_bytes()


def splice(base_signed, op, at, length, patch):
    """A splice input: selector, offset scaled to the base length, length, patch."""
    base = SIG if base_signed else ENC
    off = -(-at * 65536 // len(base))  # ceil, so (off * len) >> 16 == at
    assert (off * len(base)) >> 16 == at and off < 65536
    sel = 0x80 | (op << 1) | (1 if base_signed else 0)
    return bytes([sel]) + struct.pack("<H", off) + bytes([length]) + patch


def write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


examples = [ROOT / "examples" / "co.xml", *sorted((ROOT / "examples" / "soap").glob("*.xml"))]
ack = (
    f'<cc:Acknowledgement xmlns:cc="{NS}"><cc:MessageHeader><cc:MessageID>2f1c7a52-51b4-4a8e-9d3c-0d6f1f0b2a11</cc:MessageID>'
    "<cc:SentDateTime>2026-11-25T01:00:01.000Z</cc:SentDateTime><cc:SenderPartyID>ID</cc:SenderPartyID>"
    "<cc:ReceiverPartyID>KR</cc:ReceiverPartyID></cc:MessageHeader><cc:ReceivedMessageID>0123</cc:ReceivedMessageID>"
    "<cc:ReceiptDateTime>2026-11-25T01:00:01.000Z</cc:ReceiptDateTime><cc:ReceivedMessageDigest "
    'Algorithm="http://www.w3.org/2001/04/xmlenc#sha256">abc=</cc:ReceivedMessageDigest><cc:Status>Rejected</cc:Status>'
    "<cc:Error><cc:Code>CO-HS</cc:Code><cc:Description>h &lt;x&gt;</cc:Description><cc:Path>/LPCO/a</cc:Path></cc:Error>"
    "</cc:Acknowledgement>"
).encode()
detail = f'<cc:FaultDetail xmlns:cc="{NS}"><cc:Code>WSS-EXPIRED</cc:Code></cc:FaultDetail>'
fault11 = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>expired</faultstring>"
    f"<detail>{detail}</detail></soap:Fault></soap:Body></soap:Envelope>"
).encode()
fault12 = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
    "<soap:Body><soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code><soap:Reason>"
    f'<soap:Text xml:lang="en">busy</soap:Text></soap:Reason><soap:Detail>{detail}</soap:Detail></soap:Fault>'
    "</soap:Body></soap:Envelope>"
).encode()

for folder in (INB, PAY):
    for p in examples:
        write(folder, p.name, p.read_bytes())
    write(folder, "sendco-signed-encrypted.xml", ENC)
write(PAY, "acknowledgement.xml", ack)
# The operation elements alone, as the business readers get them after verification.
for p in sorted((ROOT / "examples" / "soap").glob("*.xml")):
    text = p.read_bytes()
    start = text.index(b"<cc:")
    end = text.rindex(b"</soap:Body>")
    write(PAY, "op-" + p.name, text[start:end].rstrip())
write(PAY, "do.xml", (ROOT / "examples" / "do.xml").read_bytes())
write(PAY, "fault-soap11.xml", fault11)
write(PAY, "fault-soap12.xml", fault12)

# Splices of the genuine messages. 0 overwrite, 1 insert, 2 replace `length` bytes, 3 truncate+append.
sender = SIG.index(b"<cc:SenderPartyID>") + len(b"<cc:SenderPartyID>")
header_end = SIG.index(b"</soap:Header>")
body_start, env_end = SIG.index(b"<soap:Body"), SIG.index(b"</soap:Envelope>")
body_id = SIG[SIG.index(b'wsu:Id="Body-', body_start) + 8:].split(b'"')[0]
signed_body = SIG[body_start:env_end]
forged = signed_body.replace(b">KR<", b">XX<").replace(b'wsu:Id="Body-', b'wsu:Id="Evil-')
write(INB, "splice-encrypted-as-is", splice(False, 0, 0, 0, b""))
write(INB, "splice-signed-as-is", splice(True, 0, 0, 0, b""))
write(INB, "splice-encrypted-comment", splice(False, 1, ENC.index(b"<wsu:Timestamp"), 0, b"<!-- c -->"))
# Equivalent under exclusive c14n, so the signature still verifies: must read as KR.
write(INB, "splice-signed-cdata", splice(True, 2, sender, 2, b"<![CDATA[KR]]>"))
write(INB, "splice-signed-charref", splice(True, 2, sender, 2, b"&#75;&#x52;"))
write(INB, "splice-signed-wrapping",
      splice(True, 3, header_end, 0, b'<Wrapper xmlns="urn:evil">' + signed_body + b"</Wrapper></soap:Header>" + forged + b"</soap:Envelope>"))
write(INB, "splice-signed-duplicate-id",
      splice(True, 1, header_end, 0, b'<x:Decoy xmlns:x="urn:x" xml:id="' + body_id + b'"/>'))
