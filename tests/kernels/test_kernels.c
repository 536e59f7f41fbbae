/* test_kernels.c: every kernel of one ISA against independent oracles and against __ref.
 *
 * Usage: test_kernels ISA [OP]   (ISA: ref, avx2, ...; OP: one op name, default all)
 * Integer ops (gemm_s8s8s32, quantize_rows_s8, dot_s8, l2sq_s8, topk_f32) must equal a
 * plain loop written here, bit for bit, over the whole range the int8 scheme allows,
 * extremes included.  Float ops must stay within the bound stated next to each check, both
 * against a double-precision oracle and against the ISA-independent __ref table.
 * Sizes: 1, tile-1, tile, tile+1, primes, the BERT shapes of bench/shapes/; row strides
 * padded by primes; pointers offset by one element.  Exit 77 (skip) when the ISA is not
 * built in or this CPU lacks it.
 */
#include "dr_test.h"
#include "kernels.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static const struct dr_kernels *kern; /* under test */
static const struct dr_kernels *ref;  /* the __ref table */
static bool emulated;                 /* DR_TEST_EMULATED: under qemu, keep sizes small */

/* One byte/float past a 64-byte boundary, so no kernel may assume alignment of inputs. */
#define MISALIGN 1

static void *xalloc(size_t bytes)
{
    void *p = dr_aligned_alloc(bytes + 64);
    if (!p) {
        fprintf(stderr, "test_kernels: out of memory\n");
        exit(2);
    }
    memset(p, 0, bytes + 64);
    return p;
}

/* |got - want| <= abs_tol + rel_tol * scale, scale given per element (e.g. sum of |terms|). */
static bool close_enough(double got, double want, double abs_tol, double rel_tol, double scale)
{
    if (isnan(got) || isnan(want))
        return isnan(got) && isnan(want);
    return fabs(got - want) <= abs_tol + rel_tol * scale;
}

/* ---- int8 GEMM -------------------------------------------------------------------------- */

enum fill { FILL_RANDOM, FILL_MAX_POS, FILL_MAX_NEG, FILL_A_MIN_W_MAX, FILL_ALT };

static int8_t fill_a(enum fill f, size_t idx)
{
    switch (f) {
    case FILL_MAX_POS: /* (-128) * (-64): the largest positive product */
    case FILL_MAX_NEG: /* (-128) * 63 */
        return -128;
    case FILL_A_MIN_W_MAX:
        return 127;
    case FILL_ALT:
        return (idx & 1) ? 127 : -128;
    case FILL_RANDOM:
        break;
    }
    return (int8_t)dr_test_rand_int(-128, 127);
}

static int8_t fill_w(enum fill f, size_t idx)
{
    switch (f) {
    case FILL_MAX_POS:
        return -64;
    case FILL_MAX_NEG:
        return 63;
    case FILL_A_MIN_W_MAX:
        return -64;
    case FILL_ALT:
        return (idx & 1) ? 63 : -64;
    case FILL_RANDOM:
        break;
    }
    return (int8_t)dr_test_rand_int(DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX);
}

/* row_layout: the weights also carry the one-row layout (read by AVX-512 when m == 1),
 * visited last group first when backward. */
