/* bundle.c: loads and checks a model bundle (bundle.h says what; docs/bundle.md the format).
 *
 * Order of checks, each failure naming the file: manifest.json (size, JSON, format and
 * version, every required key and its type); every path the manifest names (relative, no
 * "." or ".." component, and after resolving links still inside the bundle); every sha256
 * entry against its file, and that each file under items/ has one; ids.txt (n_items lines,
 * non-empty UTF-8 ids without tab/CR/NUL, no duplicate); vectors.f32 (exact size, finite);
 * categories.u32 (exact size, numbers below the category count); the text projection
 * (exact size, finite, its text_dim against the text encoder's output size, read from the
 * encoder's manifest); the interest model (its own loader, then its item_dim against the
 * bundle's); the index (dr_ann_load verifies it; then its size, dimension and metric).
 *
 * The vectors, categories and text projection are mapped read-only (MAP_SHARED: processes serving
 * the same bundle share the pages); the ids are one owned copy of ids.txt with each newline made a
 * NUL, and a table of (id, row) sorted by bytes for lookup.  Everything is immutable after
 * load, so any number of threads read the bundle without locks.  Load: one thread.
 */
#include "bundle.h"

#include "file_io.h"
#include "model_file.h" /* dr_sha256_file, the text encoder's config */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bundle.c maps little-endian float32/uint32 files as they are: little-endian hosts only"
#endif

#define MAX_ITEM_DIM      65536u
#define MAX_TEXT_DIM      65536u
#define MAX_TEXT_LEN      65536u /* preprocessing.text.max_len, in tokens */
#define SCORE_BLOCK_BYTES (256u * 1024u)

struct id_entry {
    const char *id; /* into bundle->ids */
    size_t len;
    uint32_t row;
};

struct dr_bundle {
    char *dir;      /* as given, for messages and paths */
    char *real_dir; /* realpath(dir), for the containment check */
    cJSON *manifest;
    const char *name, *version; /* borrowed from manifest */
    char *text_path;
    size_t n_items, dim, ef_search;
    float clip_dwell_s, clip_amount;
    const char **event_types; /* n_event_types, borrowed from manifest */
    size_t n_event_types;
    struct dr_mapped vectors;
    char *ids;                 /* ids.txt, newlines made NULs */
    size_t *id_offsets;        /* n_items + 1: row r is ids[id_offsets[r] .. id_offsets[r+1] - 1) */
    struct id_entry *id_index; /* n_items, sorted by bytes */
    struct dr_mapped categories; /* n_items uint32, or empty */
    struct dr_mapped text_proj;  /* item_dim x text_dim float32, or empty */
    size_t text_dim;             /* 0 without a text projection */
    bool text_proj_normalize;    /* text_projection.normalize_input */
    size_t text_max_len;         /* preprocessing.text.max_len, 0 when absent */
    bool time_in_steps;          /* preprocessing.time_unit == "steps" */
    const char **category_names;
    size_t n_categories;
    struct dr_interest *interest;
    struct dr_ann_index *index;
    const struct dr_kernels *kern;
};

/* ---- small helpers -------------------------------------------------------------------------- */

/* err->msg = prefix + sep + err->msg: names the file in a message that does not. */
static void prefix_error(struct dr_error *err, const char *prefix, const char *sep)
{
    if (!err)
        return;
    char msg[2 * sizeof err->msg];
    snprintf(msg, sizeof msg, "%s%s%s", prefix, sep, err->msg);
    memcpy(err->msg, msg, sizeof err->msg - 1); /* a long path truncates the message */
    err->msg[sizeof err->msg - 1] = '\0';
}

/* The file at path mapped read-only, which must be want_size bytes (what: why). */
static enum dr_status map_file(const char *path, size_t want_size, const char *what,
                               struct dr_mapped *out, struct dr_error *err)
{
    struct dr_mapped m;
    enum dr_status st = dr_map_file(path, &m, err);
    if (st != DR_OK)
        return st;
    if (m.size != want_size) {
        size_t got = m.size;
        dr_unmap_file(&m);
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %zu bytes, expected %zu (%s)", path, got,
                            want_size, what);
    }
    *out = m;
    return DR_OK;
}

