/* client.c: blocking unary calls over gRPC C core (see client.h), and the transport options
 * driftrec-cli and driftrec-load share: TLS credentials from PEM files (read here: gRPC takes
 * contents) and the metadata sent with every call.
 * Each call is one batch: send metadata, message and close; receive metadata, message and
 * status; the client plucks its own tag from a private completion queue. */
#include "client.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "token.h"

#define PEM_MAX_BYTES (1 << 20)

struct dr_client {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    struct dr_client_metadata metadata;
};

/* ---- options ---------------------------------------------------------------------------- */

enum dr_status dr_client_opts_apply(struct dr_client_opts *o, const char *flag, const char *value,
                                    int *is_known, struct dr_error *err)
{
    *is_known = 1;
    if (strcmp(flag, "--tls-ca") == 0)
        o->tls_ca_path = value;
    else if (strcmp(flag, "--tls-cert") == 0)
        o->tls_cert_path = value;
    else if (strcmp(flag, "--tls-key") == 0)
        o->tls_key_path = value;
    else if (strcmp(flag, "--tls-server-name") == 0)
        o->tls_server_name = value;
    else if (strcmp(flag, "--token-file") == 0)
        o->token_path = value;
    else if (strcmp(flag, "--metadata") == 0) {
        if (!strchr(value, '=') || value[0] == '=')
            return dr_error_set(err, DR_ERR_INVALID_ARG, "--metadata %s: expected KEY=VALUE",
                                value);
        if (o->n_metadata == DR_CLIENT_MAX_METADATA)
            return dr_error_set(err, DR_ERR_INVALID_ARG, "--metadata: at most %d",
                                DR_CLIENT_MAX_METADATA);
        o->metadata[o->n_metadata++] = value;
    } else
        *is_known = 0;
    return DR_OK;
}

void dr_client_metadata_deinit(struct dr_client_metadata *m)
{
    for (size_t i = 0; i < m->count; i++) {
        grpc_slice_unref(m->md[i].key);
        grpc_slice_unref(m->md[i].value);
    }
    m->count = 0;
}

static void add_metadata(struct dr_client_metadata *m, const char *key, size_t key_len,
                         const char *value)
{
    grpc_metadata *md = &m->md[m->count++];
    memset(md, 0, sizeof *md);
    md->key = grpc_slice_from_copied_buffer(key, key_len);
    md->value = grpc_slice_from_copied_string(value);
}

/* Why gRPC would refuse (or we would garble) this entry, or NULL. */
static const char *metadata_problem(const struct dr_client_opts *opts, const grpc_metadata *md,
                                    size_t key_len)
{
    const char *key = (const char *)GRPC_SLICE_START_PTR(md->key);
    bool is_bin = key_len > 4 && memcmp(key + key_len - 4, "-bin", 4) == 0;
    if (!grpc_header_key_is_legal(md->key))
        return "the key is not a legal gRPC header name (lower case 0-9a-z-_.)";
    if (key_len >= 5 && memcmp(key, "grpc-", 5) == 0)
        return "keys starting with grpc- are gRPC's own";
    if (!is_bin && !grpc_header_nonbin_value_is_legal(md->value))
        return "the value is not printable ASCII";
    if (opts->token_path && key_len == 13 && memcmp(key, "authorization", 13) == 0)
        return "authorization comes from --token-file already";
    return NULL;
}

