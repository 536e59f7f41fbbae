/* distance_ref.c: one query against many vectors (contiguous or through an id list). */
#include "ref.h"

static inline size_t row_of(const uint32_t *ids, size_t i)
{
    return ids ? ids[i] : i;
}

void dr_dot_s8__ref(size_t dim, const int8_t *q, const int8_t *base, size_t ld, const uint32_t *ids,
                    size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const int8_t *v = base + row_of(ids, i) * ld;
        int32_t acc = 0;
        for (size_t d = 0; d < dim; d++)
            acc += (int32_t)q[d] * (int32_t)v[d];
        out[i] = acc;
    }
}

void dr_l2sq_s8__ref(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                     const uint32_t *ids, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const int8_t *v = base + row_of(ids, i) * ld;
        int32_t acc = 0;
        for (size_t d = 0; d < dim; d++) {
            int32_t diff = (int32_t)q[d] - (int32_t)v[d];
            acc += diff * diff;
        }
        out[i] = acc;
    }
}

void dr_dot_f32__ref(size_t dim, const float *q, const float *base, size_t ld, const uint32_t *ids,
                     size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *v = base + row_of(ids, i) * ld;
        float acc = 0.0f;
        for (size_t d = 0; d < dim; d++)
            acc += q[d] * v[d];
        out[i] = acc;
    }
}

void dr_l2sq_f32__ref(size_t dim, const float *q, const float *base, size_t ld, const uint32_t *ids,
                      size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *v = base + row_of(ids, i) * ld;
        float acc = 0.0f;
        for (size_t d = 0; d < dim; d++) {
            float diff = q[d] - v[d];
            acc += diff * diff;
        }
        out[i] = acc;
    }
}
