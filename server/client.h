/* client.h: a small blocking unary gRPC client over the C core, for driftrec-cli and tests.
 *
 * One channel per struct dr_client; calls run one at a time on the client's own
 * completion queue (pluck).  Not thread-safe: one client per thread.
 */
#ifndef DR_CLIENT_H
#define DR_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct dr_client;

enum dr_status dr_client_create(const char *target, struct dr_client **out, struct dr_error *err);
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
