/* quant_accuracy.c: what the int8 scheme's 7-bit weights cost, on BERT-shaped data.
 *
 * Weights ~ N(0, 0.02) as BERT initialises them (plus trained-like heavier tails: 1% of
 * weights x4), activations like layernorm outputs ~ N(0, 1) with a few outlier channels
 * (x20, as BERT's hidden states have).  For each shape: Y = X W^T in double, against the
 * int8 product with activations per row in [-127, 127] and weights per output channel in
 * [-63, 63] (the scheme) or [-127, 127] (full 8 bits, which AVX2's vpmaddubsw cannot
 * multiply without saturating).  Prints relative Frobenius error and worst-row cosine.
 */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 42;
static double uniform(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void)
{
    return (float)(sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
}

struct errors {
    double rel_err, min_cos;
};

static struct errors measure(size_t m, size_t n, size_t k, const float *x, const float *w,
                             int w_qmax)
{
    int8_t *xq = malloc(m * k), *wq = malloc(n * k);
    float *xs = malloc(m * sizeof(float)), *ws = malloc(n * sizeof(float));
    dr_kernels_get()->quantize_rows_s8(m, k, x, k, xq, k, xs);
    dr_quantize_weights_s8(n, k, w, k, w_qmax, wq, k, ws);
    double err2 = 0, ref2 = 0, min_cos = 1;
    for (size_t i = 0; i < m; i++) {
        double dot = 0, nq = 0, nr = 0;
        for (size_t j = 0; j < n; j++) {
            double y = 0;
            int64_t acc = 0;
            for (size_t kk = 0; kk < k; kk++) {
                y += (double)x[i * k + kk] * (double)w[j * k + kk];
                acc += (int64_t)xq[i * k + kk] * wq[j * k + kk];
            }
            double yq = (double)acc * (double)xs[i] * (double)ws[j];
            err2 += (yq - y) * (yq - y);
            ref2 += y * y;
            dot += yq * y;
            nq += yq * yq;
            nr += y * y;
        }
        double cos = dot / sqrt(nq * nr);
        if (cos < min_cos)
            min_cos = cos;
    }
    free(xq);
    free(wq);
    free(xs);
    free(ws);
    return (struct errors){sqrt(err2 / ref2), min_cos};
}

int main(void)
{
    static const size_t shapes[][2] = {{256, 256}, {1024, 256}, {256, 1024},
                                       {768, 768}, {3072, 768}, {768, 3072}};
    size_t m = 64;
    printf("int8 scheme accuracy on BERT-shaped data (M=%zu tokens, outlier channels x20)\n", m);
    printf("%5s %5s  %-22s  %-22s\n", "N", "K", "7-bit weights (scheme)", "8-bit weights");
    printf("%5s %5s  %10s %11s  %10s %11s\n", "", "", "rel.err", "min cos", "rel.err", "min cos");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = shapes[s][0], k = shapes[s][1];
        float *x = malloc(m * k * sizeof(float)), *w = malloc(n * k * sizeof(float));
        for (size_t i = 0; i < m * k; i++)
            x[i] = normal() * ((i % k) % 97 == 5 ? 20.0f : 1.0f);
        for (size_t i = 0; i < n * k; i++)
            w[i] = normal() * 0.02f * (uniform() < 0.01 ? 4.0f : 1.0f);
        struct errors e7 = measure(m, n, k, x, w, DR_S8_WEIGHT_QMAX);
        struct errors e8 = measure(m, n, k, x, w, 127);
        printf("%5zu %5zu  %10.5f %11.6f  %10.5f %11.6f\n", n, k, e7.rel_err, e7.min_cos,
               e8.rel_err, e8.min_cos);
        free(x);
        free(w);
    }
    return 0;
}
