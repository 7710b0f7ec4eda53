/*
 * Interoperability test peer for the coconnect gateway, built on Apache WSS4J 1.6 (Debian's
 * libwss4j-java) and Apache Santuario (xmlsec) 2.x.
 *
 * Sub-commands (see usage()):
 *   process    run WSSecurityEngine on a secured message (decrypt + verify signature + timestamp)
 *   send       sign (Timestamp + Body) then encrypt the Body content, POST it, verify the signed reply
 *   sign-only  like send, but write the secured message to --out instead of posting it
 *
 * Output: exactly one line of JSON on stdout; diagnostics on stderr.
 * Exit codes: 0 ok, 1 verification/processing failure, 2 usage error.
 */

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSDataRef;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.WSPasswordCallback;
import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.message.WSSecEncrypt;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.apache.ws.security.message.WSSecTimestamp;
import org.apache.ws.security.message.token.Timestamp;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

public final class Wss4jPeer {

    static final String SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/";
    static final String WSSE_NS = WSConstants.WSSE_NS;
    static final String WSU_NS = WSConstants.WSU_NS;
    static final String CC_NS = "urn:coconnect:soap:v1";
    static final String RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    static final String SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256";

    /** Usage error: exit 2. */
    static final class UsageException extends Exception {
        UsageException(String m) { super(m); }
    }

    /** Verification / processing failure: exit 1. */
    static final class FailException extends Exception {
        final String stage;
        FailException(String stage, String m) { super(m); this.stage = stage; }
        FailException(String stage, String m, Throwable cause) { super(m, cause); this.stage = stage; }
    }

    static final PrintStream OUT = System.out;
    static final PrintStream ERR = System.err;

    public static void main(String[] argv) {
        // Everything the libraries print goes to stderr; stdout carries only our JSON line.
        System.setOut(ERR);
        Map<String, Object> result;
        int code;
        try {
            result = run(argv);
            code = Boolean.TRUE.equals(result.get("ok")) ? 0 : 1;
        } catch (UsageException e) {
            ERR.println("usage error: " + e.getMessage());
            ERR.println(usage());
            result = new LinkedHashMap<>();
            result.put("ok", false);
            result.put("error", "usage: " + e.getMessage());
            code = 2;
        } catch (FailException e) {
            ERR.println("FAILED (" + e.stage + "): " + e.getMessage());
            if (e.getCause() != null) e.getCause().printStackTrace(ERR);
            result = new LinkedHashMap<>();
            result.put("ok", false);
            result.put("stage", e.stage);
            result.put("error", e.getMessage());
            code = 1;
        } catch (Throwable t) {
            ERR.println("FAILED (unexpected): " + t);
            t.printStackTrace(ERR);
            result = new LinkedHashMap<>();
            result.put("ok", false);
            result.put("stage", "internal");
            result.put("error", String.valueOf(t));
            code = 1;
        }
        OUT.println(Json.write(result));
        OUT.flush();
        System.exit(code);
    }

    static String usage() {
        return String.join("\n",
            "usage: Wss4jPeer process --keystore KS.jks --storepass P [--keypass KP] --alias A --trust TRUST.jks",
            "                         [--trustpass TP] --in MSG.xml [--out DECRYPTED.xml] [--require-encryption]",
            "                         [--no-timestamp-check]",
            "       Wss4jPeer send --url URL --user U --password PW --keystore KS.jks --storepass P [--keypass KP]",
            "                      --sign-alias A --enc-cert-alias B --trust TRUST.jks [--trustpass TP]",
            "                      --in UNSIGNED.xml [--action SOAPACTION] [--no-encrypt] [--sym-alg gcm|cbc|URI]",
            "                      [--ttl SECONDS] [--layout wss4j|timestamp-first] [--save-request F] [--save-response F]",
            "                      [--timeout SECONDS] [--tls-client-alias ALIAS] [--no-timestamp-check]",
            "       Wss4jPeer sign-only --out SECURED.xml --keystore ... --sign-alias A --enc-cert-alias B [--trust ...]",
            "                      --in UNSIGNED.xml [--no-encrypt] [--sym-alg ...] [--ttl ...] [--layout ...]",
            "  send, sign-only: [--style ours|wss4j-defaults] [--key-id K] [--enc-key-id K] [--no-timestamp]",
            "    wss4j-defaults: WSS4J 1.6's own defaults (Timestamp, Body-only signature, default algorithms",
            "    and references); K = issuer-serial|bst|x509|ski|thumbprint changes just that reference.",
            "  --enc-cert-alias is looked up in --keystore, then in --trust. Key password defaults to --storepass.",
            "  exit: 0 ok, 1 verification/processing failure, 2 usage error; one JSON line on stdout.");
    }

