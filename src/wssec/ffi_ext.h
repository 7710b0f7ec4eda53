/* The parts of libxmlsec1 and libxml2 that the `xmlsec` crate's raw bindings leave out:
 * the XML Encryption context, the error callback, base64, the parser options libxmlsec1 uses
 * for decrypted content, and libxml2's canonicalisation. */
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/errors.h>
#include <xmlsec/base64.h>
#include <xmlsec/parser.h>
#include <libxml/c14n.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/x509.h>
