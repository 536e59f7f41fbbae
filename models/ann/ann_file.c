/* ann_file.c: the index file: layout, checks, checksum, save and read-only mmap load.
 *
 * The file image is the index: a built index holds it in one malloc'd buffer, a loaded one
 * maps it PROT_READ / MAP_SHARED, and the search reads the same bytes either way.  Loading
 * checks the header against the file size (every section inside the file, aligned, in order
 * and of the size the shape implies), then by default the SHA-256 and every link (count
 * within bounds, id < n), so a corrupt file is refused with a message naming what is wrong
 * instead of being walked.  Nothing here is on the request path.
 */
#include "ann_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file format is little-endian");

const char *dr_ann_metric_name(enum dr_ann_metric metric)
{
    switch (metric) {
    case DR_ANN_METRIC_IP:
        return "ip";
    case DR_ANN_METRIC_COSINE:
        return "cosine";
    case DR_ANN_METRIC_L2:
        return "l2";
    }
    return "unknown";
}

bool dr_ann_metric_parse(const char *name, enum dr_ann_metric *out)
{
    static const enum dr_ann_metric all[] = {DR_ANN_METRIC_IP, DR_ANN_METRIC_COSINE,
                                             DR_ANN_METRIC_L2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, dr_ann_metric_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

size_t dr__ann_node_layout(struct dr_ann_header *hdr)
{
    size_t off = hdr->dim;
    hdr->off_scale = hdr->off_bias = DR_ANN_NO_OFFSET;
    if (hdr->scale_mode == DR_ANN_SCALE_PER_VECTOR) {
        hdr->off_scale = (uint32_t)off;
        off += 4;
    }
    if (hdr->metric == DR_ANN_METRIC_L2) {
        hdr->off_bias = (uint32_t)off;
        off += 4;
    }
    hdr->off_count = (uint32_t)off;
    off += 1;
    hdr->off_links = (uint32_t)off;
    off += dr__ann_links_bytes(hdr->m0, hdr->id_bits);
    hdr->node_stride = (uint32_t)dr_round_up(off, 4);
    hdr->upper_stride = (uint32_t)(1 + dr__ann_links_bytes(hdr->m, hdr->id_bits));
    return hdr->node_stride;
}

void dr__ann_image_sha256(const uint8_t *base, size_t size_bytes, uint8_t out[32])
{
    struct dr_ann_header hdr;
    uint8_t head[DR_ANN_HEADER_BYTES];
    memcpy(head, base, DR_ANN_HEADER_BYTES);
    memset(head + offsetof(struct dr_ann_header, sha256), 0, sizeof hdr.sha256);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    /* OpenSSL fails here only without memory: report an all-zero sum, which never verifies */
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, head, DR_ANN_HEADER_BYTES) ||
        !EVP_DigestUpdate(ctx, base + DR_ANN_HEADER_BYTES, size_bytes - DR_ANN_HEADER_BYTES) ||
        !EVP_DigestFinal_ex(ctx, out, &len))
        memset(out, 0, 32);
    EVP_MD_CTX_free(ctx);
}

uint16_t dr__ann_f32_to_f16(float x)
{
    uint32_t f;
    memcpy(&f, &x, 4);
    uint32_t sign = (f >> 16) & 0x8000u;
    int32_t exp = (int32_t)((f >> 23) & 0xffu) - 127 + 15;
    uint32_t mant = f & 0x7fffffu;
    if (((f >> 23) & 0xffu) == 0xffu) /* inf, nan */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
        half++; /* may carry into the exponent: still correct, up to inf */
    return (uint16_t)(sign | half);
}

float dr__ann_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, f;
    if (exp == 0) {
        if (mant == 0) {
            f = sign;
        } else {
            exp = 127 - 15 + 1;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                exp--;
            }
            f = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        f = sign | 0x7f800000u | (mant << 13);
    } else {
        f = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float x;
    memcpy(&x, &f, 4);
    return x;
}

static const char *section_name(int s)
{
    static const char *names[DR_ANN_SEC_COUNT] = {"nodes",      "upper_index", "upper_links",
                                                  "dim_scales", "categories",  "rerank"};
    return names[s];
}