/* Length of the valid UTF-8 sequence at s[0 .. n), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* ---- the manifest --------------------------------------------------------------------------- */

static const cJSON *get_item(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static enum dr_status need_string(const cJSON *obj, const char *key, const char *where,
                                  const char **out, struct dr_error *err)
{
    const cJSON *v = get_item(obj, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: %s%s %s", where, key,
                            v ? "must be a non-empty string" : "is missing");
    *out = v->valuestring;
    return DR_OK;
}

static enum dr_status need_object(const cJSON *obj, const char *key, const cJSON **out,
                                  struct dr_error *err)
{
    const cJSON *v = get_item(obj, key);
    if (!cJSON_IsObject(v))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: %s %s", key,
                            v ? "must be an object" : "is missing");
    *out = v;
    return DR_OK;
}

static enum dr_status need_uint(const cJSON *obj, const char *key, const char *where, size_t min,
                                size_t max, size_t *out, struct dr_error *err)
{
    const cJSON *v = get_item(obj, key);
    if (!v)
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: %s%s is missing", where, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
    if (!(d >= (double)min && d <= (double)max) || d != floor(d))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: %s%s must be an integer in [%zu, %zu]", where, key, min,
                            max);
    *out = (size_t)d;
    return DR_OK;
}

/* An optional positive number (INFINITY when absent). */
static enum dr_status opt_bound(const cJSON *obj, const char *key, float *out, struct dr_error *err)
{
    const cJSON *v = get_item(obj, key);
    *out = INFINITY;
    if (!v || cJSON_IsNull(v))
        return DR_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: preprocessing.clip.%s must be a positive number", key);
    *out = (float)v->valuedouble;
    return DR_OK;
}

/* A path the manifest names: relative, every '/'-separated component a plain name, and once
 * links are resolved still inside the bundle.  *out returns owned (free): dir + "/" + rel. */
static enum dr_status resolve(const struct dr_bundle *b, const char *key, const char *rel,
                              bool want_dir, char **out, struct dr_error *err)
{
    for (const char *p = rel;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: %s \"%.80s\" leaves the bundle or is not a plain "
                                "relative path (empty, \".\" or \"..\" component, or absolute)",
                                key, rel);
        if (!slash)
            break;
        p = slash + 1;
    }
    char *path = dr_path_join(b->dir, rel);
    if (!path)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    char *real = realpath(path, NULL);
    if (!real) {
        enum dr_status st = dr_error_set(err, DR_ERR_IO, "%s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    size_t n = strlen(b->real_dir);
    bool inside = strncmp(real, b->real_dir, n) == 0 && real[n] == '/';
    struct stat sb;
    bool is_ok = stat(real, &sb) == 0 && (want_dir ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
    free(real);
    if (!inside) {
        enum dr_status st =
            dr_error_set(err, DR_ERR_FORMAT,
                         "manifest.json: %s \"%.80s\": a link that leaves the bundle", key, rel);
        free(path);
        return st;
    }
    if (!is_ok) {
        enum dr_status st = dr_error_set(err, DR_ERR_FORMAT, "%s: not a %s", path,
                                         want_dir ? "directory" : "regular file");
        free(path);
        return st;
    }
    *out = path;
    return DR_OK;
}

/* Every sha256 entry against its file; each of the `required` paths must have one. */
static enum dr_status check_checksums(const struct dr_bundle *b, const cJSON *sums,
                                      const char *const *required, size_t n_required,
                                      struct dr_error *err)
{
    for (size_t r = 0; r < n_required; r++) {
        if (required[r] && !cJSON_IsString(get_item(sums, required[r])))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: sha256 has no checksum for \"%.80s\"", required[r]);
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, sums)
    {
        const char *want = cJSON_IsString(entry) ? entry->valuestring : NULL;
        size_t i = 0;
        while (want && i < 64 && want[i] && strchr("0123456789abcdefABCDEF", want[i]))
            i++;
        if (!want || i != 64 || want[64])
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: sha256 \"%.80s\" must be 64 hex digits",
                                entry->string);
        char *path = NULL;
        enum dr_status st = resolve(b, "sha256 key", entry->string, false, &path, err);
        if (st != DR_OK)
            return st;
        char got[65];
        st = dr_sha256_file(path, got, err);
        if (st == DR_OK && strncasecmp(got, want, 64) != 0)
            st = dr_error_set(err, DR_ERR_FORMAT,
                              "%s: sha256 %.12s..., the manifest says %.12s... (corrupt or "
                              "changed file)",
                              path, got, want);
        free(path);
        if (st != DR_OK)
            return st;
    }
    return DR_OK;
}