    // ------------------------------------------------------------------------------------------
    // argument handling

    static final class Args {
        final Map<String, String> opts = new HashMap<>();
        final Set<String> flags = new HashSet<>();
        final Set<String> used = new HashSet<>();

        static Args parse(String[] a, int from, Set<String> flagNames) throws UsageException {
            Args r = new Args();
            for (int i = from; i < a.length; i++) {
                String s = a[i];
                if (!s.startsWith("--")) throw new UsageException("unexpected argument: " + s);
                String name = s.substring(2);
                String value = null;
                int eq = name.indexOf('=');
                if (eq >= 0) { value = name.substring(eq + 1); name = name.substring(0, eq); }
                if (flagNames.contains(name)) {
                    if (value != null) throw new UsageException("--" + name + " takes no value");
                    r.flags.add(name);
                    continue;
                }
                if (value == null) {
                    if (i + 1 >= a.length) throw new UsageException("--" + name + " needs a value");
                    value = a[++i];
                }
                if (r.opts.put(name, value) != null) throw new UsageException("--" + name + " given twice");
            }
            return r;
        }

        String req(String name) throws UsageException {
            used.add(name);
            String v = opts.get(name);
            if (v == null || v.isEmpty()) throw new UsageException("--" + name + " is required");
            return v;
        }

        String opt(String name, String def) {
            used.add(name);
            String v = opts.get(name);
            return v == null ? def : v;
        }

        boolean flag(String name) { used.add(name); return flags.contains(name); }

        void checkAllUsed() throws UsageException {
            for (String k : opts.keySet()) {
                if (!used.contains(k)) throw new UsageException("unknown option --" + k);
            }
        }
    }

    static Map<String, Object> run(String[] argv) throws Exception {
        if (argv.length == 0) throw new UsageException("missing sub-command");
        String cmd = argv[0];
        Set<String> flags = new HashSet<>(Arrays.asList(
            "no-encrypt", "require-encryption", "no-timestamp-check", "no-timestamp", "help"));
        Args a = Args.parse(argv, 1, flags);
        if (a.flags.contains("help") || cmd.equals("--help") || cmd.equals("-h") || cmd.equals("help")) {
            ERR.println(usage());
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("ok", true);
            r.put("usage", usage());
            return r;
        }
        switch (cmd) {
            case "process": return cmdProcess(a);
            case "send": return cmdSend(a, true);
            case "sign-only": return cmdSend(a, false);
            default: throw new UsageException("unknown sub-command: " + cmd);
        }
    }

    // ------------------------------------------------------------------------------------------
    // key stores

    static KeyStore loadJks(String path, String pass, String what) throws FailException {
        try (InputStream in = new FileInputStream(path)) {
            KeyStore ks = KeyStore.getInstance("JKS");
            ks.load(in, pass.toCharArray());
            return ks;
        } catch (Exception e) {
            throw new FailException("keystore", "cannot load " + what + " " + path + ": " + e.getMessage(), e);
        }
    }

    /** A keystore holding only the private key entry {@code alias}, so that WSS4J can use no other key. */
    static KeyStore onlyKeyEntry(KeyStore src, String alias, char[] keyPass) throws FailException {
        try {
            if (!src.isKeyEntry(alias)) {
                throw new FailException("keystore", "alias '" + alias + "' is not a private key entry (aliases: "
                    + java.util.Collections.list(src.aliases()) + ")");
            }
            PrivateKey key = (PrivateKey) src.getKey(alias, keyPass);
            Certificate[] chain = src.getCertificateChain(alias);
            KeyStore ks = KeyStore.getInstance("JKS");
            ks.load(null, null);
            ks.setKeyEntry(alias, key, keyPass, chain);
            return ks;
        } catch (FailException e) {
            throw e;
        } catch (Exception e) {
            throw new FailException("keystore", "cannot read key '" + alias + "': " + e.getMessage(), e);
        }
    }

    static X509Certificate findCert(String alias, KeyStore... stores) throws Exception {
        for (KeyStore ks : stores) {
            if (ks != null && ks.containsAlias(alias)) {
                Certificate c = ks.getCertificate(alias);
                if (c instanceof X509Certificate) return (X509Certificate) c;
            }
        }
        return null;
    }

    static Merlin merlin(KeyStore keystore, KeyStore truststore) {
        Merlin m = new Merlin();
        m.setKeyStore(keystore);
        m.setTrustStore(truststore);
        return m;
    }

    static CallbackHandler passwordCallback(final String keyPass) {
        return (Callback[] callbacks) -> {
            for (Callback c : callbacks) {
                if (c instanceof WSPasswordCallback) ((WSPasswordCallback) c).setPassword(keyPass);
            }
        };
    }

