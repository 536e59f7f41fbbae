/* log.h: the server's structured log: one JSON object per line on stderr (or a sink a test
 * installs), e.g.
 *
 *   {"ts":"2026-11-28T10:00:00.123Z","level":"warn","msg":"request failed",
 *    "method":"Recommend","code":"INTERNAL","user":"3f9c0a1be2d47781","detail":"..."}
 *
 * A line is built field by field in a fixed buffer on the caller's stack (struct dr_log_line):
 * strings are JSON-escaped (invalid UTF-8 becomes U+FFFD), and a line that would pass the
 * buffer drops what does not fit and says so ("cut":true), so every line stays valid JSON.
 *
 * User ids never appear in clear.  dr_log_user writes "user": the first 16 hex digits of
 * HMAC-SHA256(log key, user id) (OpenSSL's libcrypto), so the lines about one user can be
 * found and correlated, across restarts and across replicas that share the key, but the id
 * cannot be read back without the key.  The key is per deployment: a file of 64 hex digits,
 * made (random, mode 0600) when absent (dr_log_key_load_or_create).  The history store and
 * its event log keep real ids; they are files for the service's account alone.
 *
 * Levels (house style): ERROR a human must act, WARN degraded, INFO lifecycle, DEBUG off in
 * production (per-request lines).  The level, the sink and the key are set once at start,
 * before other threads run; building and writing lines is thread-safe.
 */
#ifndef DR_LOG_H
#define DR_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

enum dr_log_level { DR_LOG_ERROR, DR_LOG_WARN, DR_LOG_INFO, DR_LOG_DEBUG };

#define DR_LOG_LINE_BYTES     2048
#define DR_LOG_USER_HASH_LEN  16 /* hex digits: 64 bits of the HMAC */
#define DR_LOG_KEY_MIN_BYTES  16
#define DR_LOG_KEY_MAX_BYTES  64
#define DR_LOG_KEY_FILE_BYTES 32 /* a key this function makes */

/* Lines above level are not written (default DR_LOG_INFO). */
void dr_log_set_level(enum dr_log_level level);
bool dr_log_enabled(enum dr_log_level level);
/* "error", "warn", "info" or "debug"; false for anything else. */
bool dr_log_parse_level(const char *name, enum dr_log_level *out);

/* Where finished lines go (without the newline); NULL restores stderr.  fn may be called
 * from any thread at once. */
typedef void (*dr_log_sink_fn)(void *ctx, const char *line, size_t len);
void dr_log_set_sink(dr_log_sink_fn fn, void *ctx);

/* The key user ids are hashed with (copied; DR_LOG_KEY_MIN_BYTES..DR_LOG_KEY_MAX_BYTES).
 * Until one is set, dr_log_user writes "user":"unkeyed" and never the id. */
enum dr_status dr_log_set_key(const uint8_t *key, size_t len);

/* Reads the key file at path (hex digits, 32..128 of them, surrounding whitespace allowed),
 * or, when there is none, makes one: DR_LOG_KEY_FILE_BYTES random bytes written as hex with
 * mode 0600.  A key file that group or others may read is refused (DR_ERR_IO, the message
 * says to chmod it).  key: DR_LOG_KEY_MAX_BYTES bytes of room; *len receives the length;
 * *is_created (may be NULL): whether the file was made now. */
enum dr_status dr_log_key_load_or_create(const char *path, uint8_t *key, size_t *len,
                                         bool *is_created, struct dr_error *err);

/* The keyed hash of a user id as DR_LOG_USER_HASH_LEN lowercase hex digits and a NUL. */
void dr_log_user_hash(const char *user_id, size_t len, char out[DR_LOG_USER_HASH_LEN + 1]);

/* One line under construction.  If its level is off, every call on it does nothing. */
struct dr_log_line {
    bool is_on, is_cut;
    size_t len;
    char buf[DR_LOG_LINE_BYTES];
};

void dr_log_begin(struct dr_log_line *line, enum dr_log_level level, const char *msg);
void dr_log_str(struct dr_log_line *line, const char *key, const char *value);
void dr_log_strn(struct dr_log_line *line, const char *key, const char *value, size_t len);
void dr_log_int(struct dr_log_line *line, const char *key, long long value);
void dr_log_double(struct dr_log_line *line, const char *key, double value);
/* "user": the keyed hash of user_id (never the id itself). */
void dr_log_user(struct dr_log_line *line, const char *user_id, size_t len);
/* Closes the line and writes it. */
void dr_log_end(struct dr_log_line *line);

/* A line with no fields but the message. */
void dr_log(enum dr_log_level level, const char *msg);

/* At most `per_second` lines a second from one source (house style: per-request failures go
 * through a rate-limited reporter).  dr_log_rate_allow says whether a line may be written now
 * and, when it may, how many were held back since the last one that was (to log as
 * "suppressed").  Zero-initialise; any thread. */
struct dr_log_rate {
    unsigned per_second;
    atomic_uint_fast64_t second, n_in_second, n_suppressed;
};
bool dr_log_rate_allow(struct dr_log_rate *rate, uint64_t *n_suppressed);

#endif /* DR_LOG_H */
