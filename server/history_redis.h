/* history_redis.h: the Redis backend of the history store (history.h), for history.c only.
 * Each function has the meaning and the contract of its dr_history_* namesake. */
#ifndef DR_HISTORY_REDIS_H
#define DR_HISTORY_REDIS_H

#include "history.h"

struct dr__history_redis;

enum dr_status dr__history_redis_open(const char *url, const struct dr_history_opts *opts,
                                      struct dr__history_redis **out, struct dr_error *err);
void dr__history_redis_close(struct dr__history_redis *r);
void dr__history_redis_get_info(const struct dr__history_redis *r, struct dr_history_info *out);
enum dr_status dr__history_redis_write(struct dr__history_redis *r, const struct dr_event *events,
                                       size_t n, size_t *accepted, size_t *duplicates,
                                       bool *is_stored, struct dr_error *err);
enum dr_status dr__history_redis_log_impressions(struct dr__history_redis *r,
                                                 const struct dr_impression *imps, size_t n,
                                                 struct dr_error *err);
enum dr_status dr__history_redis_read_user(struct dr__history_redis *r, const char *user_id,
                                           size_t user_id_len, size_t max_events,
                                           dr_history_visit_fn fn, void *ctx, size_t *n_visited);
enum dr_status dr__history_redis_read_log(struct dr__history_redis *r, dr_history_log_fn fn,
                                          void *ctx);

/* Shared with history.c: both backends store the same bytes. */

/* Packs e into a malloc'd buffer (returns owned, free()); NULL when out of memory. */
uint8_t *dr__history_pack_event(const struct dr_event *e, size_t *len);
/* A log record's value (kind byte, [be16 n, version], packed event) as rec; borrows p. */
void dr__history_parse_log_record(uint64_t seq, const uint8_t *p, size_t len,
                                  struct dr_history_log_record *rec);
/* The key suffix that orders a user's events: be64(ts with the sign bit flipped). */
void dr__history_put_ts_key(uint8_t out[8], int64_t ts);

#endif /* DR_HISTORY_REDIS_H */