/* ---- the item files ------------------------------------------------------------------------- */

static int cmp_id_entry(const void *pa, const void *pb)
{
    const struct id_entry *a = pa, *b = pb;
    int c = memcmp(a->id, b->id, a->len < b->len ? a->len : b->len);
    if (c != 0)
        return c;
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static enum dr_status load_ids(struct dr_bundle *b, const char *path, struct dr_error *err)
{
    size_t size = 0;
    enum dr_status st = dr_read_small_file(path, SIZE_MAX - 1, &b->ids, &size, err);
    if (st != DR_OK)
        return st;
    size_t n_lines = 0;
    for (size_t i = 0; i < size; i++)
        n_lines += b->ids[i] == '\n';
    if (size > 0 && b->ids[size - 1] != '\n')
        n_lines++; /* counted, then refused below */
    if (n_lines != b->n_items)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: %zu lines, the manifest says %zu items", path,
                            n_lines, b->n_items);
    if (size > 0 && b->ids[size - 1] != '\n')
        return dr_error_set(err, DR_ERR_FORMAT, "%s: the last line has no newline (truncated?)",
                            path);
    b->id_offsets = malloc((b->n_items + 1) * sizeof *b->id_offsets);
    b->id_index = malloc(b->n_items * sizeof *b->id_index);
    if (!b->id_offsets || !b->id_index)
        return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", path);
    size_t at = 0;
    for (size_t row = 0; row < b->n_items; row++) {
        const unsigned char *s = (const unsigned char *)b->ids + at;
        size_t len = 0;
        while (s[len] != '\n') {
            size_t step = s[len] == '\t' || s[len] == '\r' || s[len] == '\0'
                              ? 0
                              : utf8_len(s + len, size - at - len);
            if (step == 0)
                return dr_error_set(err, DR_ERR_FORMAT,
                                    "%s: line %zu: a tab, CR or NUL, or not UTF-8, in the id", path,
                                    row + 1);
            len += step;
        }
        if (len == 0)
            return dr_error_set(err, DR_ERR_FORMAT, "%s: line %zu: empty id", path, row + 1);
        b->ids[at + len] = '\0';
        b->id_offsets[row] = at;
        b->id_index[row] = (struct id_entry){.id = b->ids + at, .len = len, .row = (uint32_t)row};
        at += len + 1;
    }
    b->id_offsets[b->n_items] = at;
    qsort(b->id_index, b->n_items, sizeof *b->id_index, cmp_id_entry);
    for (size_t i = 1; i < b->n_items; i++) {
        const struct id_entry *x = &b->id_index[i - 1], *y = &b->id_index[i];
        if (cmp_id_entry(x, y) == 0) {
            uint32_t lo = x->row < y->row ? x->row : y->row, hi = x->row ^ y->row ^ lo;
            return dr_error_set(err, DR_ERR_FORMAT, "%s: duplicate id \"%.60s\" on lines %u and %u",
                                path, x->id, lo + 1, hi + 1);
        }
    }
    return DR_OK;
}

static enum dr_status load_vectors(struct dr_bundle *b, const char *path, struct dr_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "n_items %zu x item_dim %zu x 4", b->n_items, b->dim);
    enum dr_status st = map_file(path, b->n_items * b->dim * sizeof(float), what, &b->vectors, err);
    if (st != DR_OK)
        return st;
    const float *v = b->vectors.addr;
    for (size_t r = 0; r < b->n_items; r++) {
        for (size_t j = 0; j < b->dim; j++) {
            if (!isfinite(v[r * b->dim + j]))
                return dr_error_set(err, DR_ERR_FORMAT, "%s: row %zu (%s) has a non-finite value",
                                    path, r, b->ids + b->id_offsets[r]);
        }
    }
    return DR_OK;
}