static void check_gemm_s8_layout(size_t m, size_t n, size_t k, enum fill f, bool row_layout,
                                 bool backward)
{
    const char *lay = !row_layout ? "" : backward ? " row-layout backward" : " row-layout";
    size_t lda = k + 3, ldc = n + 5, ldw = k + 1;
    int8_t *a = (int8_t *)xalloc(m * lda) + MISALIGN;
    int8_t *w = xalloc(n * ldw);
    int32_t *c = (int32_t *)xalloc(m * ldc * sizeof(int32_t)) + MISALIGN;
    int32_t *want = xalloc(m * n * sizeof(int32_t));
    float *cf = (float *)xalloc(m * ldc * sizeof(float)) + MISALIGN;
    float *cf_ref = xalloc(m * ldc * sizeof(float));
    float *a_scale = xalloc(m * sizeof(float)), *w_scale = xalloc(n * sizeof(float));
    float *bias = xalloc(n * sizeof(float));
    for (size_t i = 0; i < m * lda; i++)
        a[i] = fill_a(f, i);
    for (size_t i = 0; i < n * ldw; i++)
        w[i] = fill_w(f, i);
    for (size_t i = 0; i < m; i++)
        a_scale[i] = dr_test_rand_float(0.001f, 0.05f);
    for (size_t j = 0; j < n; j++) {
        w_scale[j] = dr_test_rand_float(0.001f, 0.05f);
        bias[j] = dr_test_rand_float(-1.0f, 1.0f);
    }

    struct dr_packed_s8 packed;
    struct dr_error err;
    if (dr_packed_s8_init(&packed, n, k, w, ldw, &err) != DR_OK) {
        DR_TEST_FAIL("pack %zux%zu: %s", n, k, err.msg);
        return;
    }
    if (row_layout && dr_packed_s8_add_row_layout(&packed, &err) != DR_OK) {
        DR_TEST_FAIL("row layout %zux%zu: %s", n, k, err.msg);
        dr_packed_s8_deinit(&packed);
        return;
    }
    packed.row_backward = backward;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            int32_t acc = 0;
            for (size_t kk = 0; kk < k; kk++)
                acc += (int32_t)a[i * lda + kk] * (int32_t)w[j * ldw + kk];
            want[i * n + j] = acc;
        }

    /* Sentinels past each output row must survive: the kernel writes only n columns. */
    for (size_t i = 0; i < m; i++)
        for (size_t j = n; j < ldc; j++)
            c[i * ldc + j] = 0x5a5a5a5a;
    kern->gemm_s8s8s32(m, a, lda, &packed, c, ldc);
    size_t bad = 0;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++)
            if (c[i * ldc + j] != want[i * n + j] && bad++ < 3)
                DR_TEST_FAIL("gemm_s8s8s32%s m=%zu n=%zu k=%zu fill=%d [%zu][%zu]: %d, want %d",
                             lay, m, n, k, (int)f, i, j, c[i * ldc + j], want[i * n + j]);
        for (size_t j = n; j < ldc; j++)
            if (c[i * ldc + j] != 0x5a5a5a5a && bad++ < 3)
                DR_TEST_FAIL("gemm_s8s8s32%s m=%zu n=%zu k=%zu wrote past column n", lay, m, n, k);
    }

    /* The fp32 epilogue in its four forms, against the exact int32 sums. */
    for (int form = 0; form < 4; form++) {
        struct dr_gemm_epilogue ep = {.a_scale = a_scale,
                                      .w_scale = w_scale,
                                      .bias = (form & 1) ? bias : NULL,
                                      .act = (form & 2) ? DR_ACT_GELU : DR_ACT_NONE,
                                      .accumulate = form == 3};
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < ldc; j++)
                cf[i * ldc + j] = cf_ref[i * ldc + j] = (float)(i + j) * 0.25f;
        kern->gemm_s8s8f32(m, a, lda, &packed, cf, ldc, &ep);
        ref->gemm_s8s8f32(m, a, lda, &packed, cf_ref, ldc, &ep);
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < n; j++) {
                double v = (double)want[i * n + j] * a_scale[i] * w_scale[j];
                if (ep.bias)
                    v += bias[j];
                if (ep.act == DR_ACT_GELU)
                    v = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
                if (ep.accumulate)
                    v += (double)(i + j) * 0.25;
                double got = cf[i * ldc + j], mag = fabs(v) + 1.0 + (double)(i + j) * 0.25;
                /* fp32 rounding of acc, scales, bias: a few ulp; GELU approximations 1e-6. */
                if (!close_enough(got, v, 2e-6, 4e-6, mag) && bad++ < 3)
                    DR_TEST_FAIL("gemm_s8s8f32%s form=%d m=%zu n=%zu k=%zu [%zu][%zu]: %.9g, "
                                 "want %.9g",
                                 lay, form, m, n, k, i, j, got, v);
                if (!close_enough(got, cf_ref[i * ldc + j], 2e-6, 4e-6, mag) && bad++ < 3)
                    DR_TEST_FAIL("gemm_s8s8f32 vs ref form=%d m=%zu n=%zu k=%zu [%zu][%zu]: "
                                 "%.9g vs %.9g",
                                 form, m, n, k, i, j, got, (double)cf_ref[i * ldc + j]);
            }
            for (size_t j = n; j < ldc; j++)
                if (cf[i * ldc + j] != (float)(i + j) * 0.25f && bad++ < 3)
                    DR_TEST_FAIL("gemm_s8s8f32 m=%zu n=%zu k=%zu wrote past column n", m, n, k);
        }
    }
    dr_packed_s8_deinit(&packed);
    dr_aligned_free(a - MISALIGN);
    dr_aligned_free(w);
    dr_aligned_free(c - MISALIGN);
    dr_aligned_free(want);
    dr_aligned_free(cf - MISALIGN);
    dr_aligned_free(cf_ref);
    dr_aligned_free(a_scale);
    dr_aligned_free(w_scale);
    dr_aligned_free(bias);
}

static void check_gemm_s8(size_t m, size_t n, size_t k, enum fill f)
{
    check_gemm_s8_layout(m, n, k, f, false, false);
    if (m <= 2) { /* the one-row layout: read at m == 1, ignored above */
        check_gemm_s8_layout(m, n, k, f, true, false);
        check_gemm_s8_layout(m, n, k, f, true, true);
    }
}

static void test_gemm_s8(void)
{
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 13, 127};
    static const size_t ns[] = {1, 15, 16, 17, 31, 33, 64};
    static const size_t ks[] = {1, 3, 4, 5, 7, 13, 64, 127, 256};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
                check_gemm_s8(ms[a], ns[b], ks[c], FILL_RANDOM);
    /* The scheme's extremes, long enough for int16 pair sums to saturate if anything did. */
    for (enum fill f = FILL_MAX_POS; f <= FILL_ALT; f++) {
        check_gemm_s8(5, 33, 1024, f);
        check_gemm_s8(4, 16, 3072, f);
    }
    /* BERT-mini and BERT-base linear layers (bench/shapes/bert.txt), small M. */
    static const size_t bert[][2] = {{256, 256}, {1024, 256}, {256, 1024},
                                     {768, 768}, {3072, 768}, {768, 3072}};
    for (size_t s = 0; s < sizeof bert / sizeof bert[0]; s++) {
        check_gemm_s8(1, bert[s][0], bert[s][1], FILL_RANDOM);
        if (!emulated)
            check_gemm_s8(13, bert[s][0], bert[s][1], FILL_RANDOM);
    }
    /* The interest model's LSTM products at batch 1 (m == 1 runs 8 panels at a time on
     * AVX-512; 63 panels leave tails of 4, 2 and 1). */
    static const size_t lstm[][2] = {{1024, 128}, {1024, 256}, {1000, 256}, {4 * 7, 9}};
    for (size_t s = 0; s < sizeof lstm / sizeof lstm[0]; s++)
        check_gemm_s8(1, lstm[s][0], lstm[s][1], FILL_RANDOM);
    check_gemm_s8(1, 1000, 64, FILL_MAX_POS);
    check_gemm_s8(1, 1000, 64, FILL_MAX_NEG);
    /* Past one M block of the row blocking (128-256 KiB of A / k rows, at most 512 rows). */
    check_gemm_s8(emulated ? 129 : 517, 17, emulated ? 1024 : 256, FILL_RANDOM);

    /* The packer refuses weights outside the scheme, naming the offender. */
    int8_t bad_w[8] = {0, 1, 2, -65, 4, 5, 6, 7};
    struct dr_packed_s8 packed;
    struct dr_error err;
    DR_CHECK(dr_packed_s8_init(&packed, 2, 4, bad_w, 4, &err) == DR_ERR_INVALID_ARG &&
                 strstr(err.msg, "[0][3] = -65"),
             "pack accepted a weight of -65 (msg: %s)", err.msg);
}

