/* validate.c: the field checks behind every INVALID_ARGUMENT the server returns. */
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
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

static bool validate_inline_events(Driftrec__V1__Event **events, size_t n,
                                   const ProtobufCBinaryData *user, char *msg, size_t size)
{
    if (n > DR_MAX_EVENTS_PER_REQUEST) {
        snprintf(msg, size, "recent_events: %zu events, at most %d allowed", n,
                 DR_MAX_EVENTS_PER_REQUEST);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char name[40];
        struct dr_event e;
        snprintf(name, sizeof name, "recent_events[%zu]", i);
        if (!dr_validate_event(events[i], name, user, &e, msg, size))
            return false;
        if (events[i]->has_user_id && events[i]->user_id.len &&
            (events[i]->user_id.len != user->len ||
             memcmp(events[i]->user_id.data, user->data, user->len) != 0)) {
            snprintf(msg, size, "%s.user_id: differs from the request's user_id", name);
            return false;
        }
    }
    return true;
}

bool dr_validate_request(const ProtobufCMessage *msg_in, char *msg, size_t size)
{
    const ProtobufCMessageDescriptor *d = msg_in->descriptor;
    if (d == &driftrec__v1__recommend_request__descriptor) {
        const Driftrec__V1__RecommendRequest *r = (const void *)msg_in;
        if (!dr_validate_string(&r->user_id, r->has_user_id, "user_id", DR_MAX_ID_BYTES, true, msg,
                                size) ||
            !dr_validate_string(&r->query_text, r->has_query_text, "query_text", DR_MAX_TEXT_BYTES,
                                false, msg, size) ||
            !dr_validate_string(&r->category, r->has_category, "category", DR_MAX_TAG_BYTES, false,
                                msg, size) ||
            !dr_validate_string(&r->model, r->has_model, "model", DR_MAX_TAG_BYTES, false, msg,
                                size) ||
            !dr_validate_string(&r->request_id, r->has_request_id, "request_id", DR_MAX_TAG_BYTES,
                                false, msg, size))
            return false;
        if (r->has_k && (r->k < 1 || r->k > DR_MAX_K)) {
            snprintf(msg, size, "k: %d is not in 1..%d", r->k, DR_MAX_K);
            return false;
        }
        if (r->has_exclude && (r->exclude < DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_HISTORY ||
                               r->exclude > DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_NONE)) {
            snprintf(msg, size, "exclude: unknown mode %d", (int)r->exclude);
            return false;
        }
        return validate_inline_events(r->recent_events, r->n_recent_events, &r->user_id, msg, size);
    }
    if (d == &driftrec__v1__rank_request__descriptor) {
        const Driftrec__V1__RankRequest *r = (const void *)msg_in;
        if (!dr_validate_string(&r->user_id, r->has_user_id, "user_id", DR_MAX_ID_BYTES, true, msg,
                                size) ||
            !dr_validate_string(&r->model, r->has_model, "model", DR_MAX_TAG_BYTES, false, msg,
                                size) ||
            !dr_validate_string(&r->request_id, r->has_request_id, "request_id", DR_MAX_TAG_BYTES,
                                false, msg, size))
            return false;
        if (r->n_candidate_item_ids == 0 || r->n_candidate_item_ids > DR_MAX_CANDIDATES) {
            snprintf(msg, size, "candidate_item_ids: %zu given, 1..%d allowed",
                     r->n_candidate_item_ids, DR_MAX_CANDIDATES);
            return false;
        }
        for (size_t i = 0; i < r->n_candidate_item_ids; i++) {
            char name[48];
            snprintf(name, sizeof name, "candidate_item_ids[%zu]", i);
            if (!dr_validate_string(&r->candidate_item_ids[i], true, name, DR_MAX_ID_BYTES, true,
                                    msg, size))
                return false;
        }
        return validate_inline_events(r->recent_events, r->n_recent_events, &r->user_id, msg, size);
    }
    if (d == &driftrec__v1__embed_request__descriptor) {
        const Driftrec__V1__EmbedRequest *r = (const void *)msg_in;
        if (r->n_texts == 0 || r->n_texts > 256) {
            snprintf(msg, size, "texts: %zu given, 1..256 allowed", r->n_texts);
            return false;
        }
        for (size_t i = 0; i < r->n_texts; i++) {
            char name[32];
            snprintf(name, sizeof name, "texts[%zu]", i);
            if (!dr_validate_string(&r->texts[i], true, name, DR_MAX_TEXT_BYTES, false, msg, size))
                return false;
        }
        return dr_validate_string(&r->model, r->has_model, "model", DR_MAX_TAG_BYTES, false, msg,
                                  size);
    }
    if (d == &driftrec__v1__ingest_request__descriptor) {
        const Driftrec__V1__IngestRequest *r = (const void *)msg_in;
        if (r->n_events == 0 || r->n_events > DR_MAX_EVENTS_PER_REQUEST) {
            snprintf(msg, size, "events: %zu given, 1..%d allowed", r->n_events,
                     DR_MAX_EVENTS_PER_REQUEST);
            return false;
        }
        return dr_validate_string(&r->request_id, r->has_request_id, "request_id", DR_MAX_TAG_BYTES,
                                  false, msg, size);
    }
    if (d == &driftrec__v1__get_model_request__descriptor) {
        const Driftrec__V1__GetModelRequest *r = (const void *)msg_in;
        return dr_validate_string(&r->model, r->has_model, "model", DR_MAX_TAG_BYTES, false, msg,
                                  size);
    }
    return true; /* health and other messages carry nothing to check here */
}
