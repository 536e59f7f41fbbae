/* model_file.c: the manifest + safetensors loader (the format is in model_file.h).
 *
 * Order of checks, each failure naming the file and the first problem found: manifest JSON
 * and its fields; every named file's SHA-256 (over the mapped bytes); the safetensors
 * header length, header JSON, each entry (dtype, shape, offsets, size = elements x dtype
 * size), then the tiling of the data area (sorted by offset: no gap, no overlap, nothing
 * past the end, nothing left over).  Names are then sorted for lookup; duplicates fail.
 * Tensors are handed out by name with dtype and shape checked against what the model's
 * config implies.  Load time only, one thread.
 */
#include "model_file.h"

#include "file_io.h"

#include "kernels.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const k_dtype_names[DR_DTYPE_COUNT] = {
    [DR_DTYPE_BOOL] = "BOOL", [DR_DTYPE_U8] = "U8",   [DR_DTYPE_I8] = "I8",
    [DR_DTYPE_I16] = "I16",   [DR_DTYPE_U16] = "U16", [DR_DTYPE_F16] = "F16",
    [DR_DTYPE_BF16] = "BF16", [DR_DTYPE_I32] = "I32", [DR_DTYPE_U32] = "U32",
    [DR_DTYPE_F32] = "F32",   [DR_DTYPE_I64] = "I64", [DR_DTYPE_U64] = "U64",
    [DR_DTYPE_F64] = "F64",
};
static const size_t k_dtype_sizes[DR_DTYPE_COUNT] = {
    [DR_DTYPE_BOOL] = 1, [DR_DTYPE_U8] = 1,  [DR_DTYPE_I8] = 1,   [DR_DTYPE_I16] = 2,
    [DR_DTYPE_U16] = 2,  [DR_DTYPE_F16] = 2, [DR_DTYPE_BF16] = 2, [DR_DTYPE_I32] = 4,
    [DR_DTYPE_U32] = 4,  [DR_DTYPE_F32] = 4, [DR_DTYPE_I64] = 8,  [DR_DTYPE_U64] = 8,
    [DR_DTYPE_F64] = 8,
};

const char *dr_dtype_name(enum dr_dtype dtype)
{
    return (unsigned)dtype < DR_DTYPE_COUNT ? k_dtype_names[dtype] : "?";
}

size_t dr_dtype_size(enum dr_dtype dtype)
{
    return (unsigned)dtype < DR_DTYPE_COUNT ? k_dtype_sizes[dtype] : 0;
}

static bool dtype_parse(const char *name, enum dr_dtype *out)
{
    for (int i = 0; i < DR_DTYPE_COUNT; i++) {
        if (strcmp(name, k_dtype_names[i]) == 0) {
            *out = (enum dr_dtype)i;
            return true;
        }
    }
    return false;
}

/* "256x1024" (or "scalar"); buf has room for DR_TENSOR_MAX_DIMS 20-digit numbers. */
static const char *shape_str(size_t ndim, const size_t *shape, char *buf, size_t buf_size)
{
    if (ndim == 0) {
        snprintf(buf, buf_size, "scalar");
        return buf;
    }
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ndim && at < buf_size; i++) {
        int n = snprintf(buf + at, buf_size - at, i ? "x%zu" : "%zu", shape[i]);
        if (n < 0)
            break;
        at += (size_t)n;
    }
    return buf;
}

/* ---- safetensors ------------------------------------------------------------------------ */

/* A JSON number that is an exact non-negative integer below 2^53. */
static bool json_size(const cJSON *item, size_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || floor(v) != v)
        return false;
    *out = (size_t)v;
    return true;
}