static enum dr_status load_categories(struct dr_bundle *b, const char *path, const cJSON *names,
                                      struct dr_error *err)
{
    enum dr_status st =
        map_file(path, b->n_items * sizeof(uint32_t), "n_items x 4", &b->categories, err);
    if (st != DR_OK)
        return st;
    const uint32_t *cat = b->categories.addr;
    if (names) {
        b->n_categories = (size_t)cJSON_GetArraySize(names);
        b->category_names = calloc(b->n_categories + 1, sizeof *b->category_names);
        if (!b->category_names)
            return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
        size_t i = 0;
        const cJSON *name;
        cJSON_ArrayForEach(name, names)
        {
            if (!cJSON_IsString(name))
                return dr_error_set(err, DR_ERR_FORMAT,
                                    "manifest.json: items.category_names[%zu] must be a string", i);
            b->category_names[i++] = name->valuestring;
        }
    } else {
        for (size_t r = 0; r < b->n_items; r++)
            b->n_categories =
                (size_t)cat[r] + 1 > b->n_categories ? (size_t)cat[r] + 1 : b->n_categories;
    }
    for (size_t r = 0; r < b->n_items; r++) {
        if (cat[r] >= b->n_categories)
            return dr_error_set(err, DR_ERR_FORMAT,
                                "%s: row %zu has category %u, there are %zu category_names", path,
                                r, cat[r], b->n_categories);
    }
    return DR_OK;
}

/* The text projection: W_text, item_dim x text_dim (torch's Linear weight layout), mapped.
 * Its text_dim must be the text encoder's output size: the projection was trained on that
 * encoder's vectors, so any other encoder's would be projected to nonsense.  The size comes
 * from the encoder's manifest (projection_dim, else hidden_size: bert.h); its weights are
 * not loaded here. */
static enum dr_status load_text_projection(struct dr_bundle *b, const char *path,
                                           struct dr_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "item_dim %zu x text_dim %zu x 4", b->dim, b->text_dim);
    enum dr_status st =
        map_file(path, b->dim * b->text_dim * sizeof(float), what, &b->text_proj, err);
    if (st != DR_OK)
        return st;
    const float *w = b->text_proj.addr;
    for (size_t i = 0; i < b->dim * b->text_dim; i++) {
        if (!isfinite(w[i]))
            return dr_error_set(err, DR_ERR_FORMAT, "%s: row %zu has a non-finite value", path,
                                i / b->text_dim);
    }
    struct dr_model_file *mf = NULL;
    if ((st = dr_model_file_open(b->text_path, &mf, err)) != DR_OK) {
        prefix_error(err, b->text_path, ": ");
        return st;
    }
    int64_t hidden = 0, proj = 0;
    if (!(st = dr_model_file_config_int(mf, "hidden_size", 1, MAX_TEXT_DIM, &hidden, err)))
        st = dr_model_file_config_int_or(mf, "projection_dim", 0, MAX_TEXT_DIM, 0, &proj, err);
    dr_model_file_destroy(mf);
    if (st != DR_OK) {
        prefix_error(err, b->text_path, ": ");
        return st;
    }
    size_t out_dim = proj > 0 ? (size_t)proj : (size_t)hidden;
    if (out_dim != b->text_dim)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: text_projection.text_dim is %zu, the text encoder "
                            "(%s) outputs %zu",
                            b->text_dim, b->text_path, out_dim);
    return DR_OK;
}

/* preprocessing.text.max_len, when given: the token count item text was cut to at export. */
static enum dr_status load_text_max_len(struct dr_bundle *b, const cJSON *pre, struct dr_error *err)
{
    const cJSON *text = get_item(pre, "text");
    if (!text)
        return DR_OK;
    if (!cJSON_IsObject(text))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: preprocessing.text must be an object");
    if (!get_item(text, "max_len"))
        return DR_OK;
    return need_uint(text, "max_len", "preprocessing.text.", 2, MAX_TEXT_LEN, &b->text_max_len,
                     err);
}

