/* token.h: bearer-token files, read the same way by the server and its clients.
 *
 * A token file holds one token: surrounding whitespace (a trailing newline) is ignored, the
 * rest must be 1..DR_TOKEN_MAX_LEN visible ASCII characters (0x21..0x7e), the characters a
 * gRPC metadata value may carry.  The token is never logged or put in an error message.
 */
#ifndef DR_TOKEN_H
#define DR_TOKEN_H

#include <stddef.h>

#include "base.h"

#define DR_TOKEN_MAX_LEN 1024

/* Reads the token in path into out (NUL-terminated; size > DR_TOKEN_MAX_LEN) and its length
 * into *len; *mode (may be NULL) receives the file's permission bits, for callers that warn
 * about files others may read.  On failure err names the file and out is zeroed. */
enum dr_status dr_token_read(const char *path, char *out, size_t size, size_t *len, unsigned *mode,
                             struct dr_error *err);

#endif /* DR_TOKEN_H */