    // ------------------------------------------------------------------------------------------
    // XML helpers

    static Document parse(byte[] bytes, String what) throws FailException {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setNamespaceAware(true);
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            f.setXIncludeAware(false);
            f.setExpandEntityReferences(false);
            DocumentBuilder b = f.newDocumentBuilder();
            b.setErrorHandler(null);
            return b.parse(new ByteArrayInputStream(bytes));
        } catch (Exception e) {
            throw new FailException("parse", "cannot parse " + what + ": " + e.getMessage(), e);
        }
    }

    static byte[] serialize(Document doc) throws Exception {
        Transformer t = TransformerFactory.newInstance().newTransformer();
        t.setOutputProperty(OutputKeys.ENCODING, "UTF-8");
        t.setOutputProperty(OutputKeys.INDENT, "no");
        t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "no");
        doc.setXmlStandalone(true);
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        t.transform(new DOMSource(doc), new StreamResult(bos));
        return bos.toByteArray();
    }

    static Element firstChildElement(Node parent) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n.getNodeType() == Node.ELEMENT_NODE) return (Element) n;
        }
        return null;
    }

    static Element childElement(Node parent, String ns, String local) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n.getNodeType() == Node.ELEMENT_NODE && local.equals(n.getLocalName()) && ns.equals(n.getNamespaceURI())) {
                return (Element) n;
            }
        }
        return null;
    }

    /** The SOAP 1.1 Body of an Envelope document (strictly Envelope/Body, not a look-alike elsewhere). */
    static Element soapBody(Document doc) throws FailException {
        Element env = doc.getDocumentElement();
        if (env == null || !"Envelope".equals(env.getLocalName()) || !SOAP11_NS.equals(env.getNamespaceURI())) {
            throw new FailException("parse", "document element is not a SOAP 1.1 Envelope");
        }
        Element body = childElement(env, SOAP11_NS, "Body");
        if (body == null) throw new FailException("parse", "SOAP Envelope has no Body");
        return body;
    }

    static Element securityHeader(Document doc) {
        Element env = doc.getDocumentElement();
        Element header = childElement(env, SOAP11_NS, "Header");
        return header == null ? null : childElement(header, WSSE_NS, "Security");
    }

    static String actionName(int action) {
        switch (action) {
            case WSConstants.ENCR: return "Encrypt";
            case WSConstants.SIGN: return "Signature";
            case WSConstants.TS: return "Timestamp";
            case WSConstants.UT: return "UsernameToken";
            case WSConstants.UT_NOPASSWORD: return "UsernameTokenNoPassword";
            case WSConstants.BST: return "BinarySecurityToken";
            case WSConstants.SC: return "SignatureConfirmation";
            default: return "action-" + action;
        }
    }

    static String localNameOf(Element e) {
        return e == null ? null : e.getLocalName();
    }

    static String stripHash(String id) {
        return id != null && id.startsWith("#") ? id.substring(1) : id;
    }

    static String wsuId(Element e) {
        if (e == null) return null;
        String id = e.getAttributeNS(WSU_NS, "Id");
        return id.isEmpty() ? null : id;
    }

    // ------------------------------------------------------------------------------------------
    // inbound processing (shared by `process` and the response check of `send`)

    static final class Verified {
        final Map<String, Object> json = new LinkedHashMap<>();
        Document doc;
    }

    /**
     * Runs WSSecurityEngine on {@code doc} and checks that the signature covers the real
     * Envelope/Body and the processed Timestamp (element identity, not just some Id).
     */
    static Verified verify(Document doc, Merlin sigCrypto, Merlin decCrypto, String keyPass,
                           boolean requireEncryption, boolean timestampCheck) throws FailException {
        Verified v = new Verified();
        v.doc = doc;
        Element body = soapBody(doc);
        Element secEl = securityHeader(doc);
        if (secEl == null) throw new FailException("wss", "no wsse:Security header");
        List<String> headerOrder = new ArrayList<>();
        for (Node n = secEl.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n.getNodeType() == Node.ELEMENT_NODE) headerOrder.add(n.getLocalName());
        }

        WSSConfig cfg = WSSConfig.getNewInstance();
        if (!timestampCheck) {
            // not strict = Expires ignored; Created must still be within the TTL: ~23 days
            // (WSS4J multiplies the TTL by 1000 in int arithmetic).
            cfg.setTimeStampStrict(false);
            cfg.setTimeStampTTL(2_000_000);
            cfg.setTimeStampFutureTTL(2_000_000);
        }
        WSSecurityEngine engine = new WSSecurityEngine();
        engine.setWssConfig(cfg);
        List<WSSecurityEngineResult> results;
        try {
            results = engine.processSecurityHeader(doc, null, passwordCallback(keyPass), sigCrypto, decCrypto);
        } catch (Exception e) {
            throw new FailException("wss", "WSSecurityEngine rejected the message: " + e.getMessage(), e);
        }
        if (results == null || results.isEmpty()) throw new FailException("wss", "no WS-Security results");

        List<String> actions = new ArrayList<>();
        List<String> signedIds = new ArrayList<>();
        List<String> signedElements = new ArrayList<>();
        List<String> encryptedIds = new ArrayList<>();
        boolean bodySigned = false, timestampSigned = false, bodyEncrypted = false;
        int signatures = 0;
        Element timestampEl = null;
        X509Certificate signer = null, decryptCert = null;
        String sigMethod = null, c14n = null, keyTransport = null, symAlg = null;
        List<String> digestAlgs = new ArrayList<>();

        for (WSSecurityEngineResult r : results) {
            int action = (Integer) r.get(WSSecurityEngineResult.TAG_ACTION);
            if (action != WSConstants.BST) actions.add(actionName(action));
            if (action == WSConstants.TS) {
                Timestamp ts = (Timestamp) r.get(WSSecurityEngineResult.TAG_TIMESTAMP);
                if (ts != null) timestampEl = ts.getElement();
            }
        }
        for (WSSecurityEngineResult r : results) {
            int action = (Integer) r.get(WSSecurityEngineResult.TAG_ACTION);
            @SuppressWarnings("unchecked")
            List<WSDataRef> refs = (List<WSDataRef>) r.get(WSSecurityEngineResult.TAG_DATA_REF_URIS);
            if (action == WSConstants.SIGN) {
                signatures++;
                signer = (X509Certificate) r.get(WSSecurityEngineResult.TAG_X509_CERTIFICATE);
                sigMethod = (String) r.get(WSSecurityEngineResult.TAG_SIGNATURE_METHOD);
                c14n = (String) r.get(WSSecurityEngineResult.TAG_CANONICALIZATION_METHOD);
                if (refs != null) {
                    for (WSDataRef ref : refs) {
                        signedIds.add(stripHash(ref.getWsuId()));
                        Element pe = ref.getProtectedElement();
                        signedElements.add(localNameOf(pe));
                        if (ref.getDigestAlgorithm() != null && !digestAlgs.contains(ref.getDigestAlgorithm())) {
                            digestAlgs.add(ref.getDigestAlgorithm());
                        }
                        if (pe == body) bodySigned = true;
                        if (pe != null && pe == timestampEl) timestampSigned = true;
                    }
                }
            } else if (action == WSConstants.ENCR) {
                keyTransport = (String) r.get(WSSecurityEngineResult.TAG_ENCRYPTED_KEY_TRANSPORT_METHOD);
                Object c = r.get(WSSecurityEngineResult.TAG_X509_CERTIFICATE);
                if (c instanceof X509Certificate) decryptCert = (X509Certificate) c;
                if (refs != null) {
                    for (WSDataRef ref : refs) {
                        encryptedIds.add(stripHash(ref.getWsuId()));
                        if (ref.getAlgorithm() != null) symAlg = ref.getAlgorithm();
                        Element pe = ref.getProtectedElement();
                        if (pe == body || (pe != null && pe.getParentNode() == body)) bodyEncrypted = true;
                    }
                }
            }
        }

        Map<String, Object> j = v.json;
        j.put("ok", true);
        j.put("actions", actions);  // WSS4J's result order: the reverse of the header order
        j.put("securityHeader", headerOrder);
        j.put("signedIds", signedIds);
        j.put("signedElements", signedElements);
        j.put("bodySigned", bodySigned);
        j.put("timestampSigned", timestampSigned);
        j.put("encrypted", !encryptedIds.isEmpty());
        j.put("bodyEncrypted", bodyEncrypted);
        j.put("encryptedIds", encryptedIds);
        Element first = firstChildElement(body);
        j.put("bodyChild", localNameOf(first));
        j.put("bodyChildNs", first == null ? null : first.getNamespaceURI());
        j.put("bodyId", wsuId(body));
        j.put("signerSubject", signer == null ? null : signer.getSubjectX500Principal().getName());
        j.put("signatureMethod", sigMethod);
        j.put("c14nMethod", c14n);
        j.put("digestMethods", digestAlgs);
        if (!encryptedIds.isEmpty()) {
            j.put("keyTransport", keyTransport);
            j.put("symmetricAlgorithm", symAlg);
            j.put("decryptionCertSubject", decryptCert == null ? null : decryptCert.getSubjectX500Principal().getName());
        }

        List<String> problems = new ArrayList<>();
        if (signatures == 0) problems.add("message is not signed");
        if (signatures > 1) problems.add("more than one signature");
        if (signatures > 0 && !bodySigned) problems.add("signature does not cover the SOAP Body");
        if (timestampEl == null) problems.add("no Timestamp");
        else if (signatures > 0 && !timestampSigned) problems.add("signature does not cover the Timestamp");
        if (requireEncryption && !bodyEncrypted) problems.add("Body was not encrypted");
        if (!problems.isEmpty()) {
            j.put("ok", false);
            j.put("stage", "policy");
            j.put("error", String.join("; ", problems));
        }
        return v;
    }

    static Map<String, Object> cmdProcess(Args a) throws Exception {
        String ksPath = a.req("keystore");
        String storePass = a.req("storepass");
        String keyPass = a.opt("keypass", storePass);
        String alias = a.req("alias");
        String trustPath = a.req("trust");
        String trustPass = a.opt("trustpass", storePass);
        String in = a.req("in");
        String out = a.opt("out", null);
        boolean requireEnc = a.flag("require-encryption");
        boolean tsCheck = !a.flag("no-timestamp-check");
        a.checkAllUsed();

        KeyStore ks = loadJks(ksPath, storePass, "keystore");
        KeyStore trust = loadJks(trustPath, trustPass, "truststore");
        // Decrypt only with the named key: a message encrypted for another certificate must fail.
        Merlin decCrypto = merlin(onlyKeyEntry(ks, alias, keyPass.toCharArray()), null);
        Merlin sigCrypto = merlin(trust, trust);

        byte[] bytes;
        try {
            bytes = Files.readAllBytes(Path.of(in));
        } catch (Exception e) {
            throw new FailException("io", "cannot read " + in + ": " + e.getMessage(), e);
        }
        Document doc = parse(bytes, in);
        Verified v = verify(doc, sigCrypto, decCrypto, keyPass, requireEnc, tsCheck);
        if (out != null) Files.write(Path.of(out), serialize(doc));
        return v.json;
    }

    // ------------------------------------------------------------------------------------------
    // outbound: sign then encrypt

    static String symAlgorithm(String s) throws UsageException {
        switch (s) {
            case "gcm": case "aes256-gcm": return WSConstants.AES_256_GCM;
            case "cbc": case "aes256-cbc": return WSConstants.AES_256;
            case "aes128-gcm": return WSConstants.AES_128_GCM;
            case "aes128-cbc": return WSConstants.AES_128;
            default:
                if (s.startsWith("http://")) return s;
                throw new UsageException("--sym-alg must be gcm, cbc, aes128-gcm, aes128-cbc or an algorithm URI");
        }
    }

    static Map<String, Object> cmdSend(Args a, boolean post) throws Exception {
        String ksPath = a.req("keystore");
        String storePass = a.req("storepass");
        String keyPass = a.opt("keypass", storePass);
        String signAlias = a.req("sign-alias");
        boolean encrypt = !a.flag("no-encrypt");
        String encAlias = encrypt ? a.req("enc-cert-alias") : a.opt("enc-cert-alias", null);
        String trustPath = post ? a.req("trust") : a.opt("trust", null);
        String trustPass = a.opt("trustpass", storePass);
        String in = a.req("in");
        // --style wss4j-defaults: WSS4J 1.6's own defaults (no algorithm or reference setter is
        // called); --key-id / --enc-key-id / --sym-alg then change just that one setting.
        String style = a.opt("style", "ours");
        if (!style.equals("ours") && !style.equals("wss4j-defaults")) {
            throw new UsageException("--style must be ours or wss4j-defaults");
        }
        boolean defaults = style.equals("wss4j-defaults");
        String symArg = a.opt("sym-alg", defaults ? null : "gcm");
        String symAlg = symArg == null ? null : symAlgorithm(symArg);
        Integer keyId = keyIdentifier(a.opt("key-id", null));
        Integer encKeyId = keyIdentifier(a.opt("enc-key-id", null));
        boolean timestamp = !a.flag("no-timestamp");
        int ttl;
        try {
            ttl = Integer.parseInt(a.opt("ttl", "300"));
        } catch (NumberFormatException e) {
            throw new UsageException("--ttl must be an integer");
        }
        String layout = a.opt("layout", "wss4j");
        if (!layout.equals("wss4j") && !layout.equals("timestamp-first")) {
            throw new UsageException("--layout must be wss4j or timestamp-first");
        }
        String url = null, user = null, password = null, action = null, saveReq = null, saveResp = null,
            out = null, tlsClientAlias = null;
        int timeout = 30;
        boolean tsCheck = !a.flag("no-timestamp-check");
        if (post) {
            url = a.req("url");
            user = a.req("user");
            password = a.req("password");
            action = a.opt("action", "urn:coconnect:soap:v1/SendCO");
            saveReq = a.opt("save-request", null);
            saveResp = a.opt("save-response", null);
            tlsClientAlias = a.opt("tls-client-alias", null);
            try {
                timeout = Integer.parseInt(a.opt("timeout", "30"));
            } catch (NumberFormatException e) {
                throw new UsageException("--timeout must be an integer");
            }
            if (!url.startsWith("http://") && !url.startsWith("https://")) {
                throw new UsageException("--url must be http:// or https://");
            }
        } else {
            out = a.req("out");
        }
        a.checkAllUsed();

        KeyStore ks = loadJks(ksPath, storePass, "keystore");
        KeyStore trust = trustPath == null ? null : loadJks(trustPath, trustPass, "truststore");
        Merlin signCrypto = merlin(onlyKeyEntry(ks, signAlias, keyPass.toCharArray()), trust);
        X509Certificate encCert = null;
        if (encrypt) {
            encCert = findCert(encAlias, ks, trust);
            if (encCert == null) {
                throw new FailException("keystore", "no certificate with alias '" + encAlias + "' in keystore or truststore");
            }
        }

        byte[] bytes;
        try {
            bytes = Files.readAllBytes(Path.of(in));
        } catch (Exception e) {
            throw new FailException("io", "cannot read " + in + ": " + e.getMessage(), e);
        }
        Document doc = parse(bytes, in);
        Element body = soapBody(doc);
        if (securityHeader(doc) != null) throw new FailException("secure", "input already has a wsse:Security header");
        Element payload = firstChildElement(body);

        Map<String, Object> j = new LinkedHashMap<>();
        j.put("ok", true);
        try {
            if (defaults) {
                secureWithDefaults(doc, signCrypto, signAlias, keyPass, encrypt ? encCert : null, symAlg, keyId, encKeyId, timestamp);
            } else {
                secure(doc, signCrypto, signAlias, keyPass, encrypt ? encCert : null, symAlg, ttl, layout);
            }
        } catch (FailException e) {
            throw e;
        } catch (Exception e) {
            throw new FailException("secure", "WSS4J could not secure the message: " + e.getMessage(), e);
        }
        Element sec = securityHeader(doc);
        List<String> headerOrder = new ArrayList<>();
        for (Node n = sec.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n.getNodeType() == Node.ELEMENT_NODE) headerOrder.add(n.getLocalName());
        }
        j.put("securityHeader", headerOrder);
        j.put("bodyId", wsuId(body));
        j.put("payload", localNameOf(payload));
        j.put("encrypted", encrypt);
        if (encrypt) {
            j.put("symmetricAlgorithm", symAlg == null ? "wss4j-default" : symAlg);
            j.put("keyTransport", defaults ? "wss4j-default" : WSConstants.KEYTRANSPORT_RSAOEP);
            j.put("encryptedFor", encCert.getSubjectX500Principal().getName());
        }
        byte[] secured = serialize(doc);

        if (!post) {
            Files.write(Path.of(out), secured);
            j.put("out", out);
            return j;
        }
        if (saveReq != null) Files.write(Path.of(saveReq), secured);

        // ---- POST
        HttpClient.Builder hb = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(timeout));
        if (url.startsWith("https://")) hb.sslContext(sslContext(trust, ks, tlsClientAlias, keyPass));
        HttpClient client = hb.build();
        String basic = Base64.getEncoder().encodeToString((user + ":" + password).getBytes(StandardCharsets.UTF_8));
        HttpRequest req = HttpRequest.newBuilder(URI.create(url))
            .timeout(Duration.ofSeconds(timeout))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"" + action + "\"")
            .header("Authorization", "Basic " + basic)
            .POST(HttpRequest.BodyPublishers.ofByteArray(secured))
            .build();
        HttpResponse<byte[]> resp;
        try {
            resp = client.send(req, HttpResponse.BodyHandlers.ofByteArray());
        } catch (Exception e) {
            throw new FailException("http", "POST " + url + " failed: " + e, e);
        }
        if (saveResp != null) Files.write(Path.of(saveResp), resp.body());
        j.put("httpStatus", resp.statusCode());
        j.put("responseContentType", resp.headers().firstValue("Content-Type").orElse(null));
        ERR.println("HTTP " + resp.statusCode() + ", " + resp.body().length + " bytes");

        Document rdoc;
        try {
            rdoc = parse(resp.body(), "response");
            soapBody(rdoc);
        } catch (FailException e) {
            j.put("ok", false);
            j.put("stage", resp.statusCode() != 200 ? "http" : "response");
            j.put("error", "HTTP " + resp.statusCode() + ": response is not a SOAP envelope: " + e.getMessage());
            j.put("responseText", truncate(new String(resp.body(), StandardCharsets.UTF_8), 500));
            return j;
        }
        Element rbody = soapBody(rdoc);
        Element fault = childElement(rbody, SOAP11_NS, "Fault");
        if (fault != null) {
            Element fc = childElement(fault, "", "faultcode");
            Element fs = childElement(fault, "", "faultstring");
            j.put("faultcode", fc == null ? null : fc.getTextContent().trim());
            j.put("faultstring", fs == null ? null : fs.getTextContent().trim());
        }
        // cc:Status of the Body's payload (cc:Acknowledgement/cc:Status), else the first one anywhere
        Element rpayload = firstChildElement(rbody);
        Element status = rpayload == null ? null : childElement(rpayload, CC_NS, "Status");
        if (status == null) status = findDescendant(rbody, CC_NS, "Status");
        j.put("status", status == null ? null : status.getTextContent().trim());
        Element rfirst = firstChildElement(rbody);
        j.put("responseBodyChild", localNameOf(rfirst));

        if (resp.statusCode() != 200 || fault != null) {
            j.put("ok", false);
            j.put("stage", "http");
            j.put("error", "HTTP " + resp.statusCode() + (fault != null ? " with SOAP Fault" : ""));
            return j;
        }
        // ---- verify the signed acknowledgement
        Merlin rSig = merlin(trust, trust);
        Merlin rDec = merlin(ks, null);
        try {
            Verified v = verify(rdoc, rSig, rDec, keyPass, false, tsCheck);
            Map<String, Object> rv = v.json;
            j.put("responseVerified", rv.get("ok"));
            j.put("responseActions", rv.get("actions"));
            j.put("responseSignedIds", rv.get("signedIds"));
            j.put("responseSignedElements", rv.get("signedElements"));
            j.put("responseSigner", rv.get("signerSubject"));
            j.put("responseSignatureMethod", rv.get("signatureMethod"));
            j.put("responseDigestMethods", rv.get("digestMethods"));
            if (!Boolean.TRUE.equals(rv.get("ok"))) {
                j.put("ok", false);
                j.put("stage", "response-verify");
                j.put("error", "response: " + rv.get("error"));
            }
        } catch (FailException e) {
            j.put("responseVerified", false);
            j.put("ok", false);
            j.put("stage", "response-verify");
            j.put("error", "response: " + e.getMessage());
            ERR.println("response verification failed: " + e.getMessage());
            if (e.getCause() != null) e.getCause().printStackTrace(ERR);
        }
        return j;
    }

    static String truncate(String s, int n) {
        return s.length() <= n ? s : s.substring(0, n) + "...";
    }

    static Element findDescendant(Element root, String ns, String local) {
        org.w3c.dom.NodeList nl = root.getElementsByTagNameNS(ns, local);
        return nl.getLength() == 0 ? null : (Element) nl.item(0);
    }

    /**
     * Adds wsse:Security (mustUnderstand=1) with Timestamp, BST, Signature over Timestamp + Body
     * (rsa-sha256, exc-c14n, sha256, BST direct reference) and, when {@code encCert} is set,
     * an EncryptedKey (RSA-OAEP, IssuerSerial) with a ReferenceList to the Body content's
     * EncryptedData. Layout "wss4j": [EncryptedKey, BST, Signature, Timestamp] as WSS4J's own
     * action chain builds it; "timestamp-first": the Timestamp is moved to the front.
     */
    static void secure(Document doc, Merlin crypto, String signAlias, String keyPass, X509Certificate encCert,
                       String symAlg, int ttl, String layout) throws Exception {
        WSSConfig cfg = WSSConfig.getNewInstance();
        WSSecHeader secHeader = new WSSecHeader();
        secHeader.setMustUnderstand(true);
        secHeader.insertSecurityHeader(doc);

        WSSecTimestamp ts = new WSSecTimestamp(cfg);
        ts.setTimeToLive(ttl);
        ts.build(doc, secHeader);

        WSSecSignature sig = new WSSecSignature(cfg);
        sig.setUserInfo(signAlias, keyPass);
        sig.setKeyIdentifierType(WSConstants.BST_DIRECT_REFERENCE);
        sig.setSignatureAlgorithm(RSA_SHA256);
        sig.setSigCanonicalization(WSConstants.C14N_EXCL_OMIT_COMMENTS);
        sig.setDigestAlgo(SHA256);
        sig.setUseSingleCertificate(true);
        List<WSEncryptionPart> sigParts = new ArrayList<>();
        sigParts.add(new WSEncryptionPart(WSConstants.ELEM_BODY, SOAP11_NS, ""));
        sigParts.add(new WSEncryptionPart(ts.getId()));
        sig.setParts(sigParts);
        sig.build(doc, crypto, secHeader);

        if (encCert != null) {
            WSSecEncrypt enc = new WSSecEncrypt(cfg);
            enc.setUseThisCert(encCert);
            enc.setKeyIdentifierType(WSConstants.ISSUER_SERIAL);
            enc.setSymmetricEncAlgorithm(symAlg);
            enc.setKeyEncAlgo(WSConstants.KEYTRANSPORT_RSAOEP);
            List<WSEncryptionPart> encParts = new ArrayList<>();
            encParts.add(new WSEncryptionPart(WSConstants.ELEM_BODY, SOAP11_NS, "Content"));
            enc.setParts(encParts);
            enc.build(doc, crypto, secHeader);
        }

        if (layout.equals("timestamp-first")) {
            Element sec = secHeader.getSecurityHeader();
            Element tsEl = ts.getElement();
            sec.removeChild(tsEl);
            sec.insertBefore(tsEl, sec.getFirstChild());
        }
    }

    static Integer keyIdentifier(String s) throws UsageException {
        if (s == null) return null;
        switch (s) {
            case "issuer-serial": return WSConstants.ISSUER_SERIAL;
            case "bst": return WSConstants.BST_DIRECT_REFERENCE;
            case "x509": return WSConstants.X509_KEY_IDENTIFIER;
            case "ski": return WSConstants.SKI_KEY_IDENTIFIER;
            case "thumbprint": return WSConstants.THUMBPRINT_IDENTIFIER;
            default: throw new UsageException("key identifier must be issuer-serial, bst, x509, ski or thumbprint");
        }
    }

    /**
     * WSS4J's own action chain "Timestamp Signature Encrypt" with its defaults: a Timestamp
     * (unsigned: the default signature parts are the Body only), the signature with
     * WSSecSignature's defaults (key identifier, algorithms), the Body content encrypted with
     * WSSecEncrypt's defaults. Only the settings given on the command line are changed.
     */
    static void secureWithDefaults(Document doc, Merlin crypto, String signAlias, String keyPass, X509Certificate encCert,
                                   String symAlg, Integer keyId, Integer encKeyId, boolean timestamp) throws Exception {
        WSSConfig cfg = WSSConfig.getNewInstance();
        WSSecHeader secHeader = new WSSecHeader();
        secHeader.setMustUnderstand(true);
        secHeader.insertSecurityHeader(doc);
        if (timestamp) {
            WSSecTimestamp ts = new WSSecTimestamp(cfg);
            ts.build(doc, secHeader);
        }
        WSSecSignature sig = new WSSecSignature(cfg);
        sig.setUserInfo(signAlias, keyPass);
        if (keyId != null) sig.setKeyIdentifierType(keyId);
        sig.build(doc, crypto, secHeader);
        if (encCert != null) {
            WSSecEncrypt enc = new WSSecEncrypt(cfg);
            enc.setUseThisCert(encCert);
            if (encKeyId != null) enc.setKeyIdentifierType(encKeyId);
            if (symAlg != null) enc.setSymmetricEncAlgorithm(symAlg);
            enc.build(doc, crypto, secHeader);
        }
    }

    static SSLContext sslContext(KeyStore trust, KeyStore ks, String clientAlias, String keyPass) throws Exception {
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        KeyManagerFactory kmf = null;
        if (clientAlias != null) {
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(onlyKeyEntry(ks, clientAlias, keyPass.toCharArray()), keyPass.toCharArray());
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    // ------------------------------------------------------------------------------------------
    // minimal JSON writer

    static final class Json {
        static String write(Object o) {
            StringBuilder sb = new StringBuilder();
            value(sb, o);
            return sb.toString();
        }

        static void value(StringBuilder sb, Object o) {
            if (o == null) {
                sb.append("null");
            } else if (o instanceof Boolean || o instanceof Integer || o instanceof Long) {
                sb.append(o);
            } else if (o instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    str(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    value(sb, e.getValue());
                }
                sb.append('}');
            } else if (o instanceof List) {
                sb.append('[');
                boolean first = true;
                for (Object x : (List<?>) o) {
                    if (!first) sb.append(',');
                    first = false;
                    value(sb, x);
                }
                sb.append(']');
            } else {
                str(sb, o.toString());
            }
        }

        static void str(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                        else sb.append(c);
                }
            }
            sb.append('"');
        }
    }
}