static enum dr_status load_interest(struct dr_bundle *b, const char *path,
                                    const struct dr_model_opts *opts, const cJSON *pre,
                                    struct dr_error *err)
{
    enum dr_status st = dr_interest_load(path, opts, &b->interest, err);
    if (st != DR_OK) {
        prefix_error(err, path, ": ");
        return st;
    }
    size_t dim = dr_interest_item_dim(b->interest);
    if (dim != b->dim)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s: the interest model's item_dim is %zu, the bundle's item_dim "
                            "(manifest.json, vectors.f32) is %zu",
                            path, dim, b->dim);
    const cJSON *me = get_item(pre, "max_events");
    size_t max_events = dr_interest_max_events(b->interest);
    if (me && (!cJSON_IsNumber(me) || me->valuedouble != (double)max_events))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: preprocessing.max_events differs from the interest "
                            "model's max_events (%zu)",
                            max_events);
    return DR_OK;
}

static enum dr_status load_index(struct dr_bundle *b, const char *path, struct dr_error *err)
{
    enum dr_status st = dr_ann_load(path, NULL, &b->index, err);
    if (st != DR_OK)
        return st;
    struct dr_ann_info info;
    dr_ann_get_info(b->index, &info);
    if (info.n != b->n_items || info.dim != b->dim)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s: %zu items of dim %zu, the bundle has %zu items of dim %zu", path,
                            info.n, info.dim, b->n_items, b->dim);
    if (info.metric != DR_ANN_METRIC_IP)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: metric %s, the bundle scores with ip", path,
                            dr_ann_metric_name(info.metric));
    return DR_OK;
}

/* ---- load ----------------------------------------------------------------------------------- */

static enum dr_status check_header(struct dr_bundle *b, struct dr_error *err)
{
    const cJSON *m = b->manifest;
    const cJSON *format = get_item(m, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, DR_BUNDLE_FORMAT) != 0)
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: format must be \"%s\"",
                            DR_BUNDLE_FORMAT);
    const cJSON *fv = get_item(m, "format_version");
    if (!cJSON_IsNumber(fv) || fv->valuedouble != (double)DR_BUNDLE_FORMAT_VERSION)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: format_version must be %d (the one this build reads)",
                            DR_BUNDLE_FORMAT_VERSION);
    const char *created = NULL, *scoring = NULL;
    enum dr_status st;
    if ((st = need_string(m, "name", "", &b->name, err)) ||
        (st = need_string(m, "version", "", &b->version, err)) ||
        (st = need_string(m, "created", "", &created, err)) ||
        (st = need_string(m, "scoring", "", &scoring, err)) ||
        (st = need_uint(m, "n_items", "", 1, UINT32_MAX, &b->n_items, err)) ||
        (st = need_uint(m, "item_dim", "", 1, MAX_ITEM_DIM, &b->dim, err)))
        return st;
    if (strcmp(scoring, "dot") != 0)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: scoring \"%.40s\", expected \"dot\"", scoring);
    const cJSON *types = get_item(m, "event_types");
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) < 1)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: event_types must be a non-empty array of names");
    b->n_event_types = (size_t)cJSON_GetArraySize(types);
    b->event_types = calloc(b->n_event_types, sizeof *b->event_types);
    if (!b->event_types)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, types)
    {
        if (!cJSON_IsString(t))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: event_types[%zu] must be a string", i);
        b->event_types[i++] = t->valuestring;
    }
    return DR_OK;
}