/* ---- fp32 GEMM -------------------------------------------------------------------------- */

static void check_gemm_f32(size_t m, size_t n, size_t k, bool nt, bool has_bias)
{
    size_t lda = k + 3, ldb = (nt ? k : n) + 5, ldc = n + 7;
    size_t b_rows = nt ? n : k;
    float *a = (float *)xalloc(m * lda * sizeof(float)) + MISALIGN;
    float *b = (float *)xalloc(b_rows * ldb * sizeof(float)) + MISALIGN;
    float *c = (float *)xalloc(m * ldc * sizeof(float)) + MISALIGN;
    float *c_ref = xalloc(m * ldc * sizeof(float));
    float *bias = xalloc(n * sizeof(float));
    for (size_t i = 0; i < m * lda; i++)
        a[i] = dr_test_rand_normal();
    for (size_t i = 0; i < b_rows * ldb; i++)
        b[i] = dr_test_rand_normal();
    for (size_t j = 0; j < n; j++)
        bias[j] = dr_test_rand_normal();
    for (size_t i = 0; i < m * ldc; i++)
        c[i] = -7.0f;
    dr_gemm_f32_fn fn = nt ? kern->gemm_f32_nt : kern->gemm_f32_nn;
    dr_gemm_f32_fn fn_ref = nt ? ref->gemm_f32_nt : ref->gemm_f32_nn;
    const float *bias_arg = has_bias ? bias : NULL;
    fn(m, n, k, a, lda, b, ldb, bias_arg, c, ldc);
    fn_ref(m, n, k, a, lda, b, ldb, bias_arg, c_ref, ldc);
    size_t bad = 0;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double want = has_bias ? bias[j] : 0.0, mag = has_bias ? fabs(bias[j]) : 0.0;
            for (size_t kk = 0; kk < k; kk++) {
                double bv = nt ? b[j * ldb + kk] : b[kk * ldb + j];
                want += (double)a[i * lda + kk] * bv;
                mag += fabs((double)a[i * lda + kk] * bv);
            }
            /* fp32 summation: error grows with k; 1e-6 * sum|terms| * sqrt-ish headroom. */
            double rel = 2e-7 * (double)(k + 8);
            double got = c[i * ldc + j];
            if (!close_enough(got, want, 1e-6, rel, mag) && bad++ < 3)
                DR_TEST_FAIL("gemm_f32_%s m=%zu n=%zu k=%zu [%zu][%zu]: %.9g, want %.9g",
                             nt ? "nt" : "nn", m, n, k, i, j, got, want);
            if (!close_enough(got, c_ref[i * ldc + j], 1e-6, 2 * rel, mag) && bad++ < 3)
                DR_TEST_FAIL("gemm_f32_%s vs ref m=%zu n=%zu k=%zu [%zu][%zu]", nt ? "nt" : "nn", m,
                             n, k, i, j);
        }
        for (size_t j = n; j < ldc; j++)
            if (c[i * ldc + j] != -7.0f && bad++ < 3)
                DR_TEST_FAIL("gemm_f32 m=%zu n=%zu k=%zu wrote past column n", m, n, k);
    }
    dr_aligned_free(a - MISALIGN);
    dr_aligned_free(b - MISALIGN);
    dr_aligned_free(c - MISALIGN);
    dr_aligned_free(c_ref);
    dr_aligned_free(bias);
}

static void test_gemm_f32(void)
{
    static const size_t ms[] = {1, 5, 6, 7, 13};
    static const size_t ns[] = {1, 3, 4, 5, 15, 16, 17, 33};
    static const size_t ks[] = {1, 7, 8, 9, 64, 127};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
                for (int nt = 0; nt < 2; nt++)
                    check_gemm_f32(ms[a], ns[b], ks[c], nt, (a + b + c) & 1);
    /* Attention shapes: QK^T (64-wide heads) and PV, sequence 128. */
    check_gemm_f32(128, 128, 64, true, false);
    check_gemm_f32(128, 64, 128, false, false);
    check_gemm_f32(3, 768, 768, true, true);
}

/* ---- quantisation ----------------------------------------------------------------------- */

