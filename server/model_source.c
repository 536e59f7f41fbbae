/* model_source.c: resolves --model / --model-root + --model-name to a bundle directory. */
#include "model_source.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_set(const char *s)
{
    return s && s[0];
}

bool dr_model_source_is_set(const struct dr_model_source *src)
{
    return is_set(src->bundle_dir) || is_set(src->root);
}

enum dr_status dr_model_source_check(const struct dr_model_source *src, struct dr_error *err)
{
    if (is_set(src->bundle_dir) && is_set(src->root))
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "--model and --model-root are exclusive: serve one bundle directory "
                            "or the registry's newest version");
    if (is_set(src->root) && !is_set(src->name))
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "--model-root needs --model-name (the model's directory in the root)");
    if (is_set(src->name) && !is_set(src->root))
        return dr_error_set(err, DR_ERR_INVALID_ARG, "--model-name needs --model-root");
    if (is_set(src->name) &&
        (strchr(src->name, '/') || strcmp(src->name, ".") == 0 || strcmp(src->name, "..") == 0))
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "--model-name \"%s\": a directory name, without '/'", src->name);
    return DR_OK;
}

/* A version directory is one whose name does not start with '.' and that holds a manifest. */
static bool is_version_dir(const char *model_dir, const char *name)
{
    if (name[0] == '.')
        return false;
    char path[DR_MODEL_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s/manifest.json", model_dir, name);
    struct stat st;
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

enum dr_status dr_model_source_resolve(const struct dr_model_source *src, char *dir,
                                       struct dr_error *err)
{
    enum dr_status st = dr_model_source_check(src, err);
    if (st != DR_OK)
        return st;
    if (is_set(src->bundle_dir)) {
        if (strlen(src->bundle_dir) >= DR_MODEL_PATH_MAX)
            return dr_error_set(err, DR_ERR_INVALID_ARG, "--model: path too long");
        strcpy(dir, src->bundle_dir);
        return DR_OK;
    }
    if (!is_set(src->root))
        return dr_error_set(err, DR_ERR_INVALID_ARG, "no model source (--model or --model-root)");
    char model_dir[DR_MODEL_PATH_MAX];
    int n = snprintf(model_dir, sizeof model_dir, "%s/%s", src->root, src->name);
    if (n < 0 || (size_t)n >= sizeof model_dir)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "--model-root: path too long");
    if (is_version_dir(src->root, src->name)) /* ROOT/NAME/manifest.json: a bundle itself */
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "model registry %s is itself a bundle (it has a manifest.json): "
                            "serve it with --model %s, or put it in a version directory "
                            "%s/VERSION/",
                            model_dir, model_dir, model_dir);
    DIR *d = opendir(model_dir);
    if (!d)
        return dr_error_set(err, DR_ERR_IO, "model registry %s: %s", model_dir, strerror(errno));
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) >= sizeof best || !is_version_dir(model_dir, e->d_name))
            continue;
        if (!best[0] || strverscmp(e->d_name, best) > 0)
            strcpy(best, e->d_name);
    }
    closedir(d);
    if (!best[0])
        return dr_error_set(err, DR_ERR_IO,
                            "model registry %s: no version directory with a manifest.json",
                            model_dir);
    n = snprintf(dir, DR_MODEL_PATH_MAX, "%s/%s", model_dir, best);
    if (n < 0 || n >= DR_MODEL_PATH_MAX)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "--model-root: path too long");
    return DR_OK;
}