static int cmp_by_name(const void *a, const void *b)
{
    const struct dr_tensor_info *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const struct dr_tensor_info *x = *(const struct dr_tensor_info *const *)a;
    const struct dr_tensor_info *y = *(const struct dr_tensor_info *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static void free_tensors(struct dr_tensor_info *tensors, size_t n)
{
    if (!tensors)
        return;
    for (size_t i = 0; i < n; i++)
        free(tensors[i].name);
    free(tensors);
}

/* One header entry into *t; the name is set by the caller. */
static enum dr_status parse_entry(const cJSON *entry, const char *label, const char *name,
                                  struct dr_tensor_info *t, struct dr_error *err)
{
    if (!cJSON_IsObject(entry))
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: header entry is not an object", label,
                            name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype))
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: missing or non-string \"dtype\"", label,
                            name);
    if (!dtype_parse(dtype->valuestring, &t->dtype))
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: unsupported dtype \"%.32s\"", label, name,
                            dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: missing or non-array \"shape\"", label,
                            name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > DR_TENSOR_MAX_DIMS)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: %d dimensions, at most %d supported",
                            label, name, ndim, DR_TENSOR_MAX_DIMS);
    t->ndim = (size_t)ndim;
    size_t n_elements = 1;
    const cJSON *dim;
    size_t d = 0;
    cJSON_ArrayForEach(dim, shape)
    {
        if (!json_size(dim, &t->shape[d]))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "%s: %s: shape[%zu] is not a non-negative integer", label, name, d);
        if (t->shape[d] && n_elements > SIZE_MAX / t->shape[d])
            return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: element count overflows", label, name);
        n_elements *= t->shape[d];
        d++;
    }
    t->n_elements = n_elements;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_size(cJSON_GetArrayItem(offsets, 0), &t->begin) ||
        !json_size(cJSON_GetArrayItem(offsets, 1), &t->end))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s: %s: \"data_offsets\" must be [begin, end], non-negative integers",
                            label, name);
    if (t->end < t->begin)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: data_offsets [%zu, %zu] end before begin",
                            label, name, t->begin, t->end);
    size_t esize = dr_dtype_size(t->dtype);
    if (n_elements > SIZE_MAX / esize)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %s: byte size overflows", label, name);
    if (t->end - t->begin != n_elements * esize) {
        char s[DR_TENSOR_MAX_DIMS * 21];
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s: %s: data_offsets [%zu, %zu] hold %zu bytes, but %s %s needs %zu",
                            label, name, t->begin, t->end, t->end - t->begin,
                            dr_dtype_name(t->dtype), shape_str(t->ndim, t->shape, s, sizeof s),
                            n_elements * esize);
    }
    return DR_OK;
}