static void check_quantize(size_t m, size_t k, int mode)
{
    size_t ldx = k + 3, ldq = k + 5;
    float *x = (float *)xalloc(m * ldx * sizeof(float)) + MISALIGN;
    int8_t *q = (int8_t *)xalloc(m * ldq) + MISALIGN;
    float *scales = xalloc(m * sizeof(float));
    float *back = xalloc(m * k * sizeof(float));
    for (size_t i = 0; i < m * ldx; i++) {
        switch (mode) {
        case 0:
            x[i] = dr_test_rand_normal() * 3.0f;
            break;
        case 1: /* exact halves: round-half-even must agree */
            x[i] = (float)dr_test_rand_int(-254, 254) * 0.5f;
            break;
        case 2: /* an all-zero row, and one outlier per row */
            x[i] = (i % ldx == 1) ? 1000.0f : 0.0f;
            break;
        default: /* zeros */
            x[i] = 0.0f;
        }
    }
    if (mode == 1 && k > 2)
        x[2] = NAN; /* NaN clamps to -127, as fmaxf(NaN, -127) does */
    kern->quantize_rows_s8(m, k, x, ldx, q, ldq, scales);
    size_t bad = 0;
    for (size_t i = 0; i < m; i++) {
        float max_abs = 0.0f;
        for (size_t kk = 0; kk < k; kk++) {
            float v = fabsf(x[i * ldx + kk]);
            if (v > max_abs)
                max_abs = v;
        }
        float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
        if (scales[i] != max_abs / 127.0f && bad++ < 3)
            DR_TEST_FAIL("quantize m=%zu k=%zu row %zu: scale %.9g, want %.9g", m, k, i,
                         (double)scales[i], (double)(max_abs / 127.0f));
        for (size_t kk = 0; kk < k; kk++) {
            float r = nearbyintf(x[i * ldx + kk] * inv);
            int want = isnan(r) ? -127 : (int)fminf(fmaxf(r, -127.0f), 127.0f);
            if (q[i * ldq + kk] != want && bad++ < 3)
                DR_TEST_FAIL("quantize m=%zu k=%zu [%zu][%zu] x=%.9g: %d, want %d", m, k, i, kk,
                             (double)x[i * ldx + kk], q[i * ldq + kk], want);
        }
    }
    kern->dequantize_rows_s8(m, k, q, ldq, scales, back, k);
    for (size_t i = 0; i < m; i++)
        for (size_t kk = 0; kk < k; kk++)
            if (back[i * k + kk] != (float)q[i * ldq + kk] * scales[i] && bad++ < 3)
                DR_TEST_FAIL("dequantize [%zu][%zu]: %.9g", i, kk, (double)back[i * k + kk]);
    dr_aligned_free(x - MISALIGN);
    dr_aligned_free(q - MISALIGN);
    dr_aligned_free(scales);
    dr_aligned_free(back);
}

static void test_quantize(void)
{
    static const size_t ks[] = {1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 256, 768, 1024};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        for (int mode = 0; mode < 4; mode++)
            check_quantize(5, ks[i], mode);

    /* The weight quantiser stays inside the packer's range. */
    float w[3 * 5] = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f, 0, 0, 0, 0, 0, -1e-3f, 2e-3f, 0, 0, 0};
    int8_t qw[3 * 5];
    float sw[3];
    dr_quantize_weights_s8(3, 5, w, 5, DR_S8_WEIGHT_QMAX, qw, 5, sw);
    DR_CHECK(qw[4] == 63 && qw[1] == -42 && sw[0] == 3.0f / 63.0f,
             "weight quantiser: q=%d,%d scale=%g", qw[4], qw[1], (double)sw[0]);
    DR_CHECK(sw[1] == 0.0f && qw[5] == 0, "weight quantiser: zero row");
    DR_CHECK(qw[11] == 63 && qw[10] == -32, "weight quantiser: small row %d %d", qw[11], qw[10]);
}

/* ---- transpose ----------------------------------------------------------------------------- */

/* Every element in place, nothing outside the rows x cols block of dst written (the guard
 * values around it survive), for every edge shape of the ISA's blocks. */
static void test_transpose(void)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 67};
    size_t n_sizes = sizeof sizes / sizeof sizes[0];
    for (size_t a = 0; a < n_sizes; a++) {
        for (size_t b = 0; b < n_sizes; b++) {
            size_t rows = sizes[a], cols = sizes[b], ld_src = cols + 3, ld_dst = rows + 5;
            float *src = xalloc((rows * ld_src + MISALIGN) * sizeof(float));
            float *dst = xalloc((cols * ld_dst + MISALIGN) * sizeof(float));
            float *s = src + MISALIGN, *d = dst + MISALIGN;
            for (size_t i = 0; i < rows * ld_src; i++)
                s[i] = dr_test_rand_float(-1e3f, 1e3f);
            for (size_t i = 0; i < cols * ld_dst; i++)
                d[i] = -7.0f;
            kern->transpose_f32(rows, cols, s, ld_src, d, ld_dst);
            size_t bad = 0;
            for (size_t j = 0; j < cols; j++) {
                for (size_t i = 0; i < ld_dst; i++) {
                    float want = i < rows ? s[i * ld_src + j] : -7.0f;
                    bad += memcmp(&d[j * ld_dst + i], &want, sizeof want) != 0;
                }
            }
            DR_CHECK(bad == 0, "transpose %zux%zu: %zu elements wrong or written outside", rows,
                     cols, bad);
            dr_aligned_free(src);
            dr_aligned_free(dst);
        }
    }
}

/* ---- layernorm, GELU, softmax, LSTM cell --------------------------------------------------- */

