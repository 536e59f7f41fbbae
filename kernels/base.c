/* base.c: status strings, the always-on assertion and aligned allocation. */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *dr_status_str(enum dr_status status)
{
    switch (status) {
    case DR_OK:
        return "ok";
    case DR_ERR_INVALID_ARG:
        return "invalid argument";
    case DR_ERR_NOMEM:
        return "out of memory";
    case DR_ERR_OVERLOADED:
        return "overloaded";
    case DR_ERR_DEADLINE:
        return "deadline exceeded";
    case DR_ERR_IO:
        return "i/o error";
    case DR_ERR_FORMAT:
        return "bad format";
    case DR_ERR_UNSUPPORTED_CPU:
        return "unsupported cpu";
    case DR_ERR_INTERNAL:
        return "internal error";
    case DR_ERR_UNAVAILABLE:
        return "unavailable";
    }
    return "unknown status";
}

enum dr_status dr_error_set(struct dr_error *err, enum dr_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void dr__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "driftrec: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void *dr_aligned_alloc(size_t size_bytes)
{
    size_t size = dr_round_up(size_bytes ? size_bytes : 1, DR_ALIGNMENT);
    if (size < size_bytes)
        return NULL; /* overflow */
    return aligned_alloc(DR_ALIGNMENT, size);
}

void dr_aligned_free(void *ptr)
{
    free(ptr);
}
