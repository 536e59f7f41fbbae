/* client.c: blocking unary calls over gRPC C core (see client.h).
 * Each call is one batch: send metadata, message and close; receive metadata, message and
 * status; the client plucks its own tag from a private completion queue. */
#include "client.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dr_client {
    grpc_channel *channel;
    grpc_completion_queue *cq;
};

enum dr_status dr_client_create(const char *target, struct dr_client **out, struct dr_error *err)
{
    struct dr_client *c = calloc(1, sizeof *c);
    if (!c)
        return dr_error_set(err, DR_ERR_NOMEM, "client: out of memory");
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg arg = {.type = GRPC_ARG_INTEGER,
                    .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                    .value.integer = 64 * 1024 * 1024};
    grpc_channel_args args = {.num_args = 1, .args = &arg};
    c->channel = grpc_channel_create(target, creds, &args);
    grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (!c->channel || !c->cq) {
        dr_client_destroy(c);
        return dr_error_set(err, DR_ERR_IO, "client: cannot create a channel to %s", target);
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
