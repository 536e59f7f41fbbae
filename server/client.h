/* client.h: a small blocking unary gRPC client over the C core, for driftrec-cli and tests,
 * and the transport options (TLS, mTLS, metadata, bearer token) that driftrec-load shares.
 *
 * One channel per struct dr_client; calls run one at a time on the client's own
 * completion queue (pluck).  Not thread-safe: one client per thread.
 */
#ifndef DR_CLIENT_H
#define DR_CLIENT_H

#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define DR_CLIENT_MAX_METADATA 16

/* How to reach the server.  Every pointer is borrowed and must outlive what is made from it
 * (the strings in argv do). */
struct dr_client_opts {
    const char *tls_ca_path;     /* the server's CA (PEM): use TLS; NULL = plaintext */
    const char *tls_cert_path;   /* mTLS: this client's certificate chain (PEM), with ... */
    const char *tls_key_path;    /* ... its private key (PEM) */
    const char *tls_server_name; /* the name the server's certificate must carry; NULL: the
                                    target's host */
    const char *token_path;      /* a token file (token.h): 'authorization: Bearer <token>' */
    const char *metadata[DR_CLIENT_MAX_METADATA]; /* "key=value", sent with every call */
    size_t n_metadata;
};

/* The options' lines for a --help text. */
#define DR_CLIENT_OPTS_USAGE                                                                       \
    "  --tls-ca FILE         the server's CA certificate (PEM): connect with TLS\n"                \
    "  --tls-cert FILE       mTLS: this client's certificate chain (PEM), with --tls-key\n"        \
    "  --tls-key FILE        mTLS: this client's private key (PEM)\n"                              \
    "  --tls-server-name N   the name the server's certificate must carry (default: the\n"         \
    "                        host of the address), e.g. for test certificates\n"                   \
    "  --token-file FILE     send 'authorization: Bearer TOKEN', TOKEN the file's one line\n"      \
    "                        (env DR_TOKEN_FILE)\n"                                                \
    "  --metadata KEY=VALUE  send this metadata with every call (repeatable, at most 16;\n"        \
    "                        lower-case keys, printable ASCII values)\n"

/* Applies one option: flag ("--tls-ca", ...) and its value.  DR_OK with *is_known 1 when
 * flag is one of these options, 0 when it is not; DR_ERR_INVALID_ARG with err set on a bad
 * value (a --metadata without '=', or more than DR_CLIENT_MAX_METADATA of them). */
enum dr_status dr_client_opts_apply(struct dr_client_opts *opts, const char *flag,
                                    const char *value, int *is_known, struct dr_error *err);

/* The metadata every call sends, built from opts: the token read, keys and values checked. */
struct dr_client_metadata {
    grpc_metadata md[DR_CLIENT_MAX_METADATA + 1];
    size_t count;
};
/* After grpc_init().  opts may be NULL (none).  Release with dr_client_metadata_deinit. */
enum dr_status dr_client_metadata_init(struct dr_client_metadata *m,
                                       const struct dr_client_opts *opts, struct dr_error *err);
void dr_client_metadata_deinit(struct dr_client_metadata *m);

/* A channel to target over opts' transport (NULL: plaintext), after grpc_init(), with a
 * connection of its own (not shared with other channels to the target).  Files are read now;
 * a bad one is an error naming it.  Returns owned (grpc_channel_destroy). */
enum dr_status dr_client_channel_create(const char *target, const struct dr_client_opts *opts,
                                        grpc_channel **out, struct dr_error *err);

struct dr_client;

/* opts: NULL for plaintext without metadata. */
enum dr_status dr_client_create(const char *target, const struct dr_client_opts *opts,
                                struct dr_client **out, struct dr_error *err);
void dr_client_destroy(struct dr_client *client); /* NULL is a no-op */

struct dr_client_result {
    int status;        /* gRPC status code */
    char message[512]; /* status details */
    uint8_t *reply;    /* owned (free()); NULL unless status is 0 */
    size_t reply_len;
    char variant[64]; /* the x-variant reply header, "" if absent */
};

/* Sends request (len bytes) to method ("/pkg.Service/Method") with a deadline of
 * timeout_ms and waits for the reply.  DR_OK means the call completed (see result->status
 * for the gRPC outcome); an error means it could not be made at all. */
enum dr_status dr_client_call(struct dr_client *client, const char *method, const uint8_t *request,
                              size_t len, int timeout_ms, struct dr_client_result *result);

#endif /* DR_CLIENT_H */
