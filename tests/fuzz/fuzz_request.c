/* fuzz_request.c: request bytes through protobuf-c decoding and the server's validation.
 * The first byte picks the method (Recommend, Rank, Embed, Ingest, GetModel); the rest is
 * the message.  Every decodable message is validated, and Ingest's events one by one, as
 * the server does; nothing may crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "driftrec.pb-c.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ProtobufCMessageDescriptor *const descriptors[] = {
        &driftrec__v1__recommend_request__descriptor, &driftrec__v1__rank_request__descriptor,
        &driftrec__v1__embed_request__descriptor,     &driftrec__v1__ingest_request__descriptor,
        &driftrec__v1__get_model_request__descriptor,
    };
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = descriptors[data[0] % 5];
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    char msg[256];
    if (dr_validate_request(m, msg, sizeof msg) && d == &driftrec__v1__ingest_request__descriptor) {
        const Driftrec__V1__IngestRequest *r = (const Driftrec__V1__IngestRequest *)m;
        for (size_t i = 0; i < r->n_events; i++) {
            struct dr_event e;
            dr_validate_event(r->events[i], "events[i]", NULL, &e, msg, sizeof msg);
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