static void test_layernorm(void)
{
    static const size_t ns[] = {1, 7, 8, 9, 63, 256, 768, 1027};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t m = 3, n = ns[t], ld = n + 3;
        float *x = (float *)xalloc(m * ld * sizeof(float)) + MISALIGN;
        float *y = xalloc(m * ld * sizeof(float)), *y_ref = xalloc(m * ld * sizeof(float));
        float *gamma = xalloc(n * sizeof(float)), *beta = xalloc(n * sizeof(float));
        for (size_t i = 0; i < m * ld; i++)
            x[i] = dr_test_rand_normal() * 4.0f + 10.0f; /* an offset mean, as residuals have */
        for (size_t j = 0; j < n; j++) {
            gamma[j] = dr_test_rand_float(0.5f, 1.5f);
            beta[j] = dr_test_rand_float(-0.5f, 0.5f);
        }
        kern->layernorm_f32(m, n, x, ld, gamma, beta, 1e-12f, y, ld);
        ref->layernorm_f32(m, n, x, ld, gamma, beta, 1e-12f, y_ref, ld);
        size_t bad = 0;
        for (size_t i = 0; i < m; i++) {
            double mean = 0, var = 0;
            for (size_t j = 0; j < n; j++)
                mean += x[i * ld + j];
            mean /= (double)n;
            for (size_t j = 0; j < n; j++)
                var += (x[i * ld + j] - mean) * (x[i * ld + j] - mean);
            var /= (double)n;
            for (size_t j = 0; j < n; j++) {
                double want = (x[i * ld + j] - mean) / sqrt(var + 1e-12) * gamma[j] + beta[j];
                if (n == 1)
                    want = beta[j];
                /* Bound: 2e-5 absolute on unit-variance outputs (fp32 mean/variance). */
                if (!close_enough(y[i * ld + j], want, 2e-5, 0, 0) && bad++ < 3)
                    DR_TEST_FAIL("layernorm n=%zu [%zu][%zu]: %.9g, want %.9g", n, i, j,
                                 (double)y[i * ld + j], want);
                if (!close_enough(y[i * ld + j], y_ref[i * ld + j], 2e-5, 0, 0) && bad++ < 3)
                    DR_TEST_FAIL("layernorm vs ref n=%zu [%zu][%zu]", n, i, j);
            }
        }
        dr_aligned_free(x - MISALIGN);
        dr_aligned_free(y);
        dr_aligned_free(y_ref);
        dr_aligned_free(gamma);
        dr_aligned_free(beta);
    }
}

static void test_gelu(void)
{
    size_t n = 4099;
    float *x = (float *)xalloc(n * sizeof(float)) + MISALIGN;
    float *y = xalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    x[0] = -100.0f;
    x[1] = 100.0f;
    x[2] = 0.0f;
    kern->gelu_f32(n, x, y);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        /* Bound: 1e-6 * max(1, |x|) (A&S 7.1.26 erf is within 1.5e-7). */
        double tol = 1e-6 * fmax(1.0, fabs(x[i]));
        if (!close_enough(y[i], want, tol, 0, 0) && bad++ < 3)
            DR_TEST_FAIL("gelu(%.9g) = %.9g, want %.9g", (double)x[i], (double)y[i], want);
    }
    /* Past the clamp the result is exact, as the exact GELU rounds in fp32: 0 for large
     * negative x, x itself for large positive x; NaN stays NaN. */
    float sat[16] = {-1e4f, -300.0f, -30.0f, -9.0f, 9.0f, 30.0f, 300.0f, 1e4f, NAN}, sat_y[16];
    kern->gelu_f32(9, sat, sat_y);
    for (size_t i = 0; i < 8; i++)
        if (sat_y[i] != (sat[i] < 0.0f ? 0.0f : sat[i]) && bad++ < 3)
            DR_TEST_FAIL("gelu(%g) = %.9g, want exactly %g", (double)sat[i], (double)sat_y[i],
                         (double)(sat[i] < 0.0f ? 0.0f : sat[i]));
    if (!isnan(sat_y[8]) && bad++ < 3)
        DR_TEST_FAIL("gelu(NaN) = %.9g, want NaN", (double)sat_y[8]);
    /* In place, and the tail lengths. */
    for (size_t len = 1; len <= 17; len++) {
        float buf[17], want[17];
        for (size_t i = 0; i < len; i++)
            buf[i] = dr_test_rand_normal() * 3.0f;
        ref->gelu_f32(len, buf, want);
        kern->gelu_f32(len, buf, buf);
        for (size_t i = 0; i < len; i++)
            if (!close_enough(buf[i], want[i], 1e-6 * fmax(1.0, fabs(want[i])), 0, 0) && bad++ < 3)
                DR_TEST_FAIL("gelu in place len=%zu [%zu]", len, i);
    }
    dr_aligned_free(x - MISALIGN);
    dr_aligned_free(y);
}

static void test_softmax(void)
{
    static const size_t ns[] = {1, 2, 7, 8, 9, 64, 127, 128, 512};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t], m = 3, ld = n + 1;
        size_t valids[] = {0, 1, n / 2, n > 1 ? n - 1 : 1, n, n + 5};
        for (size_t v = 0; v < sizeof valids / sizeof valids[0]; v++) {
            size_t n_valid = valids[v];
            float *x = (float *)xalloc(m * ld * sizeof(float)) + MISALIGN;
            float *orig = xalloc(m * ld * sizeof(float));
            for (size_t i = 0; i < m * ld; i++)
                orig[i] = x[i] = dr_test_rand_normal() * 20.0f + (i % 3 ? 0.0f : 500.0f);
            kern->softmax_f32(m, n, x, ld, n_valid, 0.125f);
            size_t valid = n_valid > n ? n : n_valid, bad = 0;
            for (size_t i = 0; i < m; i++) {
                double max = -INFINITY, sum = 0;
                for (size_t j = 0; j < valid; j++)
                    max = fmax(max, 0.125 * orig[i * ld + j]);
                for (size_t j = 0; j < valid; j++)
                    sum += exp(0.125 * orig[i * ld + j] - max);
                for (size_t j = 0; j < n; j++) {
                    double want = j < valid ? exp(0.125 * orig[i * ld + j] - max) / sum : 0.0;
                    /* Bound: 2e-6 absolute, 1e-5 relative (fp32 exp and normalisation). */
                    if (!close_enough(x[i * ld + j], want, 2e-6, 1e-5, want) && bad++ < 3)
                        DR_TEST_FAIL("softmax n=%zu valid=%zu [%zu][%zu]: %.9g, want %.9g", n,
                                     n_valid, i, j, (double)x[i * ld + j], want);
                }
            }
            dr_aligned_free(x - MISALIGN);
            dr_aligned_free(orig);
        }
    }
}

