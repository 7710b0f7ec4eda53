#!/usr/bin/env node
// Interoperability peer for coconnect: node `soap`'s WSSecurityCert (with xml-crypto) and
// `xml-encryption`, each with its own defaults. One JSON line on stdout; exit 0 ok, 1 failure,
// 2 usage error.
//
//   sign    --key K.pem --cert C.pem --in ENV.xml --out OUT.xml [--encrypt-to R.pem]
//       WSSecurityCert with its defaults (rsa-sha256, sha256, [enveloped-signature, exc-c14n],
//       a Timestamp, BinarySecurityToken reference; Body and Timestamp signed). With
//       --encrypt-to, the Body's element is then encrypted with xml-encryption (its output:
//       EncryptedData Type Element with the EncryptedKey inside it, the recipient as a bare
//       X509Data). xml-encryption has no algorithm defaults: it is given aes256-gcm and
//       rsa-oaep-mgf1p, the strongest it offers without opting out of its own refusals.
//   verify  --cert C.pem --in MSG.xml
//       xml-crypto's SignedXml with the signer's certificate; every reference checked, and the
//       SOAP Body must be one of them.
//   decrypt --key K.pem --in MSG.xml
//       xml-encryption's decrypt with its defaults (CBC refused); prints what was decrypted.
'use strict';
const fs = require('fs');
const path = require('path');
// tests/interop/setup.sh installs the locked packages into <repo>/target/interop/node.
const modules = process.env.COCONNECT_NODE_MODULES || path.join(__dirname, '..', '..', '..', 'target', 'interop', 'node', 'node_modules');
const req = (name) => require(path.join(modules, name));

function emit(result, code) {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) emit({ ok: false, error: 'usage: unexpected ' + argv[i] }, 2);
    out[argv[i].slice(2)] = argv[i + 1];
    i++;
  }
  return out;
}

function need(a, ...names) {
  for (const n of names) if (!a[n]) emit({ ok: false, error: 'usage: --' + n + ' is required' }, 2);
}

async function sign(a) {
  need(a, 'key', 'cert', 'in', 'out');
  const { WSSecurityCert } = req('soap');
  const key = fs.readFileSync(a.key, 'utf8');
  const cert = fs.readFileSync(a.cert, 'utf8');
  let xml = fs.readFileSync(a.in, 'utf8');
  xml = new WSSecurityCert(key, cert, '').postProcess(xml, 'soap');
  if (a['encrypt-to']) {
    const xmlenc = req('xml-encryption');
    const start = xml.indexOf('>', xml.indexOf('<soap:Body')) + 1;
    const end = xml.lastIndexOf('</soap:Body>');
    const element = xml.slice(start, end);
    const recipient = fs.readFileSync(a['encrypt-to'], 'utf8');
    const encrypted = await new Promise((resolve, reject) =>
      xmlenc.encrypt(element, {
        rsa_pub: recipient,
        pem: recipient,
        encryptionAlgorithm: 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
        keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
      }, (e, r) => (e ? reject(e) : resolve(r))));
    // The template's own line breaks are not part of the signed Body: only the element goes in.
    xml = xml.slice(0, start) + encrypted.trim() + xml.slice(end);
  }
  fs.writeFileSync(a.out, xml);
  return { ok: true, out: a.out, encrypted: !!a['encrypt-to'] };
}

function verify(a) {
  need(a, 'cert', 'in');
  const { SignedXml } = req('xml-crypto');
  const { DOMParser } = req('@xmldom/xmldom');
  const xml = fs.readFileSync(a.in, 'utf8');
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const signatures = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature');
  if (signatures.length !== 1) return { ok: false, error: signatures.length + ' signatures' };
  const sig = new SignedXml({ publicCert: fs.readFileSync(a.cert, 'utf8') });
  sig.loadSignature(signatures[0]);
  let valid;
  try {
    valid = sig.checkSignature(xml);
  } catch (e) {
    return { ok: false, error: 'xml-crypto: ' + e.message };
  }
  if (!valid) return { ok: false, error: 'xml-crypto: signature does not verify' };
  const body = doc.getElementsByTagNameNS('http://schemas.xmlsoap.org/soap/envelope/', 'Body')[0]
    || doc.getElementsByTagNameNS('http://www.w3.org/2003/05/soap-envelope', 'Body')[0];
  const bodyId = body && (body.getAttributeNS(
    'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd', 'Id') || body.getAttribute('Id'));
  const uris = sig.getReferences().map((r) => r.uri);
  if (!bodyId || !uris.includes('#' + bodyId)) return { ok: false, error: 'the Body is not signed: ' + uris };
  return { ok: true, references: uris };
}

async function decrypt(a) {
  need(a, 'key', 'in');
  const xmlenc = req('xml-encryption');
  const xml = fs.readFileSync(a.in, 'utf8');
  const plain = await new Promise((resolve, reject) =>
    xmlenc.decrypt(xml, { key: fs.readFileSync(a.key, 'utf8') }, (e, r) => (e ? reject(e) : resolve(r))));
  return { ok: true, plaintext: plain.toString().slice(0, 4000) };
}

(async () => {
  const [cmd, ...rest] = process.argv.slice(2);
  const a = args(rest);
  const commands = { sign, verify, decrypt };
  if (!commands[cmd]) emit({ ok: false, error: 'usage: sign | verify | decrypt' }, 2);
  try {
    const r = await commands[cmd](a);
    emit(r, r.ok ? 0 : 1);
  } catch (e) {
    process.stderr.write((e && e.stack) || String(e));
    emit({ ok: false, error: String((e && e.message) || e) }, 1);
  }
})();