static enum dr_status load(struct dr_bundle *b, const struct dr_model_opts *opts,
                           struct dr_error *err)
{
    char *manifest_path = dr_path_join(b->dir, "manifest.json");
    if (!manifest_path)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    char *text = NULL;
    size_t size = 0;
    enum dr_status st =
        dr_read_small_file(manifest_path, DR_BUNDLE_MAX_MANIFEST, &text, &size, err);
    free(manifest_path);
    if (st != DR_OK)
        return st;
    const char *end = NULL;
    /* size + 1: cJSON's end check wants the terminating NUL inside the length */
    b->manifest = cJSON_ParseWithLengthOpts(text, size + 1, &end, true);
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!cJSON_IsObject(b->manifest))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "%s/manifest.json: not a JSON object (error near byte %zu)", b->dir,
                            at);
    if ((st = check_header(b, err)) != DR_OK)
        return st;

    const cJSON *m = b->manifest, *items = NULL, *index = NULL, *sums = NULL, *pre = NULL,
                *training = NULL, *clip = NULL;
    const char *interest_rel = NULL, *ids_rel = NULL, *vectors_rel = NULL, *index_rel = NULL,
               *metric = NULL, *cats_rel = NULL, *text_rel = NULL, *proj_rel = NULL;
    if ((st = need_object(m, "items", &items, err)) ||
        (st = need_object(m, "index", &index, err)) ||
        (st = need_object(m, "sha256", &sums, err)) ||
        (st = need_object(m, "preprocessing", &pre, err)) ||
        (st = need_object(m, "training", &training, err)) ||
        (st = need_string(m, "interest", "", &interest_rel, err)) ||
        (st = need_string(items, "ids", "items.", &ids_rel, err)) ||
        (st = need_string(items, "vectors", "items.", &vectors_rel, err)) ||
        (st = need_string(index, "file", "index.", &index_rel, err)) ||
        (st = need_string(index, "metric", "index.", &metric, err)) ||
        (st = need_uint(index, "ef_search", "index.", 1, 1u << 20, &b->ef_search, err)))
        return st;
    if (strcmp(metric, "ip") != 0)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: index.metric \"%.40s\", expected "
                            "\"ip\" (scores are dot products)",
                            metric);
    const cJSON *cats = get_item(items, "categories"), *names = get_item(items, "category_names");
    if (cats && (st = need_string(items, "categories", "items.", &cats_rel, err)))
        return st;
    if (names && (!cJSON_IsArray(names) || !cats))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: items.category_names must be an array, and only "
                            "with items.categories");
    if (get_item(m, "text_encoder") && (st = need_string(m, "text_encoder", "", &text_rel, err)))
        return st;
    const cJSON *proj = get_item(m, "text_projection");
    if (proj) {
        if (!cJSON_IsObject(proj))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: text_projection must be an object");
        if (!text_rel)
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: text_projection without a text_encoder (the "
                                "projection maps that encoder's vectors)");
        if ((st = need_string(proj, "file", "text_projection.", &proj_rel, err)) ||
            (st = need_uint(proj, "text_dim", "text_projection.", 1, MAX_TEXT_DIM, &b->text_dim,
                            err)))
            return st;
        const cJSON *norm = get_item(proj, "normalize_input");
        if (norm && !cJSON_IsBool(norm))
            return dr_error_set(err, DR_ERR_FORMAT,
                                "manifest.json: text_projection.normalize_input must be a boolean");
        b->text_proj_normalize = !norm || cJSON_IsTrue(norm);
    }
    if ((st = load_text_max_len(b, pre, err)) != DR_OK)
        return st;
    const cJSON *unit = get_item(pre, "time_unit");
    if (unit && !(cJSON_IsString(unit) && (strcmp(unit->valuestring, "seconds") == 0 ||
                                           strcmp(unit->valuestring, "steps") == 0)))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: preprocessing.time_unit must be \"seconds\" or "
                            "\"steps\"");
    b->time_in_steps = unit && strcmp(unit->valuestring, "steps") == 0;
    clip = get_item(pre, "clip");
    if (clip && !cJSON_IsObject(clip))
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: preprocessing.clip must be an object");
    if ((st = opt_bound(clip, "dwell_s", &b->clip_dwell_s, err)) ||
        (st = opt_bound(clip, "amount", &b->clip_amount, err)))
        return st;

    const char *required[] = {ids_rel, vectors_rel, index_rel, cats_rel, proj_rel};
    if ((st = check_checksums(b, sums, required, 5, err)) != DR_OK)
        return st;

    char *interest_path = NULL, *ids_path = NULL, *vectors_path = NULL, *index_path = NULL,
         *cats_path = NULL, *proj_path = NULL;
    if (!(st = resolve(b, "interest", interest_rel, true, &interest_path, err)) &&
        !(st = resolve(b, "items.ids", ids_rel, false, &ids_path, err)) &&
        !(st = resolve(b, "items.vectors", vectors_rel, false, &vectors_path, err)) &&
        !(st = resolve(b, "index.file", index_rel, false, &index_path, err)) &&
        !(st = cats_rel ? resolve(b, "items.categories", cats_rel, false, &cats_path, err)
                        : DR_OK) &&
        !(st = text_rel ? resolve(b, "text_encoder", text_rel, true, &b->text_path, err) : DR_OK) &&
        !(st = proj_rel ? resolve(b, "text_projection.file", proj_rel, false, &proj_path, err)
                        : DR_OK) &&
        !(st = load_ids(b, ids_path, err)) && !(st = load_vectors(b, vectors_path, err)) &&
        !(st = cats_path ? load_categories(b, cats_path, names, err) : DR_OK) &&
        !(st = proj_path ? load_text_projection(b, proj_path, err) : DR_OK) &&
        !(st = load_interest(b, interest_path, opts, pre, err)))
        st = load_index(b, index_path, err);
    free(interest_path);
    free(ids_path);
    free(vectors_path);
    free(index_path);
    free(cats_path);
    free(proj_path);
    return st;
}