static double sigmoid_d(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static void test_lstm_cell(void)
{
    static const size_t hs[] = {1, 7, 8, 9, 64, 256};
    for (size_t t = 0; t < sizeof hs / sizeof hs[0]; t++) {
        size_t hidden = hs[t], batch = 5, ldg = 4 * hidden + 3, lds = hidden + 1;
        float *g = (float *)xalloc(batch * ldg * sizeof(float)) + MISALIGN;
        float *c = xalloc(batch * lds * sizeof(float)), *h = xalloc(batch * lds * sizeof(float));
        float *c0 = xalloc(batch * lds * sizeof(float));
        for (size_t i = 0; i < batch * ldg; i++)
            g[i] = dr_test_rand_normal() * 6.0f;
        for (size_t i = 0; i < batch * lds; i++)
            c0[i] = c[i] = dr_test_rand_normal() * 2.0f;
        kern->lstm_cell_f32(batch, hidden, g, ldg, c, h, lds);
        size_t bad = 0;
        for (size_t b = 0; b < batch; b++)
            for (size_t j = 0; j < hidden; j++) {
                const float *gb = g + b * ldg;
                double cn = sigmoid_d(gb[hidden + j]) * c0[b * lds + j] +
                            sigmoid_d(gb[j]) * tanh(gb[2 * hidden + j]);
                double hn = sigmoid_d(gb[3 * hidden + j]) * tanh(cn);
                /* Bound: 1e-6 absolute on c (|c| <= ~8) scaled, 1e-6 on h in [-1, 1]. */
                if (!close_enough(c[b * lds + j], cn, 1e-6, 1e-6, fabs(cn)) && bad++ < 3)
                    DR_TEST_FAIL("lstm_cell hidden=%zu c[%zu][%zu]: %.9g, want %.9g", hidden, b, j,
                                 (double)c[b * lds + j], cn);
                if (!close_enough(h[b * lds + j], hn, 1e-6, 0, 0) && bad++ < 3)
                    DR_TEST_FAIL("lstm_cell hidden=%zu h[%zu][%zu]: %.9g, want %.9g", hidden, b, j,
                                 (double)h[b * lds + j], hn);
            }
        /* Saturated gates are exact: sigmoid(+-100) is 1 or 0 and tanh(+-100) is +-1, so
         * every gate at +100 gives c = c0 + 1 and every gate at -100 gives c = h = 0. */
        for (int sign = -1; sign <= 1; sign += 2) {
            for (size_t i = 0; i < batch * ldg; i++)
                g[i] = 100.0f * (float)sign;
            memcpy(c, c0, batch * lds * sizeof(float));
            kern->lstm_cell_f32(batch, hidden, g, ldg, c, h, lds);
            for (size_t b = 0; b < batch; b++)
                for (size_t j = 0; j < hidden; j++) {
                    size_t at = b * lds + j;
                    float want = sign > 0 ? c0[at] + 1.0f : 0.0f;
                    if ((c[at] != want || (sign < 0 && h[at] != 0.0f)) && bad++ < 3)
                        DR_TEST_FAIL("lstm_cell hidden=%zu gates %+d00: c %.9g h %.9g, want c %.9g",
                                     hidden, sign, (double)c[at], (double)h[at], (double)want);
                }
        }
        dr_aligned_free(g - MISALIGN);
        dr_aligned_free(c);
        dr_aligned_free(h);
        dr_aligned_free(c0);
    }
}

/* A full int8 LSTM step (both gate products + the cell) against the same step in fp32 with
 * the dequantised weights: what the model layer will rely on. */
static void test_lstm_step(void)
{
    size_t hidden = 64, input = 48, batch = 9, g4 = 4 * hidden;
    float *wf_ih = xalloc(g4 * input * sizeof(float)), *wf_hh = xalloc(g4 * hidden * sizeof(float));
    int8_t *q_ih = xalloc(g4 * input), *q_hh = xalloc(g4 * hidden);
    float *s_ih = xalloc(g4 * sizeof(float)), *s_hh = xalloc(g4 * sizeof(float));
    float *bias = xalloc(g4 * sizeof(float));
    float *x = xalloc(batch * input * sizeof(float));
    int8_t *xq = xalloc(batch * input);
    float *xs = xalloc(batch * sizeof(float));
    float *h = xalloc(batch * hidden * sizeof(float)), *c = xalloc(batch * hidden * sizeof(float));
    double *hd = xalloc(batch * hidden * sizeof(double)),
           *cd = xalloc(batch * hidden * sizeof(double));
    for (size_t i = 0; i < g4 * input; i++)
        wf_ih[i] = dr_test_rand_normal() * 0.2f;
    for (size_t i = 0; i < g4 * hidden; i++)
        wf_hh[i] = dr_test_rand_normal() * 0.2f;
    for (size_t i = 0; i < g4; i++)
        bias[i] = dr_test_rand_normal() * 0.1f;
    dr_quantize_weights_s8(g4, input, wf_ih, input, DR_S8_WEIGHT_QMAX, q_ih, input, s_ih);
    dr_quantize_weights_s8(g4, hidden, wf_hh, hidden, DR_S8_WEIGHT_QMAX, q_hh, hidden, s_hh);
    struct dr_packed_s8 p_ih, p_hh;
    DR_ASSERT(dr_packed_s8_init(&p_ih, g4, input, q_ih, input, NULL) == DR_OK);
    DR_ASSERT(dr_packed_s8_init(&p_hh, g4, hidden, q_hh, hidden, NULL) == DR_OK);
    struct dr_lstm_weights w = {
        .w_ih = &p_ih, .w_hh = &p_hh, .w_ih_scale = s_ih, .w_hh_scale = s_hh, .bias = bias};
    void *ws = xalloc(dr_lstm_step_workspace_size(batch, hidden));
    double max_err = 0;
    for (int step = 0; step < 8; step++) {
        for (size_t i = 0; i < batch * input; i++)
            x[i] = dr_test_rand_normal();
        kern->quantize_rows_s8(batch, input, x, input, xq, input, xs);
        /* The fp32 oracle sees the same dequantised inputs and weights, so the difference is
         * the int8 quantisation of h alone plus rounding. */
        for (size_t b = 0; b < batch; b++) {
            double gates[4 * 64];
            for (size_t j = 0; j < g4; j++) {
                double acc = bias[j];
                for (size_t kk = 0; kk < input; kk++)
                    acc += (double)xq[b * input + kk] * xs[b] * q_ih[j * input + kk] * s_ih[j];
                for (size_t kk = 0; kk < hidden; kk++)
                    acc += hd[b * hidden + kk] * q_hh[j * hidden + kk] * s_hh[j];
                gates[j] = acc;
            }
            for (size_t j = 0; j < hidden; j++) {
                double cn = sigmoid_d(gates[hidden + j]) * cd[b * hidden + j] +
                            sigmoid_d(gates[j]) * tanh(gates[2 * hidden + j]);
                cd[b * hidden + j] = cn;
                hd[b * hidden + j] = sigmoid_d(gates[3 * hidden + j]) * tanh(cn);
            }
        }
        dr_lstm_step_s8(kern, &w, batch, xq, input, xs, h, c, hidden, ws);
        for (size_t i = 0; i < batch * hidden; i++)
            max_err = fmax(max_err, fabs(h[i] - hd[i]));
    }
    /* Bound: h quantised to 8 bits each step (step <= 1/254 of max|h|) over 8 steps. */
    DR_CHECK(max_err < 0.02, "lstm_step: max |h - h_fp32| = %.6g after 8 steps", max_err);
    dr_packed_s8_deinit(&p_ih);
    dr_packed_s8_deinit(&p_hh);
    void *bufs[] = {wf_ih, wf_hh, q_ih, q_hh, s_ih, s_hh, bias, x, xq, xs, h, c, hd, cd, ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dr_aligned_free(bufs[i]);
}

/* ---- distances ---------------------------------------------------------------------------- */

static void check_distances(size_t dim, size_t n, bool gather, int mode)
{
    size_t ld = dim + 3, rows = n * 2 + 1;
    int8_t *q8 = (int8_t *)xalloc(dim) + MISALIGN, *b8 = (int8_t *)xalloc(rows * ld) + MISALIGN;
    float *qf = (float *)xalloc(dim * sizeof(float)) + MISALIGN;
    float *bf = (float *)xalloc(rows * ld * sizeof(float)) + MISALIGN;
    uint32_t *ids = xalloc(n * sizeof(uint32_t));
    int32_t *o8 = xalloc(n * sizeof(int32_t)), *o8l = xalloc(n * sizeof(int32_t));
    float *of = xalloc(n * sizeof(float)), *ofl = xalloc(n * sizeof(float));
    for (size_t d = 0; d < dim; d++) {
        /* mode 1: extremes of each kernel's range (dot: +-127; l2: -128 vs 127) */
        q8[d] = mode ? (int8_t)((d & 1) ? -127 : 127) : (int8_t)dr_test_rand_int(-127, 127);
        qf[d] = dr_test_rand_normal();
    }
    for (size_t i = 0; i < rows * ld; i++) {
        b8[i] = mode ? (int8_t)((i & 1) ? 127 : -127) : (int8_t)dr_test_rand_int(-127, 127);
        bf[i] = dr_test_rand_normal();
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = (uint32_t)dr_test_rand_int(0, (int)rows - 1);
    const uint32_t *id_arg = gather ? ids : NULL;
    kern->dot_s8(dim, q8, b8, ld, id_arg, n, o8);
    kern->dot_f32(dim, qf, bf, ld, id_arg, n, of);
    kern->l2sq_f32(dim, qf, bf, ld, id_arg, n, ofl);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = gather ? ids[i] : i;
        int32_t dot = 0;
        double dotf = 0, magf = 0, l2f = 0;
        for (size_t d = 0; d < dim; d++) {
            dot += (int32_t)q8[d] * (int32_t)b8[r * ld + d];
            dotf += (double)qf[d] * bf[r * ld + d];
            magf += fabs((double)qf[d] * bf[r * ld + d]);
            l2f += ((double)qf[d] - bf[r * ld + d]) * ((double)qf[d] - bf[r * ld + d]);
        }
        if (o8[i] != dot && bad++ < 3)
            DR_TEST_FAIL("dot_s8 dim=%zu gather=%d [%zu]: %d, want %d", dim, gather, i, o8[i], dot);
        /* Bound: fp32 summation, 2e-7 * (dim + 8) relative to the sum of |terms|. */
        double rel = 2e-7 * (double)(dim + 8);
        if (!close_enough(of[i], dotf, 1e-6, rel, magf) && bad++ < 3)
            DR_TEST_FAIL("dot_f32 dim=%zu [%zu]: %.9g, want %.9g", dim, i, (double)of[i], dotf);
        if (!close_enough(ofl[i], l2f, 1e-6, rel, l2f) && bad++ < 3)
            DR_TEST_FAIL("l2sq_f32 dim=%zu [%zu]: %.9g, want %.9g", dim, i, (double)ofl[i], l2f);
    }
    /* l2sq_s8 takes the whole int8 range, -128 included. */
    for (size_t d = 0; d < dim; d++)
        q8[d] = mode ? -128 : (int8_t)dr_test_rand_int(-128, 127);
    for (size_t i = 0; i < rows * ld; i++)
        b8[i] = mode ? 127 : (int8_t)dr_test_rand_int(-128, 127);
    kern->l2sq_s8(dim, q8, b8, ld, id_arg, n, o8l);
    for (size_t i = 0; i < n; i++) {
        size_t r = gather ? ids[i] : i;
        int32_t l2 = 0;
        for (size_t d = 0; d < dim; d++) {
            int32_t diff = (int32_t)q8[d] - (int32_t)b8[r * ld + d];
            l2 += diff * diff;
        }
        if (o8l[i] != l2 && bad++ < 3)
            DR_TEST_FAIL("l2sq_s8 dim=%zu gather=%d [%zu]: %d, want %d", dim, gather, i, o8l[i],
                         l2);
    }
    dr_aligned_free(q8 - MISALIGN);
    dr_aligned_free(b8 - MISALIGN);
    dr_aligned_free(qf - MISALIGN);
    dr_aligned_free(bf - MISALIGN);
    void *bufs[] = {ids, o8, o8l, of, ofl};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dr_aligned_free(bufs[i]);
}

static void test_distances(void)
{
    static const size_t dims[] = {1, 7, 15, 16, 17, 31, 32, 33, 64, 127, 128, 256, 768};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++)
        for (int gather = 0; gather < 2; gather++)
            for (int mode = 0; mode < 2; mode++)
                check_distances(dims[t], 37, gather, mode);
}

/* ---- top-k ------------------------------------------------------------------------------- */

static const float *topk_scores;
static int topk_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    float sa = topk_scores[a], sb = topk_scores[b];
    if (sa > sb)
        return -1;
    if (sa < sb)
        return 1;
    return a < b ? -1 : a > b;
}

