/* ann_internal.h: the index file format and what the build, file and search code share.
 *
 * File format, version 1 (little-endian; every section starts on a 64-byte boundary):
 *
 *   header (DR_ANN_HEADER_BYTES, struct dr_ann_header below)
 *   nodes        n records of node_stride bytes, then 8 zero bytes (the link decoder reads
 *                8 bytes at a time).  Record i, level 0 of item i, interleaved so that one
 *                visit touches one record:
 *                  [0, dim)            int8 code, values in [-127, 127]
 *                  off_scale  f32      code scale (per-vector scale mode only)
 *                  off_bias   f32      -|x|^2 / 2 (L2 only)
 *                  off_count  u8       number of level-0 links (<= m0)
 *                  off_links  m0 ids of id_bits bits each, packed LSB first
 *   upper_index  n_upper + 1 entries {u32 node, u32 first}: the nodes above level 0 in id
 *                order; node's level-l links (l >= 1) are upper record first + l - 1, its
 *                level is the next entry's first - first (the last entry is a sentinel)
 *   upper_links  records of upper_stride bytes: u8 count (<= m), then m packed ids; 8 zero
 *                bytes after the last
 *   dim_scales   dim f32 (per-dimension scale mode only)
 *   categories   n u32, then n_categories u32 item counts (optional)
 *   rerank       n x dim f16 or f32 (optional): the vectors (normalised for cosine)
 *
 * The SHA-256 covers the whole file with the header's sha256 field zeroed.  Nothing in the
 * file depends on the time, the machine or the number of build threads.
 */
#ifndef DR_ANN_INTERNAL_H
#define DR_ANN_INTERNAL_H

#include "ann.h"
#include "kernels.h"

#include <string.h>

#define DR_ANN_MAGIC        "DRANNIDX"
#define DR_ANN_VERSION      1u
#define DR_ANN_HEADER_BYTES 512u
#define DR_ANN_NO_OFFSET    0xffffffffu
#define DR_ANN_MAX_LEVEL    32u
#define DR_ANN_LINK_PAD     8u

enum dr_ann_section {
    DR_ANN_SEC_NODES = 0,
    DR_ANN_SEC_UPPER_INDEX,
    DR_ANN_SEC_UPPER_LINKS,
    DR_ANN_SEC_DIM_SCALES,
    DR_ANN_SEC_CATEGORIES,
    DR_ANN_SEC_RERANK,
    DR_ANN_SEC_COUNT
};

struct dr_ann_section_ref {
    uint64_t offset, size_bytes; /* size 0: absent */
};

struct dr_ann_header {
    char magic[8];
    uint32_t version, header_bytes;
    uint64_t file_bytes;
    uint32_t metric, scale_mode, rerank_kind, dim;
    uint64_t n;
    uint32_t m, m0, ef_construction, id_bits;
    uint32_t max_level, entry, node_stride, upper_stride;
    uint32_t off_scale, off_bias, off_count, off_links; /* DR_ANN_NO_OFFSET: absent */
    uint64_t n_upper, n_upper_records;
    uint32_t n_categories, reserved0;
    uint64_t seed;
    float norm_max; /* largest item norm (the inner-product lift's R) */
    uint32_t reserved1;
    struct dr_ann_section_ref sections[DR_ANN_SEC_COUNT];
    uint8_t sha256[32];
};
_Static_assert(sizeof(struct dr_ann_header) <= DR_ANN_HEADER_BYTES, "header fits");

struct dr_ann_upper_entry {
    uint32_t node, first;
};

struct dr_ann_index {
    const uint8_t *base; /* the file image */
    size_t size_bytes;
    struct dr_ann_header hdr; /* a copy, aligned */
    const uint8_t *nodes;
    const struct dr_ann_upper_entry *upper_index; /* n_upper + 1 */
    const uint8_t *upper_links;
    const float *dim_scales;                      /* or NULL */
    const uint32_t *categories, *category_counts; /* or NULL */
    const void *rerank;                           /* or NULL */
    const struct dr_kernels *kern;
    /* ownership of base: exactly one of these */
    void *owned;      /* malloc'd (built in memory) */
    size_t map_bytes; /* mmap'd when non-zero */
};

/* ---- packed links ------------------------------------------------------------------------- */

static inline uint32_t dr__ann_id_bits(size_t n)
{
    uint32_t bits = 1;
    while (bits < 32 && ((size_t)1 << bits) < n)
        bits++;
    return bits;
}

/* Reads id j of a list packed at p (8 readable bytes past the list's end). */
static inline uint32_t dr__ann_link_get(const uint8_t *p, uint32_t bits, size_t j)
{
    size_t bit = j * bits;
    uint64_t word;
    memcpy(&word, p + (bit >> 3), 8);
    return (uint32_t)((word >> (bit & 7)) & ((1ull << bits) - 1));
}

static inline void dr__ann_link_put(uint8_t *p, uint32_t bits, size_t j, uint32_t id)
{
    size_t bit = j * bits;
    for (uint32_t b = 0; b < bits; b++, bit++) {
        if ((id >> b) & 1u)
            p[bit >> 3] = (uint8_t)(p[bit >> 3] | (1u << (bit & 7)));
    }
}

static inline size_t dr__ann_links_bytes(uint32_t count, uint32_t bits)
{
    return ((size_t)count * bits + 7) / 8;
}

/* Level-0 record layout for the given shape; returns the stride. */
size_t dr__ann_node_layout(struct dr_ann_header *hdr);

/* Checks the header and the sections against the image size; fills the section pointers. */
enum dr_status dr__ann_open_image(struct dr_ann_index *index, const uint8_t *base,
                                  size_t size_bytes, bool verify, struct dr_error *err);

/* SHA-256 of the image with the header's checksum field zeroed. */
void dr__ann_image_sha256(const uint8_t *base, size_t size_bytes, uint8_t out[32]);

/* IEEE half <-> float, round to nearest even (the re-rank tier). */
uint16_t dr__ann_f32_to_f16(float x);
float dr__ann_f16_to_f32(uint16_t h);

#endif /* DR_ANN_INTERNAL_H */
