/* The parts of libxmlsec1 that the `xmlsec` crate's raw bindings leave out:
 * the XML Encryption context, the error callback and base64. */
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/errors.h>
#include <xmlsec/base64.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/x509.h>