static void check_topk(size_t n, size_t k, int mode)
{
    float *s = xalloc(n * sizeof(float));
    uint32_t *order = xalloc(n * sizeof(uint32_t));
    uint32_t *ids = xalloc((k + 1) * sizeof(uint32_t));
    float *vals = xalloc((k + 1) * sizeof(float));
    size_t n_valid = 0;
    for (size_t i = 0; i < n; i++) {
        if (mode == 1)
            s[i] = (float)dr_test_rand_int(0, 5); /* many ties */
        else if (mode == 2)
            s[i] = (float)i; /* ascending: every new score enters the heap */
        else
            s[i] = dr_test_rand_normal();
        if (mode == 3 && i % 3 == 0)
            s[i] = NAN;
        if (!isnan(s[i]))
            order[n_valid++] = (uint32_t)i;
    }
    topk_scores = s;
    qsort(order, n_valid, sizeof(uint32_t), topk_cmp);
    size_t want_len = k < n_valid ? k : n_valid;
    size_t got = kern->topk_f32(n, s, k, ids, vals);
    size_t bad = 0;
    if (got != want_len)
        DR_TEST_FAIL("topk n=%zu k=%zu mode=%d: %zu results, want %zu", n, k, mode, got, want_len);
    for (size_t i = 0; i < want_len && i < got; i++)
        if ((ids[i] != order[i] || vals[i] != s[order[i]]) && bad++ < 3)
            DR_TEST_FAIL("topk n=%zu k=%zu mode=%d rank %zu: id %u, want %u", n, k, mode, i, ids[i],
                         order[i]);
    dr_aligned_free(s);
    dr_aligned_free(order);
    dr_aligned_free(ids);
    dr_aligned_free(vals);
}

