/* auth.c: TLS credentials and bearer-token checks (auth.h).
 *
 * Load: each PEM file is read whole (at most 1 MiB) and parsed with OpenSSL before gRPC sees
 * it; gRPC keeps its own copies of the contents, ours are wiped and freed with the struct.
 * Tokens: only SHA-256 digests stay in memory.  Check (pollers, every call): find the one
 * "authorization" entry, take what follows "Bearer ", hash it, CRYPTO_memcmp the digests.
 */
#include "auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"
#include "token.h"

#define PEM_MAX_BYTES (1 << 20)

struct dr_auth {
    char *cert_pem, *key_pem, *client_ca_pem; /* NULL without TLS (client_ca: without mTLS) */
    size_t key_pem_len;
    bool has_token, has_admin_token;
    uint8_t token_digest[SHA256_DIGEST_LENGTH];
    uint8_t admin_token_digest[SHA256_DIGEST_LENGTH];
};

static bool is_set(const char *path)
{
    return path && path[0];
}

/* Warns (once, at start) about a secret file that group or others may read. */
static void warn_if_shared(const char *what, const char *path, unsigned mode)
{
    if (!(mode & 077))
        return;
    char msg[160];
    snprintf(msg, sizeof msg, "%s may be read by group or others (mode %04o); chmod 600 it", what,
             mode);
    struct dr_log_line line;
    dr_log_begin(&line, DR_LOG_WARN, msg);
    dr_log_str(&line, "path", path);
    dr_log_end(&line);
}

/* Reads a PEM file whole, NUL-terminated; returns owned (free()) or NULL with err set. */
static char *read_pem(const char *what, const char *flag, const char *path, size_t *len,
                      unsigned *mode, struct dr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dr_error_set(err, DR_ERR_IO, "%s %s (%s): %s", what, path, flag, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX_BYTES) {
        fclose(f);
        dr_error_set(err, DR_ERR_IO, "%s %s (%s): not a regular file of at most 1 MiB", what, path,
                     flag);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    bool failed = !buf || ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        dr_error_set(err, DR_ERR_IO, "%s %s (%s): cannot read it", what, path, flag);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    if (mode)
        *mode = (unsigned)(st.st_mode & 07777);
    return buf;
}

/* The first certificate in pem, or NULL. */
static X509 *parse_cert(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    return cert;
}

/* No passphrase: an encrypted key fails to load instead of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

static EVP_PKEY *parse_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    return key;
}

static enum dr_status load_tls(struct dr_auth *a, const struct dr_auth_opts *opts,
                               struct dr_error *err)
{
    size_t cert_len = 0, ca_len = 0;
    unsigned key_mode = 0;
    a->cert_pem =
        read_pem("TLS certificate", "--tls-cert", opts->tls_cert_path, &cert_len, NULL, err);
    if (!a->cert_pem)
        return err ? err->code : DR_ERR_IO;
    a->key_pem =
        read_pem("TLS key", "--tls-key", opts->tls_key_path, &a->key_pem_len, &key_mode, err);
    if (!a->key_pem)
        return err ? err->code : DR_ERR_IO;
    X509 *cert = parse_cert(a->cert_pem, cert_len);
    if (!cert)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "TLS certificate %s (--tls-cert): no PEM certificate in it",
                            opts->tls_cert_path);
    EVP_PKEY *key = parse_key(a->key_pem, a->key_pem_len);
    enum dr_status st = DR_OK;
    if (!key)
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "TLS key %s (--tls-key): no unencrypted PEM private key in it",
                          opts->tls_key_path);
    else if (X509_check_private_key(cert, key) != 1)
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "TLS key %s (--tls-key) does not match the certificate in %s",
                          opts->tls_key_path, opts->tls_cert_path);
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    if (st != DR_OK)
        return st;
    warn_if_shared("the TLS key", opts->tls_key_path, key_mode);
    if (is_set(opts->tls_client_ca_path)) {
        a->client_ca_pem = read_pem("TLS client CA", "--tls-client-ca", opts->tls_client_ca_path,
                                    &ca_len, NULL, err);
        if (!a->client_ca_pem)
            return err ? err->code : DR_ERR_IO;
        X509 *ca = parse_cert(a->client_ca_pem, ca_len);
        if (!ca)
            return dr_error_set(err, DR_ERR_FORMAT,
                                "TLS client CA %s (--tls-client-ca): no PEM certificate in it",
                                opts->tls_client_ca_path);
        X509_free(ca);
    }
    return DR_OK;
}

static enum dr_status load_token(const char *flag, const char *path, uint8_t *digest,
                                 struct dr_error *err)
{
    char token[DR_TOKEN_MAX_LEN + 1];
    size_t len = 0;
    unsigned mode = 0;
    enum dr_status st = dr_token_read(path, token, sizeof token, &len, &mode, err);
    if (st == DR_OK && len < DR_TOKEN_MIN_LEN)
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "token file %s (%s): shorter than %d characters; make one with "
                          "'openssl rand -hex 32'",
                          path, flag, DR_TOKEN_MIN_LEN);
    if (st == DR_OK) {
        SHA256((const uint8_t *)token, len, digest);
        warn_if_shared("the token file", path, mode);
    } else if (err && !strstr(err->msg, flag)) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, " (%s)", flag);
    }
    explicit_bzero(token, sizeof token);
    return st;
}

static void free_secret(char *s, size_t len)
{
    if (s)
        explicit_bzero(s, len);
    free(s);
}

void dr_auth_destroy(struct dr_auth *a)
{
    if (!a)
        return;
    free(a->cert_pem);
    free_secret(a->key_pem, a->key_pem_len);
    free(a->client_ca_pem);
    explicit_bzero(a, sizeof *a);
    free(a);
}

enum dr_status dr_auth_load(const struct dr_auth_opts *opts, struct dr_auth **out,
                            struct dr_error *err)
{
    bool has_cert = is_set(opts->tls_cert_path), has_key = is_set(opts->tls_key_path);
    if (has_cert != has_key)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "--tls-cert and --tls-key go together: %s is missing",
                            has_cert ? "--tls-key" : "--tls-cert");
    if (is_set(opts->tls_client_ca_path) && !has_cert)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "--tls-client-ca needs TLS: --tls-cert and --tls-key");
    struct dr_auth *a = calloc(1, sizeof *a);
    if (!a)
        return dr_error_set(err, DR_ERR_NOMEM, "auth: out of memory");
    enum dr_status st = DR_OK;
    if (has_cert)
        st = load_tls(a, opts, err);
    if (st == DR_OK && is_set(opts->token_path)) {
        st = load_token("--token-file", opts->token_path, a->token_digest, err);
        a->has_token = st == DR_OK;
    }
    if (st == DR_OK && is_set(opts->admin_token_path)) {
        st = load_token("--admin-token-file", opts->admin_token_path, a->admin_token_digest, err);
        a->has_admin_token = st == DR_OK;
    }
    /* One token for both would let every gateway run the operators' calls. */
    if (st == DR_OK && a->has_token && a->has_admin_token &&
        CRYPTO_memcmp(a->token_digest, a->admin_token_digest, sizeof a->token_digest) == 0)
        st = dr_error_set(err, DR_ERR_INVALID_ARG,
                          "--admin-token-file %s holds the same token as --token-file %s: "
                          "the admin token must differ",
                          opts->admin_token_path, opts->token_path);
    if (st != DR_OK) {
        dr_auth_destroy(a);
        return st;
    }
    if (!has_cert && (a->has_token || a->has_admin_token))
        dr_log(DR_LOG_WARN, "bearer tokens on a plaintext port: anyone on the network path can "
                            "read them; serve TLS (--tls-cert, --tls-key)");
    *out = a;
    return DR_OK;
}

