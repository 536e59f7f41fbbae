/* pack.c: int8 weight quantisation and packing, done once at model load.
 *
 * The packed layout (kernels.h, version 1) is shared by every ISA so a model file packs the
 * same way everywhere; the reference kernels read it through dr_packed_s8_at.  Bytes are
 * stored biased by +64 (u8 in [0, 127]) for x86's unsigned x signed byte multiplies.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

enum dr_status dr_packed_s8_init(struct dr_packed_s8 *packed, size_t n, size_t k, const int8_t *w,
                                 size_t ld_w, struct dr_error *err)
{
    if (n == 0 || k == 0 || !w || ld_w < k)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "pack: bad shape n=%zu k=%zu ld_w=%zu (need n, k > 0, ld_w >= k)", n, k,
                            ld_w);
    for (size_t j = 0; j < n; j++) {
        for (size_t kk = 0; kk < k; kk++) {
            int v = w[j * ld_w + kk];
            if (v < DR_S8_WEIGHT_MIN || v > DR_S8_WEIGHT_MAX)
                return dr_error_set(err, DR_ERR_INVALID_ARG,
                                    "pack: weight [%zu][%zu] = %d is outside [%d, %d], the "
                                    "int8 scheme's weight range",
                                    j, kk, v, DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX);
        }
    }

    struct dr_packed_s8 p = {.n = n, .k = k};
    p.n_padded = dr_round_up(n, DR_PACK_S8_NR);
    p.k_padded = dr_round_up(k, DR_PACK_S8_KR);
    p.data = dr_aligned_alloc(p.n_padded * p.k_padded);
    if (!p.data)
        return dr_error_set(err, DR_ERR_NOMEM, "pack: out of memory for %zux%zu weights", n, k);
    memset(p.data, DR_PACK_S8_BIAS, p.n_padded * p.k_padded); /* padding: weight 0 */

    for (size_t j = 0; j < n; j++) {
        size_t panel = j / DR_PACK_S8_NR, col = j % DR_PACK_S8_NR;
        for (size_t kk = 0; kk < k; kk++) {
            size_t group = kk / DR_PACK_S8_KR, lane = kk % DR_PACK_S8_KR;
            p.data[(panel * p.k_padded + group * DR_PACK_S8_KR) * DR_PACK_S8_NR +
                   col * DR_PACK_S8_KR + lane] = (uint8_t)(w[j * ld_w + kk] + DR_PACK_S8_BIAS);
        }
    }
    *packed = p;
    return DR_OK;
}

enum dr_status dr_packed_s8_add_row_layout(struct dr_packed_s8 *packed, struct dr_error *err)
{
    if (packed->row_data)
        return DR_OK;
    size_t bytes = packed->n_padded * packed->k_padded;
    uint8_t *row = dr_aligned_alloc(bytes);
    if (!row)
        return dr_error_set(err, DR_ERR_NOMEM,
                            "pack: out of memory for the one-row layout of "
                            "%zux%zu weights",
                            packed->n, packed->k);
    size_t n_panels = packed->n_padded / DR_PACK_S8_NR, groups = packed->k_padded / DR_PACK_S8_KR;
    size_t line = DR_PACK_S8_NR * DR_PACK_S8_KR, panel_bytes = packed->k_padded * DR_PACK_S8_NR;
    for (size_t p = 0; p < n_panels; p++) {
        size_t q = p / DR_PACK_S8_ROW_PANELS, h = p % DR_PACK_S8_ROW_PANELS;
        size_t first = q * DR_PACK_S8_ROW_PANELS;
        size_t gp =
            n_panels - first < DR_PACK_S8_ROW_PANELS ? n_panels - first : DR_PACK_S8_ROW_PANELS;
        for (size_t g = 0; g < groups; g++)
            memcpy(row + first * panel_bytes + (g * gp + h) * line,
                   packed->data + p * panel_bytes + g * line, line);
    }
    packed->row_data = row;
    return DR_OK;
}

void dr_packed_s8_deinit(struct dr_packed_s8 *packed)
{
    if (!packed)
        return;
    dr_aligned_free(packed->row_data);
    dr_aligned_free(packed->data);
    memset(packed, 0, sizeof *packed);
}

void dr_quantize_weights_s8(size_t n, size_t k, const float *w, size_t ld_w, int qmax, int8_t *q,
                            size_t ld_q, float *scales)
{
    for (size_t j = 0; j < n; j++) {
        const float *row = w + j * ld_w;
        float max_abs = 0.0f;
        for (size_t kk = 0; kk < k; kk++)
            max_abs = fmaxf(max_abs, fabsf(row[kk]));
        float scale = max_abs / (float)qmax;
        scales[j] = scale;
        for (size_t kk = 0; kk < k; kk++) {
            float v = scale > 0.0f ? nearbyintf(row[kk] / scale) : 0.0f;
            v = fminf(fmaxf(v, (float)-qmax), (float)qmax);
            q[j * ld_q + kk] = (int8_t)v;
        }
    }
}
