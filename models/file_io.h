/* file_io.h: the file reading the model loaders share (model_file.c, bundle.c): whole files
 * mapped read-only, small files read whole, paths joined.  Internal to dr_models. */
#ifndef DR_FILE_IO_H
#define DR_FILE_IO_H

#include "base.h"

#include <stddef.h>

/* A whole file mapped read-only (an empty file maps to NULL with size 0). */
struct dr_mapped {
    void *addr;
    size_t size;
};

/* Maps the regular file at path; on error nothing is mapped and err names the path. */
enum dr_status dr_map_file(const char *path, struct dr_mapped *out, struct dr_error *err);
void dr_unmap_file(struct dr_mapped *m); /* leaves *m empty; an empty one is a no-op */

/* The whole of a regular file of at most max_size bytes, NUL-terminated.  *out returns
 * owned (free). */
enum dr_status dr_read_small_file(const char *path, size_t max_size, char **out, size_t *size,
                                  struct dr_error *err);

/* dir + "/" + rel, returns owned (free); NULL when out of memory. */
char *dr_path_join(const char *dir, const char *rel);

#endif /* DR_FILE_IO_H */