/* Every link and count in bounds, the upper index in order. */
static enum dr_status check_links(const struct dr_ann_index *ix, struct dr_error *err)
{
    const struct dr_ann_header *h = &ix->hdr;
    for (uint64_t i = 0; i < h->n; i++) {
        const uint8_t *rec = ix->nodes + i * h->node_stride;
        uint32_t cnt = rec[h->off_count];
        if (cnt > h->m0)
            return dr_error_set(err, DR_ERR_FORMAT, "node %llu: %u links, at most m0=%u",
                                (unsigned long long)i, cnt, h->m0);
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t id = dr__ann_link_get(rec + h->off_links, h->id_bits, j);
            if (id >= h->n)
                return dr_error_set(err, DR_ERR_FORMAT, "node %llu: link %u to %u, n=%llu",
                                    (unsigned long long)i, j, id, (unsigned long long)h->n);
        }
    }
    for (uint64_t u = 0; u < h->n_upper; u++) {
        const struct dr_ann_upper_entry *e = &ix->upper_index[u];
        uint64_t level = (uint64_t)e[1].first - e->first;
        if (e->node >= h->n || e[1].node <= e->node || e[1].first <= e->first ||
            level > h->max_level || e[1].first > h->n_upper_records)
            return dr_error_set(err, DR_ERR_FORMAT, "upper_index entry %llu out of order",
                                (unsigned long long)u);
        for (uint32_t r = e->first; r < e[1].first; r++) {
            const uint8_t *rec = ix->upper_links + (size_t)r * h->upper_stride;
            if (rec[0] > h->m)
                return dr_error_set(err, DR_ERR_FORMAT, "upper record %u: %u links, m=%u", r,
                                    rec[0], h->m);
            for (uint32_t j = 0; j < rec[0]; j++) {
                uint32_t id = dr__ann_link_get(rec + 1, h->id_bits, j);
                if (id >= h->n)
                    return dr_error_set(err, DR_ERR_FORMAT, "upper record %u: link to %u", r, id);
            }
        }
    }
    const struct dr_ann_upper_entry *last = &ix->upper_index[h->n_upper];
    if (last->node != h->n || last->first != h->n_upper_records)
        return dr_error_set(err, DR_ERR_FORMAT, "upper_index sentinel");
    if (ix->categories) {
        for (uint64_t i = 0; i < h->n; i++) {
            if (ix->categories[i] >= h->n_categories)
                return dr_error_set(err, DR_ERR_FORMAT, "item %llu: category %u of %u",
                                    (unsigned long long)i, ix->categories[i], h->n_categories);
        }
    }
    return DR_OK;
}