enum dr_status dr_safetensors_parse(const void *buf, size_t size, const char *label,
                                    struct dr_safetensors *out, struct dr_error *err)
{
    const uint8_t *bytes = buf;
    if (size < 8)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s: %zu bytes, too short for the 8-byte header length", label, size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | bytes[i];
    if (header_len > size - 8)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s: header length %llu runs past the end of the file (%zu bytes)",
                            label, (unsigned long long)header_len, size);
    if (header_len > DR_SAFETENSORS_MAX_HEADER)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: header length %llu is over the %u limit",
                            label, (unsigned long long)header_len, DR_SAFETENSORS_MAX_HEADER);
    const char *header = (const char *)bytes + 8;
    if (header_len < 2 || header[0] != '{')
        return dr_error_set(err, DR_ERR_FORMAT, "%s: header does not start with '{'", label);

    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &parse_end, false);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = parse_end && parse_end >= header ? (size_t)(parse_end - header) : 0;
        if (!root) {
            const char *where = cJSON_GetErrorPtr();
            if (where && where >= header && where <= header + header_len)
                at = (size_t)(where - header);
        }
        cJSON_Delete(root);
        return dr_error_set(err, DR_ERR_FORMAT, "%s: header is not a JSON object (near byte %zu)",
                            label, at);
    }
    for (const char *p = parse_end; p && p < header + header_len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return dr_error_set(err, DR_ERR_FORMAT,
                                "%s: header has bytes after its JSON object (byte %zu)", label,
                                (size_t)(p - header));
        }
    }

    enum dr_status st = DR_OK;
    struct dr_tensor_info *tensors = NULL;
    const struct dr_tensor_info **by_offset = NULL;
    size_t n = 0, cap = (size_t)cJSON_GetArraySize(root);
    tensors = calloc(cap ? cap : 1, sizeof *tensors);
    by_offset = calloc(cap ? cap : 1, sizeof *by_offset);
    if (!tensors || !by_offset) {
        st = dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory for %zu tensors", label, cap);
        goto fail;
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root)
    {
        const char *name = entry->string ? entry->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            const cJSON *kv;
            if (!cJSON_IsObject(entry)) {
                st = dr_error_set(err, DR_ERR_FORMAT, "%s: __metadata__ is not an object", label);
                goto fail;
            }
            cJSON_ArrayForEach(kv, entry)
            {
                if (!cJSON_IsString(kv)) {
                    st = dr_error_set(err, DR_ERR_FORMAT, "%s: __metadata__.%.64s is not a string",
                                      label, kv->string ? kv->string : "");
                    goto fail;
                }
            }
            continue;
        }
        struct dr_tensor_info *t = &tensors[n];
        st = parse_entry(entry, label, name, t, err);
        if (st != DR_OK)
            goto fail;
        t->name = strdup(name);
        if (!t->name) {
            st = dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", label);
            goto fail;
        }
        by_offset[n] = t;
        n++;
    }
    cJSON_Delete(root);
    root = NULL;

    size_t data_size = size - 8 - (size_t)header_len;
    const uint8_t *data_area = bytes + 8 + header_len;
    qsort(by_offset, n, sizeof *by_offset, cmp_by_offset);
    size_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dr_tensor_info *t = by_offset[i];
        if (t->begin < expect) {
            st = dr_error_set(err, DR_ERR_FORMAT,
                              "%s: %s: data_offsets [%zu, %zu] overlap %s, which ends at %zu",
                              label, t->name, t->begin, t->end, by_offset[i - 1]->name, expect);
            goto fail;
        }
        if (t->begin > expect) {
            st = dr_error_set(err, DR_ERR_FORMAT,
                              "%s: %s: data_offsets begin at %zu, leaving a gap after %zu", label,
                              t->name, t->begin, expect);
            goto fail;
        }
        if (t->end > data_size) {
            st = dr_error_set(err, DR_ERR_FORMAT,
                              "%s: %s: data_offsets [%zu, %zu] run past the data area (%zu bytes)",
                              label, t->name, t->begin, t->end, data_size);
            goto fail;
        }
        expect = t->end;
    }
    if (expect != data_size) {
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "%s: the tensors cover %zu bytes of a %zu-byte data area", label, expect,
                          data_size);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        tensors[i].data = data_area + tensors[i].begin;
    qsort(tensors, n, sizeof *tensors, cmp_by_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(tensors[i - 1].name, tensors[i].name) == 0) {
            st = dr_error_set(err, DR_ERR_FORMAT, "%s: %s: tensor named twice", label,
                              tensors[i].name);
            goto fail;
        }
    }
    free(by_offset);
    out->n_tensors = n;
    out->tensors = tensors;
    out->data_area = data_area;
    out->data_size = data_size;
    return DR_OK;

fail:
    cJSON_Delete(root);
    free(by_offset);
    free_tensors(tensors, n);
    return st;
}

void dr_safetensors_deinit(struct dr_safetensors *st)
{
    if (!st)
        return;
    free_tensors(st->tensors, st->n_tensors);
    memset(st, 0, sizeof *st);
}

const struct dr_tensor_info *dr_safetensors_find(const struct dr_safetensors *st, const char *name)
{
    struct dr_tensor_info key = {.name = (char *)(uintptr_t)name};
    return bsearch(&key, st->tensors, st->n_tensors, sizeof *st->tensors, cmp_by_name);
}

/* ---- SHA-256 ------------------------------------------------------------------------------ */

static enum dr_status sha256_hex(const void *buf, size_t size, char hex[65], const char *label,
                                 struct dr_error *err)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(buf, size, digest, &digest_len, EVP_sha256(), NULL) || digest_len != 32)
        return dr_error_set(err, DR_ERR_INTERNAL, "%s: SHA-256 failed", label);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return DR_OK;
}

