/* token.c: bearer-token files (token.h).  Plain POSIX reads: clients link it without the
 * server. */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum dr_status dr_token_read(const char *path, char *out, size_t size, size_t *len, unsigned *mode,
                             struct dr_error *err)
{
    DR_ASSERT(size > DR_TOKEN_MAX_LEN);
    memset(out, 0, size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dr_error_set(err, DR_ERR_IO, "token file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dr_error_set(err, DR_ERR_IO, "token file %s: not a regular file", path);
    }
    char text[DR_TOKEN_MAX_LEN + 64];
    ssize_t n = read(fd, text, sizeof text);
    int read_errno = errno;
    close(fd);
    if (n < 0)
        return dr_error_set(err, DR_ERR_IO, "token file %s: %s", path, strerror(read_errno));
    size_t begin = 0, end = (size_t)n;
    while (begin < end && strchr(" \t\r\n", text[begin]))
        begin++;
    while (end > begin && strchr(" \t\r\n", text[end - 1]))
        end--;
    enum dr_status result = DR_OK;
    if ((size_t)n == sizeof text || end - begin > DR_TOKEN_MAX_LEN)
        result = dr_error_set(err, DR_ERR_FORMAT, "token file %s: longer than %d characters", path,
                              DR_TOKEN_MAX_LEN);
    else if (end == begin)
        result = dr_error_set(err, DR_ERR_FORMAT, "token file %s: empty", path);
    for (size_t i = begin; result == DR_OK && i < end; i++)
        if (text[i] < 0x21 || text[i] > 0x7e)
            result = dr_error_set(err, DR_ERR_FORMAT,
                                  "token file %s: byte %zu is not a visible ASCII character "
                                  "(tokens are one line of 0x21..0x7e)",
                                  path, i);
    if (result == DR_OK) {
        memcpy(out, text + begin, end - begin);
        *len = end - begin;
        if (mode)
            *mode = (unsigned)(st.st_mode & 07777);
    }
    explicit_bzero(text, sizeof text);
    return result;
}
