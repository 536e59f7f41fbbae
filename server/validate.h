/* validate.h: limits and checks for every request field, with messages that name the field.
 *
 * Strings arrive as bytes (the server's protobuf-c code is generated with string fields
 * read as bytes, the same wire format) so embedded NULs and invalid UTF-8 are seen, not
 * silently cut: both are rejected.
 */
#ifndef DR_VALIDATE_H
#define DR_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "driftrec.pb-c.h"
#include "history.h"

#define DR_MAX_ID_BYTES           256         /* user_id, item_id */
#define DR_MAX_TAG_BYTES          128         /* event_id, request_id, variant, model, category */
#define DR_MAX_TEXT_BYTES         (16 * 1024) /* review and query text */
#define DR_MAX_EVENTS_PER_REQUEST 1000        /* Ingest batch, inline events */
#define DR_MAX_K                  1000
#define DR_MAX_CANDIDATES         5000
#define DR_MAX_TS                 4102444800LL /* 2100-01-01 */

/* Checks a string field: at most max_len bytes, valid UTF-8, no NUL; required fields must
 * be non-empty.  On failure writes "<name>: <why>" into msg. */
bool dr_validate_string(const ProtobufCBinaryData *value, bool has_value, const char *name,
                        size_t max_len, bool required, char *msg, size_t msg_size);

/* Checks one event (name is its position, e.g. "events[3]") and fills out with borrowed
 * pointers into m.  default_user_id (may be NULL) fills a missing user_id. */
bool dr_validate_event(const Driftrec__V1__Event *m, const char *name,
                       const ProtobufCBinaryData *default_user_id, struct dr_event *out, char *msg,
                       size_t msg_size);

/* Checks a decoded request message (Recommend, Rank, Embed, Ingest, GetModel requests) against
 * the limits above: field sizes, k, candidate counts, inline events.  Ingest's events are
 * checked one by one with dr_validate_event where they are stored. */
bool dr_validate_request(const ProtobufCMessage *request, char *msg, size_t msg_size);

#endif /* DR_VALIDATE_H */
