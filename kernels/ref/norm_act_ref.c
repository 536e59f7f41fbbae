/* norm_act_ref.c: layernorm, GELU and the masked softmax, fp32 with the libm functions. */
#include "ref.h"

#include <math.h>

void dr_layernorm_f32__ref(size_t m, size_t n, const float *x, size_t ldx, const float *gamma,
                           const float *beta, float eps, float *y, size_t ldy)
{
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        /* Double accumulation: the spec should not carry the rounding of a float sum. */
        double sum = 0.0;
        for (size_t j = 0; j < n; j++)
            sum += (double)row[j];
        double mean = sum / (double)n;
        double var = 0.0;
        for (size_t j = 0; j < n; j++) {
            double d = (double)row[j] - mean;
            var += d * d;
        }
        var /= (double)n;
        float inv_std = (float)(1.0 / sqrt(var + (double)eps));
        float mean_f = (float)mean;
        for (size_t j = 0; j < n; j++)
            y[i * ldy + j] = (row[j] - mean_f) * inv_std * gamma[j] + beta[j];
    }
}

void dr_gelu_f32__ref(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = dr__gelu_scalar(x[i]);
}

void dr_softmax_f32__ref(size_t m, size_t n, float *x, size_t ldx, size_t n_valid, float scale)
{
    if (n_valid > n)
        n_valid = n;
    for (size_t i = 0; i < m; i++) {
        float *row = x + i * ldx;
        if (n_valid > 0) {
            float max = row[0];
            for (size_t j = 1; j < n_valid; j++)
                max = fmaxf(max, row[j]);
            float sum = 0.0f;
            for (size_t j = 0; j < n_valid; j++) {
                row[j] = expf((row[j] - max) * scale);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (size_t j = 0; j < n_valid; j++)
                row[j] *= inv;
        }
        for (size_t j = n_valid; j < n; j++)
            row[j] = 0.0f;
    }
}
