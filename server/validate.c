/* validate.c: the field checks behind every INVALID_ARGUMENT the server returns. */
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <utf8proc.h>

bool dr_validate_string(const ProtobufCBinaryData *value, bool has_value, const char *name,
                        size_t max_len, bool required, char *msg, size_t msg_size)
{
    size_t len = has_value ? value->len : 0;
    if (required && len == 0) {
        snprintf(msg, msg_size, "%s: required, must not be empty", name);
        return false;
    }
    if (len > max_len) {
        snprintf(msg, msg_size, "%s: %zu bytes, at most %zu allowed", name, len, max_len);
        return false;
    }
    size_t pos = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate(value->data + pos, (utf8proc_ssize_t)(len - pos), &cp);
        if (n < 0) {
            snprintf(msg, msg_size, "%s: invalid UTF-8 at byte %zu", name, pos);
            return false;
        }
        if (cp == 0) {
            snprintf(msg, msg_size, "%s: contains a NUL character at byte %zu", name, pos);
            return false;
        }
        pos += (size_t)n;
    }
    return true;
}

bool dr_validate_event(const Driftrec__V1__Event *m, const char *name,
                       const ProtobufCBinaryData *default_user_id, struct dr_event *out, char *msg,
                       size_t msg_size)
{
    char field[96];
    const ProtobufCBinaryData *user =
        m->has_user_id && m->user_id.len ? &m->user_id : default_user_id;
#define CHECK_STR(value, has, fname, max, req)                                                     \
    do {                                                                                           \
        snprintf(field, sizeof field, "%s.%s", name, fname);                                       \
        if (!dr_validate_string(value, has, field, max, req, msg, msg_size))                       \
            return false;                                                                          \
    } while (0)
    CHECK_STR(user, user != NULL, "user_id", DR_MAX_ID_BYTES, true);
    CHECK_STR(&m->item_id, m->has_item_id, "item_id", DR_MAX_ID_BYTES, true);
    CHECK_STR(&m->text, m->has_text, "text", DR_MAX_TEXT_BYTES, false);
    CHECK_STR(&m->event_id, m->has_event_id, "event_id", DR_MAX_TAG_BYTES, false);
    CHECK_STR(&m->request_id, m->has_request_id, "request_id", DR_MAX_TAG_BYTES, false);
    CHECK_STR(&m->variant, m->has_variant, "variant", DR_MAX_TAG_BYTES, false);
#undef CHECK_STR
    if (!m->has_ts || m->ts < 0 || m->ts > DR_MAX_TS) {
        snprintf(msg, msg_size, "%s.ts: %s", name,
                 m->has_ts ? "out of range (Unix seconds, 0 to 4102444800)" : "required");
        return false;
    }
    if (!m->has_event_type || m->event_type < DRIFTREC__V1__EVENT_TYPE__IMPRESSION ||
        m->event_type > DRIFTREC__V1__EVENT_TYPE__REVIEW) {
        snprintf(msg, msg_size, "%s.event_type: required, one of IMPRESSION..REVIEW", name);
        return false;
    }
    if (m->has_dwell_s && !(isfinite(m->dwell_s) && m->dwell_s >= 0 && m->dwell_s <= 604800)) {
        snprintf(msg, msg_size, "%s.dwell_s: %g is not in [0, 604800] seconds", name, m->dwell_s);
        return false;
    }
    if (m->has_amount && !(isfinite(m->amount) && m->amount >= 0 && m->amount <= 1e9)) {
        snprintf(msg, msg_size, "%s.amount: %g is not in [0, 1e9]", name, m->amount);
        return false;
    }
    if (m->has_rating && (m->rating < 1 || m->rating > 5)) {
        snprintf(msg, msg_size, "%s.rating: %d is not in 1..5", name, m->rating);
        return false;
    }
    if (m->has_position && (m->position < 0 || m->position > 100000)) {
        snprintf(msg, msg_size, "%s.position: %d is not in 0..100000", name, m->position);
        return false;
    }
    *out = (struct dr_event){
        .user_id = (const char *)user->data,
        .user_id_len = user->len,
        .item_id = (const char *)m->item_id.data,
        .item_id_len = m->item_id.len,
        .ts = m->ts,
        .event_type = (int)m->event_type,
        .dwell_s = m->dwell_s,
        .amount = m->amount,
        .rating = m->rating,
        .position = m->position,
        .has_dwell_s = m->has_dwell_s,
        .has_amount = m->has_amount,
        .has_rating = m->has_rating,
        .has_position = m->has_position,
        .text = m->has_text ? (const char *)m->text.data : NULL,
        .text_len = m->has_text ? m->text.len : 0,
        .event_id = m->has_event_id ? (const char *)m->event_id.data : NULL,
        .event_id_len = m->has_event_id ? m->event_id.len : 0,
        .request_id = m->has_request_id ? (const char *)m->request_id.data : NULL,
        .request_id_len = m->has_request_id ? m->request_id.len : 0,
        .variant = m->has_variant ? (const char *)m->variant.data : NULL,
        .variant_len = m->has_variant ? m->variant.len : 0,
    };
    return true;
}
