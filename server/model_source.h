/* model_source.h: which bundle directory the server serves.
 *
 * Either one bundle directory (--model DIR: reloading it re-reads the same path, so a
 * symlink swapped with rename(2) rolls out a new version), or a model registry
 * (--model-root ROOT --model-name NAME): ROOT/NAME/VERSION/ directories, each a bundle
 * (docs/bundle.md); the served one is the highest VERSION in version order (strverscmp:
 * "9" < "10" < "10a"), skipping names that start with '.' (a version being copied in: copy to
 * ".tmp-VERSION", then rename) and directories without a manifest.json.
 */
#ifndef DR_MODEL_SOURCE_H
#define DR_MODEL_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

#define DR_MODEL_PATH_MAX 4096

struct dr_model_source {
    const char *bundle_dir; /* --model; NULL or "" with a registry */
    const char *root;       /* --model-root; NULL or "" without one */
    const char *name;       /* --model-name; required with a root */
};

/* True when the source names a model at all. */
bool dr_model_source_is_set(const struct dr_model_source *src);

/* Checks the combination of options: a bundle directory or a registry root with a name,
 * not both; names without '/' and not "." or "..". */
enum dr_status dr_model_source_check(const struct dr_model_source *src, struct dr_error *err);

/* The directory to serve now: the bundle directory, or ROOT/NAME/<highest version>.
 * dir: a buffer of DR_MODEL_PATH_MAX bytes.  DR_ERR_IO when the registry cannot be read or
 * holds no version. */
enum dr_status dr_model_source_resolve(const struct dr_model_source *src, char *dir,
                                       struct dr_error *err);

#endif /* DR_MODEL_SOURCE_H */