enum dr_status dr_client_metadata_init(struct dr_client_metadata *m,
                                       const struct dr_client_opts *opts, struct dr_error *err)
{
    m->count = 0;
    if (!opts)
        return DR_OK;
    for (size_t i = 0; i < opts->n_metadata; i++) {
        const char *kv = opts->metadata[i], *eq = strchr(kv, '=');
        if (!eq) {
            dr_client_metadata_deinit(m);
            return dr_error_set(err, DR_ERR_INVALID_ARG, "--metadata %s: expected KEY=VALUE", kv);
        }
        add_metadata(m, kv, (size_t)(eq - kv), eq + 1);
        const grpc_metadata *md = &m->md[m->count - 1];
        size_t key_len = (size_t)(eq - kv);
        const char *why = metadata_problem(opts, md, key_len);
        if (why) {
            dr_client_metadata_deinit(m);
            return dr_error_set(err, DR_ERR_INVALID_ARG, "--metadata %.*s=...: %s", (int)key_len,
                                kv, why);
        }
    }
    if (opts->token_path) {
        char token[DR_TOKEN_MAX_LEN + 1], value[DR_TOKEN_MAX_LEN + 8];
        size_t len = 0;
        enum dr_status st = dr_token_read(opts->token_path, token, sizeof token, &len, NULL, err);
        if (st != DR_OK) {
            dr_client_metadata_deinit(m);
            return st;
        }
        snprintf(value, sizeof value, "Bearer %s", token);
        add_metadata(m, "authorization", 13, value);
        explicit_bzero(token, sizeof token);
        explicit_bzero(value, sizeof value);
    }
    return DR_OK;
}

/* ---- channels ----------------------------------------------------------------------------- */

/* A PEM file's contents, NUL-terminated; returns owned (free()) or NULL with err set. */
static char *read_pem(const char *flag, const char *path, struct dr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dr_error_set(err, DR_ERR_IO, "%s %s: %s", flag, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= PEM_MAX_BYTES) {
        buf = malloc((size_t)st.st_size + 1);
        n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    }
    bool failed = !buf || ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        dr_error_set(err, DR_ERR_IO, "%s %s: not a readable file of at most 1 MiB", flag, path);
        return NULL;
    }
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        free(buf);
        dr_error_set(err, DR_ERR_FORMAT, "%s %s: no PEM block in it", flag, path);
        return NULL;
    }
    return buf;
}

static grpc_channel_credentials *tls_credentials(const struct dr_client_opts *o,
                                                 struct dr_error *err)
{
    if ((o->tls_cert_path != NULL) != (o->tls_key_path != NULL)) {
        dr_error_set(err, DR_ERR_INVALID_ARG, "--tls-cert and --tls-key go together");
        return NULL;
    }
    if (o->tls_cert_path && !o->tls_ca_path) {
        dr_error_set(err, DR_ERR_INVALID_ARG, "--tls-cert needs --tls-ca (TLS)");
        return NULL;
    }
    char *ca = read_pem("--tls-ca", o->tls_ca_path, err), *cert = NULL, *key = NULL;
    if (ca && o->tls_cert_path) {
        cert = read_pem("--tls-cert", o->tls_cert_path, err);
        key = cert ? read_pem("--tls-key", o->tls_key_path, err) : NULL;
    }
    grpc_channel_credentials *creds = NULL;
    if (ca && (!o->tls_cert_path || key)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        /* gRPC copies what it keeps. */
        creds = grpc_ssl_credentials_create(ca, key ? &pair : NULL, NULL, NULL);
        if (!creds)
            dr_error_set(err, DR_ERR_FORMAT, "--tls-ca %s: gRPC refused the credentials",
                         o->tls_ca_path);
    }
    free(ca);
    free(cert);
    if (key)
        explicit_bzero(key, strlen(key));
    free(key);
    return creds;
}

enum dr_status dr_client_channel_create(const char *target, const struct dr_client_opts *opts,
                                        grpc_channel **out, struct dr_error *err)
{
    bool is_tls = opts && opts->tls_ca_path;
    if (opts && !is_tls && (opts->tls_cert_path || opts->tls_key_path || opts->tls_server_name))
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "--tls-cert, --tls-key and --tls-server-name need --tls-ca");
    grpc_channel_credentials *creds =
        is_tls ? tls_credentials(opts, err) : grpc_insecure_credentials_create();
    if (!creds)
        return err ? err->code : DR_ERR_INVALID_ARG;
    grpc_arg args[3];
    args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                         .value.integer = 64 * 1024 * 1024};
    /* Its own connection: channels to one target share one by default (the global subchannel
     * pool), which would make driftrec-load's --connections a single connection. */
    args[1] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1};
    size_t n_args = 2;
    if (is_tls && opts->tls_server_name)
        args[n_args++] = (grpc_arg){.type = GRPC_ARG_STRING,
                                    .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                                    .value.string = (char *)(uintptr_t)opts->tls_server_name};
    grpc_channel_args channel_args = {.num_args = n_args, .args = args};
    grpc_channel *channel = grpc_channel_create(target, creds, &channel_args);
    grpc_channel_credentials_release(creds);
    if (!channel)
        return dr_error_set(err, DR_ERR_IO, "cannot create a channel to %s", target);
    *out = channel;
    return DR_OK;
}

