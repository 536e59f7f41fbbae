/* auth.h: the server's transport security (TLS, mTLS) and per-call bearer tokens.
 *
 * Everything is read and checked once, before the port opens (dr_auth_load): PEM files are
 * parsed with OpenSSL (a certificate in the chain file, an unencrypted private key that
 * matches it, a certificate in the client CA file) so that a bad file stops the start with a
 * message naming it instead of failing every handshake later.  gRPC gets the PEM contents.
 * Tokens: the server keeps only their SHA-256 digests; a call's token is hashed and compared
 * with CRYPTO_memcmp (constant time, and the length of the configured token does not show).
 * Rules, by service (the path's prefix):
 *   grpc.health.v1.Health     never authenticated (probes)
 *   driftrec.v1.Recommender   the token of --token-file, when one is configured
 *   driftrec.v1.Admin         the token of --admin-token-file, always; without one configured
 *                             the service is disabled (UNIMPLEMENTED)
 * A struct dr_auth is read-only after dr_auth_load: the pollers share it without locks.
 */
#ifndef DR_AUTH_H
#define DR_AUTH_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <stdbool.h>

#include "base.h"

#define DR_TOKEN_MIN_LEN 16 /* a server token shorter than this is refused at start */

struct dr_auth_opts {
    const char *tls_cert_path;      /* PEM certificate chain; with tls_key_path, or neither */
    const char *tls_key_path;       /* PEM private key, unencrypted */
    const char *tls_client_ca_path; /* mTLS: clients need a certificate from this CA */
    const char *token_path;         /* Recommender's bearer token; NULL or "": none needed */
    const char *admin_token_path;   /* Admin's bearer token; NULL or "": Admin disabled */
};

enum dr_auth_scope {
    DR_AUTH_SCOPE_OPEN,        /* health */
    DR_AUTH_SCOPE_RECOMMENDER, /* driftrec.v1.Recommender and anything not Admin or Health */
    DR_AUTH_SCOPE_ADMIN,       /* driftrec.v1.Admin */
};

struct dr_auth;

/* Reads and checks every file opts names.  Returns owned (free with dr_auth_destroy).
 * Warnings (a key or token file others may read, tokens on a plaintext port) go to the log. */
enum dr_status dr_auth_load(const struct dr_auth_opts *opts, struct dr_auth **out,
                            struct dr_error *err);
void dr_auth_destroy(struct dr_auth *auth); /* NULL is a no-op */

/* New credentials for grpc_server_add_http2_port: TLS when configured, else plaintext.
 * auth may be NULL (plaintext).  Release with grpc_server_credentials_release. */
grpc_server_credentials *dr_auth_server_credentials(const struct dr_auth *auth);

/* "tls", "mtls" or "plaintext", for the start's log line.  auth may be NULL. */
const char *dr_auth_transport_name(const struct dr_auth *auth);
bool dr_auth_has_token(const struct dr_auth *auth);
bool dr_auth_has_admin(const struct dr_auth *auth);

/* The scope of a method path ("/driftrec.v1.Admin/GetStatus"). */
enum dr_auth_scope dr_auth_scope_of(const char *path, size_t len);

/* Whether a call with metadata md may run in scope: GRPC_STATUS_OK, or UNAUTHENTICATED (no,
 * several or a wrong token) or UNIMPLEMENTED (Admin disabled), with *msg a static text that
 * names no token.  auth may be NULL (nothing configured). */
grpc_status_code dr_auth_check(const struct dr_auth *auth, enum dr_auth_scope scope,
                               const grpc_metadata_array *md, const char **msg);

#endif /* DR_AUTH_H */