static void test_topk(void)
{
    static const size_t ns[] = {1, 7, 8, 9, 100, 1000, 10007};
    static const size_t ks[] = {0, 1, 5, 10, 100, 2000};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (int mode = 0; mode < 4; mode++)
                check_topk(ns[a], ks[b], mode);
}

/* ---- driver ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*run)(void);
} ops[] = {
    {"gemm_s8", test_gemm_s8},     {"gemm_f32", test_gemm_f32},   {"quantize", test_quantize},
    {"layernorm", test_layernorm}, {"gelu", test_gelu},           {"softmax", test_softmax},
    {"lstm_cell", test_lstm_cell}, {"lstm_step", test_lstm_step}, {"distances", test_distances},
    {"topk", test_topk},           {"transpose", test_transpose},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ISA [OP]\n", argv[0]);
        return 2;
    }
    enum dr_isa isa;
    if (!dr_isa_parse(argv[1], &isa)) {
        fprintf(stderr, "test_kernels: unknown ISA '%s'\n", argv[1]);
        return 2;
    }
    const struct dr_kernels *table = dr__kernels_table(isa);
    if (!table) {
        printf("SKIP: %s kernels are not built for this architecture\n", argv[1]);
        return DR_TEST_SKIP;
    }
    if (!dr_cpu_supports_isa(dr_cpu_features_get(), isa)) {
        printf("SKIP: this CPU (%s) lacks %s\n", dr_cpu_features_get()->model_name, argv[1]);
        return DR_TEST_SKIP;
    }
    kern = table;
    ref = dr__kernels_table(DR_ISA_REF);
    emulated = getenv("DR_TEST_EMULATED") != NULL;
    dr_test_init_seed();
    int ran = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (argc > 2 && strcmp(argv[2], ops[i].name) != 0)
            continue;
        int before = dr_test_failures;
        ops[i].run();
        printf("%s %s/%s (seed %" PRIu64 ")\n", dr_test_failures == before ? "PASS" : "FAIL",
               argv[1], ops[i].name, dr_test_seed);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "test_kernels: unknown op '%s'\n", argv[2]);
        return 2;
    }
    return dr_test_failures ? 1 : 0;
}