enum dr_status dr_sha256_file(const char *path, char hex[65], struct dr_error *err)
{
    struct dr_mapped m;
    enum dr_status st = dr_map_file(path, &m, err);
    if (st != DR_OK)
        return st;
    st = sha256_hex(m.addr ? m.addr : "", m.size, hex, path, err);
    dr_unmap_file(&m);
    return st;
}

/* ---- model files -------------------------------------------------------------------------- */

struct dr_model_file {
    char *dir;
    cJSON *manifest;
    const cJSON *config;
    const char *name, *version, *architecture;
    bool is_int8;
    char *weights_path, *vocab_path;
    bool vocab_lower_case;
    struct dr_mapped weights_map;
    struct dr_safetensors tensors;
    void **copies; /* aligned copies handed out by dr_model_file_tensor */
    size_t n_copies, cap_copies;
};

static const char *manifest_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A file named by the manifest: a plain name inside the model directory, its sha256 checked
 * against the manifest (over map's bytes when map is given, else the file's). */
static enum dr_status check_named_file(const struct dr_model_file *mf, const cJSON *section,
                                       const char *section_name, char **path_out,
                                       struct dr_mapped *map, struct dr_error *err)
{
    const char *file = manifest_string(section, "file");
    const char *want = manifest_string(section, "sha256");
    if (!file || !*file || strchr(file, '/') || strcmp(file, "..") == 0 || strcmp(file, ".") == 0)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: %s.file must be a file name in the model directory",
                            section_name);
    if (!want || strlen(want) != 64)
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: %s.sha256 must be 64 hex digits",
                            section_name);
    char *path = dr_path_join(mf->dir, file);
    if (!path)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    char got[65];
    enum dr_status st;
    if (map) {
        st = dr_map_file(path, map, err);
        if (st == DR_OK)
            st = sha256_hex(map->addr ? map->addr : "", map->size, got, file, err);
    } else {
        st = dr_sha256_file(path, got, err);
    }
    if (st == DR_OK && strncasecmp(got, want, 64) != 0)
        st = dr_error_set(err, DR_ERR_FORMAT, "%s: sha256 %.12s..., the manifest says %.12s...",
                          file, got, want);
    if (st != DR_OK) {
        if (map)
            dr_unmap_file(map);
        free(path);
        return st;
    }
    *path_out = path;
    return DR_OK;
}

static enum dr_status check_manifest(struct dr_model_file *mf, struct dr_error *err)
{
    const cJSON *m = mf->manifest;
    const char *format = manifest_string(m, "format");
    if (!format || strcmp(format, DR_MODEL_FORMAT) != 0)
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: format must be \"%s\"",
                            DR_MODEL_FORMAT);
    const cJSON *fv = cJSON_GetObjectItemCaseSensitive(m, "format_version");
    if (!cJSON_IsNumber(fv) || fv->valuedouble != (double)DR_MODEL_FORMAT_VERSION)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: format_version must be %d (this build reads %d)",
                            DR_MODEL_FORMAT_VERSION, DR_MODEL_FORMAT_VERSION);
    mf->name = manifest_string(m, "name");
    mf->version = manifest_string(m, "version");
    mf->architecture = manifest_string(m, "architecture");
    if (!mf->name || !mf->version || !mf->architecture)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: name, version and architecture must be strings");
    mf->config = cJSON_GetObjectItemCaseSensitive(m, "config");
    if (!cJSON_IsObject(mf->config))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: config must be an object");
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(m, "weights");
    if (!cJSON_IsObject(weights))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: weights must be an object");
    const char *dtype = manifest_string(weights, "dtype");
    if (!dtype || (strcmp(dtype, "fp32") != 0 && strcmp(dtype, "int8") != 0))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: weights.dtype must be \"fp32\" or \"int8\"");
    mf->is_int8 = strcmp(dtype, "int8") == 0;
    if (mf->is_int8) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "int8");
        const char *scheme = manifest_string(q, "scheme");
        const char *suffix = manifest_string(q, "scale_suffix");
        const cJSON *qmax = cJSON_GetObjectItemCaseSensitive(q, "weight_qmax");
        if (!scheme || strcmp(scheme, DR_MODEL_INT8_SCHEME) != 0)
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: int8.scheme is \"%.64s\", this build runs \"%s\"",
                                scheme ? scheme : "(missing)", DR_MODEL_INT8_SCHEME);
        if (!cJSON_IsNumber(qmax) || qmax->valuedouble < 1.0 ||
            qmax->valuedouble > (double)DR_S8_WEIGHT_QMAX)
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: int8.weight_qmax must be in [1, %d]",
                                DR_S8_WEIGHT_QMAX);
        if (!suffix || strcmp(suffix, "_scale") != 0)
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: int8.scale_suffix must be \"_scale\"");
    }
    enum dr_status st =
        check_named_file(mf, weights, "weights", &mf->weights_path, &mf->weights_map, err);
    if (st != DR_OK)
        return st;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    if (vocab) {
        if (!cJSON_IsObject(vocab))
            return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: vocab must be an object");
        const cJSON *lower = cJSON_GetObjectItemCaseSensitive(vocab, "do_lower_case");
        if (!cJSON_IsBool(lower))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: vocab.do_lower_case must be true or false");
        mf->vocab_lower_case = cJSON_IsTrue(lower);
        st = check_named_file(mf, vocab, "vocab", &mf->vocab_path, NULL, err);
        if (st != DR_OK)
            return st;
    }
    return dr_safetensors_parse(mf->weights_map.addr ? mf->weights_map.addr : "",
                                mf->weights_map.size, manifest_string(weights, "file"),
                                &mf->tensors, err);
}

