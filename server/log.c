/* log.c: JSON log lines, the keyed user-id hash and the key file (see log.h).
 *
 * The level, the sink and the key are globals set at start, before the server's threads
 * exist, and only read afterwards; the level is an atomic so a test may change it between
 * lines.  A line is written with one write(2) (lines are shorter than PIPE_BUF), so lines
 * from different threads never interleave.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Room kept at the end of every line for ,"cut":true} and the newline. */
#define LINE_RESERVE 16

static atomic_int g_level = DR_LOG_INFO;
static dr_log_sink_fn g_sink;
static void *g_sink_ctx;
static uint8_t g_key[DR_LOG_KEY_MAX_BYTES];
static size_t g_key_len;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void dr_log_set_level(enum dr_log_level level)
{
    atomic_store_explicit(&g_level, (int)level, memory_order_relaxed);
}

bool dr_log_enabled(enum dr_log_level level)
{
    return (int)level <= atomic_load_explicit(&g_level, memory_order_relaxed);
}

bool dr_log_parse_level(const char *name, enum dr_log_level *out)
{
    for (int i = 0; i <= DR_LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum dr_log_level)i;
            return true;
        }
    }
    return false;
}

void dr_log_set_sink(dr_log_sink_fn fn, void *ctx)
{
    g_sink = fn;
    g_sink_ctx = ctx;
}

enum dr_status dr_log_set_key(const uint8_t *key, size_t len)
{
    if (len < DR_LOG_KEY_MIN_BYTES || len > DR_LOG_KEY_MAX_BYTES)
        return DR_ERR_INVALID_ARG;
    memcpy(g_key, key, len);
    g_key_len = len;
    return DR_OK;
}

/* ---- the key file ------------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static enum dr_status read_key(int fd, const char *path, uint8_t *key, size_t *len,
                               struct dr_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dr_error_set(err, DR_ERR_IO, "log key %s: %s", path, strerror(errno));
    /* The key is what keeps the hashes from being reversed by hashing guessed ids. */
    if (st.st_mode & 077)
        return dr_error_set(err, DR_ERR_IO,
                            "log key %s: group or others may read it (mode %04o); chmod 600 it",
                            path, (unsigned)(st.st_mode & 07777));
    char text[4 * DR_LOG_KEY_MAX_BYTES];
    ssize_t n = read(fd, text, sizeof text);
    if (n < 0)
        return dr_error_set(err, DR_ERR_IO, "log key %s: %s", path, strerror(errno));
    size_t begin = 0, end = (size_t)n;
    while (begin < end && strchr(" \t\r\n", text[begin]))
        begin++;
    while (end > begin && strchr(" \t\r\n", text[end - 1]))
        end--;
    size_t digits = end - begin;
    if ((size_t)n == sizeof text || digits % 2 || digits < 2 * DR_LOG_KEY_MIN_BYTES ||
        digits > 2 * DR_LOG_KEY_MAX_BYTES)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "log key %s: expected %d to %d hex digits (%d to %d bytes)", path,
                            2 * DR_LOG_KEY_MIN_BYTES, 2 * DR_LOG_KEY_MAX_BYTES,
                            DR_LOG_KEY_MIN_BYTES, DR_LOG_KEY_MAX_BYTES);
    for (size_t i = 0; i < digits / 2; i++) {
        int hi = hex_value(text[begin + 2 * i]), lo = hex_value(text[begin + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return dr_error_set(err, DR_ERR_FORMAT, "log key %s: not a hex digit at byte %zu", path,
                                begin + 2 * i + (hi < 0 ? 0 : 1));
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = digits / 2;
    return DR_OK;
}

/* Makes the key file; *exists: another process made it first (nothing done). */
static enum dr_status create_key(const char *path, uint8_t *key, size_t *len, bool *exists,
                                 struct dr_error *err)
{
    uint8_t fresh[DR_LOG_KEY_FILE_BYTES];
    if (getrandom(fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
        return dr_error_set(err, DR_ERR_IO, "log key %s: no random bytes: %s", path,
                            strerror(errno));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        *exists = errno == EEXIST;
        return dr_error_set(err, DR_ERR_IO, "log key %s: cannot create it: %s", path,
                            strerror(errno));
    }
    char text[2 * DR_LOG_KEY_FILE_BYTES + 1];
    for (size_t i = 0; i < sizeof fresh; i++)
        snprintf(text + 2 * i, 3, "%02x", fresh[i]);
    text[2 * sizeof fresh] = '\n';
    bool is_ok = write(fd, text, sizeof text) == (ssize_t)sizeof text && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!is_ok) {
        unlink(path);
        return dr_error_set(err, DR_ERR_IO, "log key %s: cannot write it: %s", path,
                            strerror(saved));
    }
    memcpy(key, fresh, sizeof fresh);
    *len = sizeof fresh;
    return DR_OK;
}

enum dr_status dr_log_key_load_or_create(const char *path, uint8_t *key, size_t *len,
                                         bool *is_created, struct dr_error *err)
{
    if (is_created)
        *is_created = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            enum dr_status st = read_key(fd, path, key, len, err);
            close(fd);
            return st;
        }
        if (errno != ENOENT)
            return dr_error_set(err, DR_ERR_IO, "log key %s: %s", path, strerror(errno));
        bool exists = false;
        enum dr_status st = create_key(path, key, len, &exists, err);
        if (!exists) {
            if (st == DR_OK && is_created)
                *is_created = true;
            return st;
        }
    }
    return dr_error_set(err, DR_ERR_IO, "log key %s: made and removed by another process", path);
}

