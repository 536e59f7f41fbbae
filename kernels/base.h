/* base.h: status codes, assertions and aligned buffers shared by every driftrec layer.
 *
 * The kernels library is the bottom of the dependency graph (models/, the index and the
 * server sit on top), so the few definitions every layer needs live here.
 */
#ifndef DR_BASE_H
#define DR_BASE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum dr_status {
    DR_OK = 0,
    DR_ERR_INVALID_ARG,
    DR_ERR_NOMEM,
    DR_ERR_OVERLOADED,
    DR_ERR_DEADLINE,
    DR_ERR_IO,
    DR_ERR_FORMAT,
    DR_ERR_UNSUPPORTED_CPU,
    DR_ERR_INTERNAL,
    DR_ERR_UNAVAILABLE, /* a service we depend on (the Redis history) is down: retry later */
};

/* Static string for a status; never NULL. */
const char *dr_status_str(enum dr_status status);

/* Load-time paths say precisely what went wrong ("w1: shape 768x3027, expected 768x3072"). */
struct dr_error {
    enum dr_status code;
    char msg[256];
};

/* Sets err (if not NULL) and returns code, so callers can `return dr_error_set(...)`. */
enum dr_status dr_error_set(struct dr_error *err, enum dr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* On in every build: guards invariants whose violation means memory is already unsafe. */
#define DR_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x))                                                                                  \
            dr__assert_fail(#x, __FILE__, __LINE__);                                               \
    } while (0)

__attribute__((noreturn)) void dr__assert_fail(const char *expr, const char *file, int line);

/* Every buffer a kernel reads at full width is 64-byte aligned (one cache line, one zmm). */
#define DR_ALIGNMENT 64

/* Returns owned memory aligned to DR_ALIGNMENT (free with dr_aligned_free), or NULL.
 * size_bytes is rounded up to a multiple of the alignment. */
void *dr_aligned_alloc(size_t size_bytes);
void dr_aligned_free(void *ptr); /* NULL is a no-op */

static inline size_t dr_round_up(size_t x, size_t multiple)
{
    return (x + multiple - 1) / multiple * multiple;
}

#ifdef __cplusplus
}
#endif

#endif /* DR_BASE_H */