/* ---- the blocking client ------------------------------------------------------------------ */

enum dr_status dr_client_create(const char *target, const struct dr_client_opts *opts,
                                struct dr_client **out, struct dr_error *err)
{
    struct dr_client *c = calloc(1, sizeof *c);
    if (!c)
        return dr_error_set(err, DR_ERR_NOMEM, "client: out of memory");
    grpc_init();
    enum dr_status st = dr_client_metadata_init(&c->metadata, opts, err);
    if (st == DR_OK)
        st = dr_client_channel_create(target, opts, &c->channel, err);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (st == DR_OK && !c->cq)
        st = dr_error_set(err, DR_ERR_NOMEM, "client: cannot create a completion queue");
    if (st != DR_OK) {
        dr_client_destroy(c);
        return st;
    }
    *out = c;
    return DR_OK;
}

void dr_client_destroy(struct dr_client *c)
{
    if (!c)
        return;
    if (c->channel)
        grpc_channel_destroy(c->channel);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(c->cq);
    }
    dr_client_metadata_deinit(&c->metadata);
    grpc_shutdown();
    free(c);
}
static void copy_variant(const grpc_metadata_array *md, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key;
        if (GRPC_SLICE_LENGTH(*k) == 9 && memcmp(GRPC_SLICE_START_PTR(*k), "x-variant", 9) == 0) {
            size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
            n = n < size - 1 ? n : size - 1;
            memcpy(out, GRPC_SLICE_START_PTR(md->metadata[i].value), n);
            out[n] = '\0';
        }
    }
}

enum dr_status dr_client_call(struct dr_client *c, const char *method, const uint8_t *request,
                              size_t len, int timeout_ms, struct dr_client_result *result)
{
    memset(result, 0, sizeof *result);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_slice method_slice = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                               method_slice, NULL, deadline, NULL);
    grpc_slice_unref(method_slice);
    if (!call)
        return DR_ERR_IO;

    grpc_slice body = grpc_slice_from_copied_buffer((const char *)request, len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    grpc_byte_buffer *recv = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->metadata.count;
    ops[0].data.send_initial_metadata.metadata = c->metadata.count ? c->metadata.md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    int tag;
    enum dr_status st = DR_OK;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        st = DR_ERR_INTERNAL;
    } else {
        grpc_completion_queue_pluck(c->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        result->status = (int)status;
        size_t dlen = GRPC_SLICE_LENGTH(details);
        dlen = dlen < sizeof result->message - 1 ? dlen : sizeof result->message - 1;
        memcpy(result->message, GRPC_SLICE_START_PTR(details), dlen);
        result->message[dlen] = '\0';
        copy_variant(&initial_md, result->variant, sizeof result->variant);
        if (status == GRPC_STATUS_OK && recv) {
            grpc_byte_buffer_reader reader;
            if (grpc_byte_buffer_reader_init(&reader, recv)) {
                grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
                grpc_byte_buffer_reader_destroy(&reader);
                result->reply_len = GRPC_SLICE_LENGTH(all);
                result->reply = malloc(result->reply_len ? result->reply_len : 1);
                if (result->reply)
                    memcpy(result->reply, GRPC_SLICE_START_PTR(all), result->reply_len);
                else
                    st = DR_ERR_NOMEM;
                grpc_slice_unref(all);
            }
        }
    }
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    return st;
}