enum dr_status dr__ann_open_image(struct dr_ann_index *ix, const uint8_t *base, size_t size_bytes,
                                  bool verify, struct dr_error *err)
{
    struct dr_ann_header h;
    if (size_bytes < DR_ANN_HEADER_BYTES)
        return dr_error_set(err, DR_ERR_FORMAT, "%zu bytes: shorter than the %u-byte header",
                            size_bytes, DR_ANN_HEADER_BYTES);
    memcpy(&h, base, sizeof h);
    if (memcmp(h.magic, DR_ANN_MAGIC, 8) != 0)
        return dr_error_set(err, DR_ERR_FORMAT, "bad magic: not a driftrec index");
    if (h.version != DR_ANN_VERSION)
        return dr_error_set(err, DR_ERR_FORMAT, "version %u, this build reads %u", h.version,
                            DR_ANN_VERSION);
    if (h.header_bytes != DR_ANN_HEADER_BYTES)
        return dr_error_set(err, DR_ERR_FORMAT, "header_bytes %u", h.header_bytes);
    if (h.file_bytes != size_bytes)
        return dr_error_set(err, DR_ERR_FORMAT, "file is %zu bytes, header says %llu (truncated?)",
                            size_bytes, (unsigned long long)h.file_bytes);
    if (h.metric > DR_ANN_METRIC_L2 || h.scale_mode > DR_ANN_SCALE_PER_DIM ||
        h.rerank_kind > DR_ANN_RERANK_F32)
        return dr_error_set(err, DR_ERR_FORMAT, "metric %u / scale %u / rerank %u unknown",
                            h.metric, h.scale_mode, h.rerank_kind);
    if (h.n == 0 || h.n >= UINT32_MAX || h.dim == 0 || h.dim > 32768 || h.m < 2 || h.m0 > 255 ||
        h.m > h.m0 || h.id_bits != dr__ann_id_bits(h.n) || h.entry >= h.n ||
        h.max_level >= DR_ANN_MAX_LEVEL || h.n_upper > h.n ||
        h.n_upper_records > h.n_upper * DR_ANN_MAX_LEVEL)
        return dr_error_set(
            err, DR_ERR_FORMAT, "shape: n=%llu dim=%u m=%u m0=%u id_bits=%u entry=%u max_level=%u",
            (unsigned long long)h.n, h.dim, h.m, h.m0, h.id_bits, h.entry, h.max_level);
    struct dr_ann_header expect = h;
    dr__ann_node_layout(&expect);
    if (expect.node_stride != h.node_stride || expect.upper_stride != h.upper_stride ||
        expect.off_scale != h.off_scale || expect.off_bias != h.off_bias ||
        expect.off_count != h.off_count || expect.off_links != h.off_links)
        return dr_error_set(
            err, DR_ERR_FORMAT,
            "record layout: stride %u (expected %u) or field offsets do not match the shape",
            h.node_stride, expect.node_stride);
    size_t elem_rr = h.rerank_kind == DR_ANN_RERANK_F16 ? 2 : (h.rerank_kind ? 4 : 0);
    uint64_t want[DR_ANN_SEC_COUNT] = {
        [DR_ANN_SEC_NODES] = h.n * h.node_stride + DR_ANN_LINK_PAD,
        [DR_ANN_SEC_UPPER_INDEX] = (h.n_upper + 1) * sizeof(struct dr_ann_upper_entry),
        [DR_ANN_SEC_UPPER_LINKS] = h.n_upper_records * h.upper_stride + DR_ANN_LINK_PAD,
        [DR_ANN_SEC_DIM_SCALES] = h.scale_mode == DR_ANN_SCALE_PER_DIM ? h.dim * 4ull : 0,
        [DR_ANN_SEC_CATEGORIES] = h.n_categories ? (h.n + h.n_categories) * 4ull : 0,
        [DR_ANN_SEC_RERANK] = h.n * h.dim * elem_rr,
    };
    uint64_t prev_end = DR_ANN_HEADER_BYTES;
    for (int s = 0; s < DR_ANN_SEC_COUNT; s++) {
        const struct dr_ann_section_ref *r = &h.sections[s];
        if (r->size_bytes != want[s])
            return dr_error_set(err, DR_ERR_FORMAT, "section %s: %llu bytes, expected %llu",
                                section_name(s), (unsigned long long)r->size_bytes,
                                (unsigned long long)want[s]);
        if (r->size_bytes == 0)
            continue;
        if (r->offset % 64 || r->offset < prev_end || r->offset > size_bytes ||
            r->size_bytes > size_bytes - r->offset)
            return dr_error_set(
                err, DR_ERR_FORMAT, "section %s at %llu (+%llu) overlaps or leaves the file",
                section_name(s), (unsigned long long)r->offset, (unsigned long long)r->size_bytes);
        prev_end = r->offset + r->size_bytes;
    }
    if (verify) {
        uint8_t sum[32];
        dr__ann_image_sha256(base, size_bytes, sum);
        if (memcmp(sum, h.sha256, 32) != 0)
            return dr_error_set(err, DR_ERR_FORMAT, "checksum mismatch: the file is corrupt");
    }
    struct dr_ann_index tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.base = base;
    tmp.size_bytes = size_bytes;
    tmp.hdr = h;
    tmp.nodes = base + h.sections[DR_ANN_SEC_NODES].offset;
    tmp.upper_index =
        (const struct dr_ann_upper_entry *)(base + h.sections[DR_ANN_SEC_UPPER_INDEX].offset);
    tmp.upper_links = base + h.sections[DR_ANN_SEC_UPPER_LINKS].offset;
    if (h.sections[DR_ANN_SEC_DIM_SCALES].size_bytes)
        tmp.dim_scales = (const float *)(base + h.sections[DR_ANN_SEC_DIM_SCALES].offset);
    if (h.sections[DR_ANN_SEC_CATEGORIES].size_bytes) {
        tmp.categories = (const uint32_t *)(base + h.sections[DR_ANN_SEC_CATEGORIES].offset);
        tmp.category_counts = tmp.categories + h.n;
    }
    if (h.sections[DR_ANN_SEC_RERANK].size_bytes)
        tmp.rerank = base + h.sections[DR_ANN_SEC_RERANK].offset;
    tmp.kern = dr_kernels_get();
    if (verify) {
        enum dr_status st = check_links(&tmp, err);
        if (st != DR_OK)
            return st;
    }
    *ix = tmp;
    return DR_OK;
}