grpc_server_credentials *dr_auth_server_credentials(const struct dr_auth *a)
{
    if (!a || !a->cert_pem)
        return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair = {.private_key = a->key_pem, .cert_chain = a->cert_pem};
    return grpc_ssl_server_credentials_create_ex(
        a->client_ca_pem, &pair, 1,
        a->client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                         : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
}

const char *dr_auth_transport_name(const struct dr_auth *a)
{
    return !a || !a->cert_pem ? "plaintext" : a->client_ca_pem ? "mtls" : "tls";
}

bool dr_auth_has_token(const struct dr_auth *a)
{
    return a && a->has_token;
}

bool dr_auth_has_admin(const struct dr_auth *a)
{
    return a && a->has_admin_token;
}

static bool has_prefix(const char *path, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(path, prefix, n) == 0;
}

enum dr_auth_scope dr_auth_scope_of(const char *path, size_t len)
{
    if (has_prefix(path, len, "/grpc.health.v1.Health/"))
        return DR_AUTH_SCOPE_OPEN;
    if (has_prefix(path, len, "/driftrec.v1.Admin/"))
        return DR_AUTH_SCOPE_ADMIN;
    return DR_AUTH_SCOPE_RECOMMENDER;
}

static bool slice_is(grpc_slice s, const char *text)
{
    size_t n = strlen(text);
    return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), text, n) == 0;
}

grpc_status_code dr_auth_check(const struct dr_auth *a, enum dr_auth_scope scope,
                               const grpc_metadata_array *md, const char **msg)
{
    *msg = NULL;
    const uint8_t *expected = NULL;
    if (scope == DR_AUTH_SCOPE_ADMIN) {
        if (!dr_auth_has_admin(a)) {
            *msg = "the Admin service is disabled on this instance (no --admin-token-file)";
            return GRPC_STATUS_UNIMPLEMENTED;
        }
        expected = a->admin_token_digest;
    } else if (scope == DR_AUTH_SCOPE_RECOMMENDER && dr_auth_has_token(a)) {
        expected = a->token_digest;
    }
    if (!expected)
        return GRPC_STATUS_OK;
    const grpc_slice *value = NULL;
    for (size_t i = 0; i < md->count; i++) {
        if (!slice_is(md->metadata[i].key, "authorization"))
            continue;
        if (value) {
            *msg = "several authorization metadata entries; send one";
            return GRPC_STATUS_UNAUTHENTICATED;
        }
        value = &md->metadata[i].value;
    }
    if (!value) {
        *msg = scope == DR_AUTH_SCOPE_ADMIN
                   ? "missing credentials: Admin calls need 'authorization: Bearer <admin token>' "
                     "metadata"
                   : "missing credentials: this server needs 'authorization: Bearer <token>' "
                     "metadata";
        return GRPC_STATUS_UNAUTHENTICATED;
    }
    const char *text = (const char *)GRPC_SLICE_START_PTR(*value);
    size_t len = GRPC_SLICE_LENGTH(*value);
    if (len < 7 || strncasecmp(text, "Bearer ", 7) != 0) { /* the scheme is case-insensitive */
        *msg = "the authorization metadata is not 'Bearer <token>'";
        return GRPC_STATUS_UNAUTHENTICATED;
    }
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)text + 7, len - 7, digest);
    if (CRYPTO_memcmp(digest, expected, sizeof digest) != 0) {
        *msg = scope == DR_AUTH_SCOPE_ADMIN ? "invalid admin token" : "invalid token";
        return GRPC_STATUS_UNAUTHENTICATED;
    }
    return GRPC_STATUS_OK;
}