void dr_log_user_hash(const char *user_id, size_t len, char out[DR_LOG_USER_HASH_LEN + 1])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (g_key_len == 0 ||
        !HMAC(EVP_sha256(), g_key, (int)g_key_len, (const uint8_t *)user_id, len, mac, &mac_len)) {
        snprintf(out, DR_LOG_USER_HASH_LEN + 1, "unkeyed");
        return;
    }
    for (size_t i = 0; i < DR_LOG_USER_HASH_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* ---- lines ------------------------------------------------------------------------------- */

/* Appends raw bytes if they fit before the reserve; false (nothing written) if not. */
static bool put_raw(struct dr_log_line *line, const char *s, size_t n)
{
    if (line->len + n + LINE_RESERVE > sizeof line->buf)
        return false;
    memcpy(line->buf + line->len, s, n);
    line->len += n;
    return true;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t utf8_length(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

/* Appends s as the inside of a JSON string, as much as fits (whole characters only); false
 * if it was cut. */
static bool put_escaped(struct dr_log_line *line, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        char esc[8];
        const char *piece = esc;
        size_t piece_len, used = 1;
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            piece_len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            piece_len = 6;
        } else if (c < 0x80) {
            piece = (const char *)p + i;
            piece_len = 1;
        } else if ((used = utf8_length(p + i, n - i)) > 0) {
            piece = (const char *)p + i;
            piece_len = used;
        } else {
            piece = "\\ufffd"; /* not UTF-8: the line stays valid JSON */
            piece_len = 6;
            used = 1;
        }
        /* + 1: the closing quote always fits. */
        if (line->len + piece_len + 1 + LINE_RESERVE > sizeof line->buf)
            return false;
        memcpy(line->buf + line->len, piece, piece_len);
        line->len += piece_len;
        i += used;
    }
    return true;
}

static void put_key(struct dr_log_line *line, const char *key, size_t *field_start, bool *is_ok)
{
    *field_start = line->len;
    *is_ok =
        put_raw(line, ",\"", 2) && put_escaped(line, key, strlen(key)) && put_raw(line, "\":", 2);
}

void dr_log_begin(struct dr_log_line *line, enum dr_log_level level, const char *msg)
{
    line->is_on = dr_log_enabled(level);
    line->is_cut = false;
    line->len = 0;
    if (!line->is_on)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    line->len =
        (size_t)snprintf(line->buf, sizeof line->buf, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                         ts, level_names[level]);
    line->is_cut = !put_escaped(line, msg, strlen(msg));
    line->buf[line->len++] = '"';
}

void dr_log_strn(struct dr_log_line *line, const char *key, const char *value, size_t len)
{
    if (!line->is_on)
        return;
    size_t start;
    bool is_ok;
    put_key(line, key, &start, &is_ok);
    if (!is_ok || !put_raw(line, "\"", 1)) {
        line->len = start;
        line->is_cut = true;
        return;
    }
    if (!put_escaped(line, value ? value : "", value ? len : 0))
        line->is_cut = true; /* the value is cut, the line stays valid */
    line->buf[line->len++] = '"';
}

void dr_log_str(struct dr_log_line *line, const char *key, const char *value)
{
    dr_log_strn(line, key, value, value ? strlen(value) : 0);
}

static void put_number(struct dr_log_line *line, const char *key, const char *text)
{
    if (!line->is_on)
        return;
    size_t start;
    bool is_ok;
    put_key(line, key, &start, &is_ok);
    if (!is_ok || !put_raw(line, text, strlen(text))) {
        line->len = start;
        line->is_cut = true;
    }
}

void dr_log_int(struct dr_log_line *line, const char *key, long long value)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", value);
    put_number(line, key, text);
}