enum dr_status dr_ann_save(const struct dr_ann_index *index, const char *path, struct dr_error *err)
{
    char tmp_path[4096];
    if ((size_t)snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path) >= sizeof tmp_path)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp_path, "wb");
    if (!f)
        return dr_error_set(err, DR_ERR_IO, "%s: %s", tmp_path, strerror(errno));
    size_t written = fwrite(index->base, 1, index->size_bytes, f);
    int close_rc = fclose(f);
    if (written != index->size_bytes || close_rc != 0) {
        remove(tmp_path);
        return dr_error_set(err, DR_ERR_IO, "%s: write failed", tmp_path);
    }
    if (rename(tmp_path, path) != 0) {
        remove(tmp_path);
        return dr_error_set(err, DR_ERR_IO, "%s: %s", path, strerror(errno));
    }
    return DR_OK;
}

enum dr_status dr_ann_load_buffer(const void *data, size_t size_bytes,
                                  const struct dr_ann_load_opts *opts, struct dr_ann_index **out,
                                  struct dr_error *err)
{
    struct dr_ann_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return dr_error_set(err, DR_ERR_NOMEM, "ann index");
    bool verify = !(opts && opts->skip_verify);
    enum dr_status st = dr__ann_open_image(ix, data, size_bytes, verify, err);
    if (st != DR_OK) {
        free(ix);
        return st;
    }
    *out = ix;
    return DR_OK;
}

enum dr_status dr_ann_load(const char *path, const struct dr_ann_load_opts *opts,
                           struct dr_ann_index **out, struct dr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dr_error_set(err, DR_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st_buf;
    if (fstat(fd, &st_buf) != 0 || st_buf.st_size <= 0) {
        close(fd);
        return dr_error_set(err, DR_ERR_FORMAT, "%s: empty or unreadable", path);
    }
    size_t size = (size_t)st_buf.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return dr_error_set(err, DR_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    struct dr_ann_index *ix = NULL;
    enum dr_status st = dr_ann_load_buffer(map, size, opts, &ix, err);
    if (st != DR_OK) {
        if (err) {
            char msg[sizeof err->msg + 8];
            int len = snprintf(msg, sizeof msg, "%s: %s", path, err->msg);
            (void)len; /* a long path truncates the message, never the status */
            memcpy(err->msg, msg, sizeof err->msg - 1);
            err->msg[sizeof err->msg - 1] = '\0';
        }
        munmap(map, size);
        return st;
    }
    ix->map_bytes = size;
    *out = ix;
    return DR_OK;
}

void dr_ann_destroy(struct dr_ann_index *index)
{
    if (!index)
        return;
    if (index->map_bytes)
        munmap((void *)(uintptr_t)index->base, index->map_bytes);
    free(index->owned);
    free(index);
}

void dr_ann_get_info(const struct dr_ann_index *index, struct dr_ann_info *info)
{
    const struct dr_ann_header *h = &index->hdr;
    memset(info, 0, sizeof *info);
    info->n = h->n;
    info->dim = h->dim;
    info->metric = (enum dr_ann_metric)h->metric;
    info->scale = (enum dr_ann_scale)h->scale_mode;
    info->rerank = (enum dr_ann_rerank)h->rerank_kind;
    info->m = h->m;
    info->m0 = h->m0;
    info->ef_construction = h->ef_construction;
    info->id_bits = h->id_bits;
    info->max_level = h->max_level;
    info->n_categories = h->n_categories;
    info->n_upper = h->n_upper;
    info->node_bytes = h->node_stride;
    info->file_bytes = index->size_bytes;
    info->rerank_bytes = h->sections[DR_ANN_SEC_RERANK].size_bytes;
    uint64_t links = 0;
    for (uint64_t i = 0; i < h->n; i++)
        links += index->nodes[i * h->node_stride + h->off_count];
    info->mean_degree0 = (double)links / (double)h->n;
    memcpy(info->sha256, h->sha256, 32);
}