enum dr_status dr_bundle_load(const char *dir, const struct dr_model_opts *opts,
                              struct dr_bundle **out, struct dr_error *err)
{
    struct dr_bundle *b = calloc(1, sizeof *b);
    if (!b)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    enum dr_status st;
    b->kern = opts && opts->kernels ? opts->kernels : dr_kernels_get();
    b->dir = strdup(dir);
    if (!b->dir) {
        st = dr_error_set(err, DR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    b->real_dir = realpath(dir, NULL);
    if (!b->real_dir) {
        st = dr_error_set(err, DR_ERR_IO, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((st = load(b, opts, err)) != DR_OK) {
        /* name the bundle in the manifest's messages ("DIR/manifest.json: ...") */
        if (err && strncmp(err->msg, "manifest.json:", 14) == 0)
            prefix_error(err, dir, "/");
        goto fail;
    }
    *out = b;
    return DR_OK;
fail:
    dr_bundle_destroy(b);
    return st;
}

void dr_bundle_destroy(struct dr_bundle *b)
{
    if (!b)
        return;
    dr_ann_destroy(b->index);
    dr_interest_destroy(b->interest);
    dr_unmap_file(&b->text_proj);
    dr_unmap_file(&b->categories);
    dr_unmap_file(&b->vectors);
    free(b->category_names);
    free(b->id_index);
    free(b->id_offsets);
    free(b->ids);
    free(b->event_types);
    free(b->text_path);
    cJSON_Delete(b->manifest);
    free(b->real_dir);
    free(b->dir);
    free(b);
}

/* ---- accessors ------------------------------------------------------------------------------ */

const char *dr_bundle_name(const struct dr_bundle *b)
{
    return b->name;
}

const char *dr_bundle_version(const struct dr_bundle *b)
{
    return b->version;
}

const char *dr_bundle_text_encoder_path(const struct dr_bundle *b)
{
    return b->text_path;
}

const float *dr_bundle_text_projection(const struct dr_bundle *b, size_t *text_dim)
{
    if (text_dim)
        *text_dim = b->text_dim;
    return b->text_proj.addr;
}

bool dr_bundle_text_projection_normalizes(const struct dr_bundle *b)
{
    return b->text_proj.addr && b->text_proj_normalize;
}

size_t dr_bundle_text_max_len(const struct dr_bundle *b)
{
    return b->text_max_len;
}

bool dr_bundle_time_in_steps(const struct dr_bundle *b)
{
    return b->time_in_steps;
}

size_t dr_bundle_n_items(const struct dr_bundle *b)
{
    return b->n_items;
}

size_t dr_bundle_item_dim(const struct dr_bundle *b)
{
    return b->dim;
}

size_t dr_bundle_ef_search(const struct dr_bundle *b)
{
    return b->ef_search;
}

const float *dr_bundle_item_vectors(const struct dr_bundle *b)
{
    return b->vectors.addr;
}

const float *dr_bundle_item_vector(const struct dr_bundle *b, size_t row)
{
    DR_ASSERT(row < b->n_items);
    return (const float *)b->vectors.addr + row * b->dim;
}

const char *dr_bundle_item_id(const struct dr_bundle *b, size_t row, size_t *len)
{
    DR_ASSERT(row < b->n_items);
    if (len)
        *len = b->id_offsets[row + 1] - b->id_offsets[row] - 1;
    return b->ids + b->id_offsets[row];
}

bool dr_bundle_item_row(const struct dr_bundle *b, const char *id, size_t len, size_t *row)
{
    struct id_entry key = {.id = id, .len = len};
    const struct id_entry *hit =
        bsearch(&key, b->id_index, b->n_items, sizeof *b->id_index, cmp_id_entry);
    if (!hit)
        return false;
    *row = hit->row;
    return true;
}

const struct dr_interest *dr_bundle_interest(const struct dr_bundle *b)
{
    return b->interest;
}

const struct dr_ann_index *dr_bundle_index(const struct dr_bundle *b)
{
    return b->index;
}

size_t dr_bundle_n_event_types(const struct dr_bundle *b)
{
    return b->n_event_types;
}

const char *dr_bundle_event_type_name(const struct dr_bundle *b, size_t type)
{
    DR_ASSERT(type < b->n_event_types);
    return b->event_types[type];
}

bool dr_bundle_event_type(const struct dr_bundle *b, const char *name, int32_t *type)
{
    for (size_t i = 0; i < b->n_event_types; i++) {
        if (strcmp(b->event_types[i], name) == 0) {
            *type = (int32_t)i;
            return true;
        }
    }
    return false;
}

float dr_bundle_clip_dwell_s(const struct dr_bundle *b)
{
    return b->clip_dwell_s;
}

float dr_bundle_clip_amount(const struct dr_bundle *b)
{
    return b->clip_amount;
}

bool dr_bundle_has_categories(const struct dr_bundle *b)
{
    return b->categories.addr != NULL;
}

size_t dr_bundle_n_categories(const struct dr_bundle *b)
{
    return b->n_categories;
}

uint32_t dr_bundle_item_category(const struct dr_bundle *b, size_t row)
{
    DR_ASSERT(row < b->n_items);
    return b->categories.addr ? ((const uint32_t *)b->categories.addr)[row] : 0;
}

const char *dr_bundle_category_name(const struct dr_bundle *b, size_t category)
{
    DR_ASSERT(category < b->n_categories || !b->category_names);
    return b->category_names ? b->category_names[category] : NULL;
}

/* ---- scoring -------------------------------------------------------------------------------- */

enum dr_status dr_bundle_score_exact(const struct dr_bundle *b, const float *user_vecs,
                                     size_t n_users, size_t ld_users, size_t row_begin,
                                     size_t row_end, float *scores, size_t ld_scores)
{
    if (row_begin > row_end || row_end > b->n_items || ld_users < b->dim ||
        ld_scores < row_end - row_begin || (n_users && (!user_vecs || !scores)))
        return DR_ERR_INVALID_ARG;
    if (n_users == 0 || row_begin == row_end)
        return DR_OK;
    /* Items in blocks of about 256 KiB, so each block stays in L2 while every user's rows
     * pass over it (the kernel walks the items once per few users).  Each score is one
     * per-element dot product in the kernel, so blocking does not change any value. */
    size_t block = SCORE_BLOCK_BYTES / (b->dim * sizeof(float));
    block = block ? block : 1;
    for (size_t r = row_begin; r < row_end; r += block) {
        size_t n = row_end - r < block ? row_end - r : block;
        b->kern->gemm_f32_nt(n_users, n, b->dim, user_vecs, ld_users, dr_bundle_item_vector(b, r),
                             b->dim, NULL, scores + (r - row_begin), ld_scores);
    }
    return DR_OK;
}