void dr_log_double(struct dr_log_line *line, const char *key, double value)
{
    char text[32];
    if (!isfinite(value)) /* JSON has no word for NaN or infinity */
        snprintf(text, sizeof text, "null");
    else
        snprintf(text, sizeof text, "%.6g", value);
    put_number(line, key, text);
}

void dr_log_user(struct dr_log_line *line, const char *user_id, size_t len)
{
    if (!line->is_on)
        return;
    char hash[DR_LOG_USER_HASH_LEN + 1];
    dr_log_user_hash(user_id, len, hash);
    dr_log_str(line, "user", hash);
}

void dr_log_end(struct dr_log_line *line)
{
    if (!line->is_on)
        return;
    if (line->is_cut) {
        memcpy(line->buf + line->len, ",\"cut\":true", 11);
        line->len += 11;
    }
    line->buf[line->len++] = '}';
    if (g_sink) {
        g_sink(g_sink_ctx, line->buf, line->len);
    } else {
        line->buf[line->len] = '\n';
        ssize_t n = write(STDERR_FILENO, line->buf, line->len + 1);
        (void)n; /* nowhere to report a failed write of the log */
    }
    line->is_on = false;
}

void dr_log(enum dr_log_level level, const char *msg)
{
    struct dr_log_line line;
    dr_log_begin(&line, level, msg);
    dr_log_end(&line);
}

bool dr_log_rate_allow(struct dr_log_rate *rate, uint64_t *n_suppressed)
{
    /* Relaxed throughout: the counts are approximate by design (two threads crossing into a
     * new second may both reset it), and no other memory is published through them. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t second = (uint64_t)now.tv_sec;
    uint64_t seen = atomic_load_explicit(&rate->second, memory_order_relaxed);
    if (seen != second &&
        atomic_compare_exchange_strong_explicit(&rate->second, &seen, second, memory_order_relaxed,
                                                memory_order_relaxed))
        atomic_store_explicit(&rate->n_in_second, 0, memory_order_relaxed);
    unsigned limit = rate->per_second ? rate->per_second : 10;
    if (atomic_fetch_add_explicit(&rate->n_in_second, 1, memory_order_relaxed) < limit) {
        *n_suppressed = atomic_exchange_explicit(&rate->n_suppressed, 0, memory_order_relaxed);
        return true;
    }
    atomic_fetch_add_explicit(&rate->n_suppressed, 1, memory_order_relaxed);
    return false;
}