enum dr_status dr_model_file_open(const char *path, struct dr_model_file **out,
                                  struct dr_error *err)
{
    struct dr_model_file *mf = calloc(1, sizeof *mf);
    if (!mf)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    enum dr_status st;
    char *manifest_path = NULL, *text = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = dr_error_set(err, DR_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        mf->dir = strdup(path);
    } else {
        const char *slash = strrchr(path, '/');
        mf->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
    }
    manifest_path = S_ISDIR(sb.st_mode) ? dr_path_join(path, "manifest.json") : strdup(path);
    if (!mf->dir || !manifest_path) {
        st = dr_error_set(err, DR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t text_size = 0;
    st = dr_read_small_file(manifest_path, 1u << 20, &text, &text_size, err);
    if (st != DR_OK)
        goto fail;
    const char *end = NULL;
    mf->manifest = cJSON_ParseWithLengthOpts(text, text_size, &end, false);
    if (!cJSON_IsObject(mf->manifest)) {
        st = dr_error_set(err, DR_ERR_FORMAT, "%s: not a JSON object", manifest_path);
        goto fail;
    }
    st = check_manifest(mf, err);
    if (st != DR_OK)
        goto fail;
    free(text);
    free(manifest_path);
    *out = mf;
    return DR_OK;

fail:
    free(text);
    free(manifest_path);
    dr_model_file_destroy(mf);
    return st;
}

void dr_model_file_destroy(struct dr_model_file *mf)
{
    if (!mf)
        return;
    for (size_t i = 0; i < mf->n_copies; i++)
        dr_aligned_free(mf->copies[i]);
    free(mf->copies);
    dr_safetensors_deinit(&mf->tensors);
    dr_unmap_file(&mf->weights_map);
    free(mf->weights_path);
    free(mf->vocab_path);
    cJSON_Delete(mf->manifest);
    free(mf->dir);
    free(mf);
}

const char *dr_model_file_name(const struct dr_model_file *mf)
{
    return mf->name;
}

const char *dr_model_file_version(const struct dr_model_file *mf)
{
    return mf->version;
}

const char *dr_model_file_architecture(const struct dr_model_file *mf)
{
    return mf->architecture;
}

bool dr_model_file_is_int8(const struct dr_model_file *mf)
{
    return mf->is_int8;
}

const char *dr_model_file_vocab_path(const struct dr_model_file *mf)
{
    return mf->vocab_path;
}

bool dr_model_file_vocab_lower_case(const struct dr_model_file *mf)
{
    return mf->vocab_lower_case;
}

const struct dr_safetensors *dr_model_file_tensors(const struct dr_model_file *mf)
{
    return &mf->tensors;
}

static const cJSON *config_item(const struct dr_model_file *mf, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(mf->config, key);
}

enum dr_status dr_model_file_config_int_or(const struct dr_model_file *mf, const char *key,
                                           int64_t min, int64_t max, int64_t def, int64_t *out,
                                           struct dr_error *err)
{
    const cJSON *v = config_item(mf, key);
    if (!v) {
        *out = def;
        return DR_OK;
    }
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble ||
        v->valuedouble < (double)min || v->valuedouble > (double)max)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: config.%s must be an integer in [%lld, %lld]", key,
                            (long long)min, (long long)max);
    *out = (int64_t)v->valuedouble;
    return DR_OK;
}

