#ifndef CTLSIDENTITY_H
#define CTLSIDENTITY_H

#include <stddef.h>
#include <stdint.h>

/// A server's TLS certificate chain and private key (GnuTLS), replaceable while handshakes use it.
///
/// libmicrohttpd asks for the certificate at every handshake through the function that
/// `CTLSIdentity_retrieve_function` returns (`MHD_OPTION_HTTPS_CERT_CALLBACK`); that function finds
/// the identity of the handshake's connection through the resolver set by `CTLSIdentity_set_resolver`.
/// A load replaces the pair used by later handshakes; the pairs it replaces stay allocated until
/// `CTLSIdentity_destroy`, since a handshake in progress may still hold them.
typedef struct CTLSIdentity CTLSIdentity;

/// Finds the identity of a connection: receives libmicrohttpd's `struct MHD_Connection *` (the user
/// pointer of the GnuTLS session), returns its identity or NULL.
typedef CTLSIdentity *(*CTLSIdentity_Resolver)(void *connection);

/// A new identity without a certificate (handshakes fail until a load succeeds); NULL without memory.
CTLSIdentity *CTLSIdentity_create(void);

/// Frees the identity and every pair it ever held. No connection may use it any more.
void CTLSIdentity_destroy(CTLSIdentity *identity);

/// Parses a PEM certificate chain (the server's certificate first) and its PEM private key, checks
/// that the key belongs to the certificate, and makes them the pair of later handshakes.
///
/// Returns 0, or a negative GnuTLS error code with a NUL-terminated message in `error`; on error
/// the identity keeps its previous pair. `not_after` receives the expiry of the server's
/// certificate (seconds since the epoch) on success.
int CTLSIdentity_load(CTLSIdentity *identity,
                      const char *certificate, size_t certificate_length,
                      const char *key, size_t key_length,
                      char *error, size_t error_capacity,
                      int64_t *not_after);

/// Sets the process-wide resolver (one for every identity).
void CTLSIdentity_set_resolver(CTLSIdentity_Resolver resolver);

/// The `gnutls_certificate_retrieve_function2 *` to pass as `MHD_OPTION_HTTPS_CERT_CALLBACK`.
void *CTLSIdentity_retrieve_function(void);

/// The GnuTLS priority string of every TLS listener: GnuTLS's defaults, TLS 1.2 and 1.3 only.
static inline const char *CTLSIdentity_priorities(void) {
    return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
}

#endif
