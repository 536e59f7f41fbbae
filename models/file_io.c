/* file_io.c: see file_io.h. */
#include "file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum dr_status dr_map_file(const char *path, struct dr_mapped *out, struct dr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dr_error_set(err, DR_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dr_error_set(err, DR_ERR_IO, "%s: not a regular file", path);
    }
    struct dr_mapped m = {.addr = NULL, .size = (size_t)sb.st_size};
    if (m.size > 0) {
        m.addr = mmap(NULL, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m.addr == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dr_error_set(err, DR_ERR_IO, "%s: mmap: %s", path, strerror(e));
        }
    }
    close(fd);
    *out = m;
    return DR_OK;
}

void dr_unmap_file(struct dr_mapped *m)
{
    if (m->addr)
        munmap(m->addr, m->size);
    m->addr = NULL;
    m->size = 0;
}

enum dr_status dr_read_small_file(const char *path, size_t max_size, char **out, size_t *size,
                                  struct dr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dr_error_set(err, DR_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return dr_error_set(err, DR_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_size) {
        fclose(f);
        return dr_error_set(err, DR_ERR_FORMAT, "%s: larger than %zu bytes", path, max_size);
    }
    size_t want = (size_t)sb.st_size;
    char *buf = malloc(want + 1);
    if (!buf) {
        fclose(f);
        return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, want, f);
    bool bad = ferror(f) != 0 || n != want;
    fclose(f);
    if (bad) {
        free(buf);
        return dr_error_set(err, DR_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return DR_OK;
}

char *dr_path_join(const char *dir, const char *rel)
{
    size_t a = strlen(dir), b = strlen(rel);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, rel, b + 1);
    return p;
}