enum dr_status dr_model_file_config_int(const struct dr_model_file *mf, const char *key,
                                        int64_t min, int64_t max, int64_t *out,
                                        struct dr_error *err)
{
    if (!config_item(mf, key))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: config.%s is missing", key);
    return dr_model_file_config_int_or(mf, key, min, max, 0, out, err);
}

enum dr_status dr_model_file_config_number(const struct dr_model_file *mf, const char *key,
                                           double *out, struct dr_error *err)
{
    const cJSON *v = config_item(mf, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: config.%s must be a number", key);
    *out = v->valuedouble;
    return DR_OK;
}

enum dr_status dr_model_file_config_string(const struct dr_model_file *mf, const char *key,
                                           const char **out, struct dr_error *err)
{
    const cJSON *v = config_item(mf, key);
    if (!cJSON_IsString(v))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: config.%s must be a string", key);
    *out = v->valuestring;
    return DR_OK;
}

enum dr_status dr_model_file_config_bool_or(const struct dr_model_file *mf, const char *key,
                                            bool def, bool *out, struct dr_error *err)
{
    const cJSON *v = config_item(mf, key);
    if (!v) {
        *out = def;
        return DR_OK;
    }
    if (!cJSON_IsBool(v))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: config.%s must be true or false",
                            key);
    *out = cJSON_IsTrue(v);
    return DR_OK;
}

enum dr_status dr_model_file_tensor(struct dr_model_file *mf, const char *name, enum dr_dtype dtype,
                                    size_t ndim, const size_t *shape, size_t alignment,
                                    const void **out, struct dr_error *err)
{
    const struct dr_tensor_info *t = dr_safetensors_find(&mf->tensors, name);
    if (!t)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: missing tensor", name);
    if (t->dtype != dtype)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: dtype %s, expected %s", name,
                            dr_dtype_name(t->dtype), dr_dtype_name(dtype));
    bool same = t->ndim == ndim;
    for (size_t i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[DR_TENSOR_MAX_DIMS * 21], want[DR_TENSOR_MAX_DIMS * 21];
        return dr_error_set(err, DR_ERR_FORMAT, "%s: shape %s, expected %s", name,
                            shape_str(t->ndim, t->shape, got, sizeof got),
                            shape_str(ndim, shape, want, sizeof want));
    }
    size_t align = alignment > dr_dtype_size(dtype) ? alignment : dr_dtype_size(dtype);
    DR_ASSERT(align <= DR_ALIGNMENT);
    size_t size = t->end - t->begin;
    if (size > 0 && (uintptr_t)t->data % align == 0) {
        *out = t->data;
        return DR_OK;
    }
    if (mf->n_copies == mf->cap_copies) {
        size_t cap = mf->cap_copies ? 2 * mf->cap_copies : 16;
        void **copies = realloc(mf->copies, cap * sizeof *copies);
        if (!copies)
            return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", name);
        mf->copies = copies;
        mf->cap_copies = cap;
    }
    void *copy = dr_aligned_alloc(size);
    if (!copy)
        return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory for %zu bytes", name, size);
    if (size)
        memcpy(copy, t->data, size);
    mf->copies[mf->n_copies++] = copy;
    *out = copy;
    return DR_OK;
}
