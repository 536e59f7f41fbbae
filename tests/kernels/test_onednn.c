/* test_onednn.c: the oneDNN backend computes the native kernels' integers, bit for bit,
 * inside the int8 scheme's ranges (full-range s8 activations, weights in [-64, 63], their
 * extremes included), through bucket-sized and padded M, dense and strided buffers; its
 * fp32 form stays within the fp32 GEMM bound of __ref; bad arguments get clear errors. */
#include "dr_test.h"
#include "kernels.h"
#include "onednn.h"

#include <math.h>
#include <string.h>

static void check_s8(size_t n, size_t k, int extremes)
{
    static const size_t buckets[] = {1, 8, 16, 64};
    static const size_t ms[] = {1, 7, 13, 16, 64};
    size_t lda = k + 5, ldc = n + 3;
    int8_t *w = dr_aligned_alloc(n * k), *a = dr_aligned_alloc(64 * lda);
    int32_t *c = dr_aligned_alloc(64 * ldc * 4), *want = dr_aligned_alloc(64 * ldc * 4);
    for (size_t i = 0; i < n * k; i++)
        w[i] = extremes ? (int8_t)((i & 1) ? DR_S8_WEIGHT_MIN : DR_S8_WEIGHT_MAX)
                        : (int8_t)dr_test_rand_int(DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX);
    for (size_t i = 0; i < 64 * lda; i++)
        a[i] = extremes ? (int8_t)((i & 1) ? 127 : -128) : (int8_t)dr_test_rand_int(-128, 127);
    struct dr_onednn_matmul *mm = NULL;
    struct dr_error err = {0};
    if (dr_onednn_matmul_create_s8(n, k, w, k, buckets, 4, &mm, &err) != DR_OK) {
        DR_TEST_FAIL("create_s8 n=%zu k=%zu: %s", n, k, err.msg);
        goto out;
    }
    struct dr_packed_s8 packed;
    DR_ASSERT(dr_packed_s8_init(&packed, n, k, w, k, NULL) == DR_OK);
    void *ws = dr_aligned_alloc(dr_onednn_matmul_workspace_size(mm, 64));
    for (size_t t = 0; t < sizeof ms / sizeof ms[0]; t++) {
        size_t m = ms[t];
        for (int dense = 0; dense < 2; dense++) {
            size_t la = dense ? k : lda, lc = dense ? n : ldc;
            memset(c, 0, 64 * ldc * 4);
            dr_kernels_get()->gemm_s8s8s32(m, a, la, &packed, want, lc);
            enum dr_status st = dr_onednn_matmul_run_s8(mm, m, a, la, c, lc, ws);
            DR_CHECK(st == DR_OK, "run_s8 m=%zu: %s", m, dr_status_str(st));
            size_t bad = 0;
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < n; j++)
                    if (c[i * lc + j] != want[i * lc + j] && bad++ < 3)
                        DR_TEST_FAIL("onednn s8 n=%zu k=%zu m=%zu dense=%d [%zu][%zu]: %d, "
                                     "native %d (impl %s)",
                                     n, k, m, dense, i, j, c[i * lc + j], want[i * lc + j],
                                     dr_onednn_matmul_impl(mm, m));
        }
    }
    printf("onednn s8 n=%zu k=%zu: impl m=1 %s, m=64 %s\n", n, k, dr_onednn_matmul_impl(mm, 1),
           dr_onednn_matmul_impl(mm, 64));
    /* Past the largest bucket, and the wrong element type: refused, nothing written. */
    DR_CHECK(dr_onednn_matmul_run_s8(mm, 65, a, k, c, n, ws) == DR_ERR_INVALID_ARG,
             "m past the largest bucket was accepted");
    DR_CHECK(dr_onednn_matmul_run_f32(mm, 1, (const float *)(const void *)a, k, (float *)c, n,
                                      ws) == DR_ERR_INVALID_ARG,
             "an s8 matmul ran as fp32");
    dr_aligned_free(ws);
    dr_packed_s8_deinit(&packed);
out:
    dr_onednn_matmul_destroy(mm);
    dr_aligned_free(w);
    dr_aligned_free(a);
    dr_aligned_free(c);
    dr_aligned_free(want);
}

static void check_f32(size_t n, size_t k)
{
    static const size_t buckets[] = {4, 32};
    size_t m = 29;
    float *w = dr_aligned_alloc(n * k * 4), *a = dr_aligned_alloc(m * k * 4);
    float *bias = dr_aligned_alloc(n * 4), *c = dr_aligned_alloc(m * n * 4);
    float *want = dr_aligned_alloc(m * n * 4);
    for (size_t i = 0; i < n * k; i++)
        w[i] = dr_test_rand_normal();
    for (size_t i = 0; i < m * k; i++)
        a[i] = dr_test_rand_normal();
    for (size_t j = 0; j < n; j++)
        bias[j] = dr_test_rand_normal();
    struct dr_onednn_matmul *mm = NULL;
    struct dr_error err = {0};
    if (dr_onednn_matmul_create_f32(n, k, w, k, bias, buckets, 2, &mm, &err) != DR_OK) {
        DR_TEST_FAIL("create_f32: %s", err.msg);
    } else {
        void *ws = dr_aligned_alloc(dr_onednn_matmul_workspace_size(mm, m));
        DR_CHECK(dr_onednn_matmul_run_f32(mm, m, a, k, c, n, ws) == DR_OK, "run_f32");
        dr__kernels_table(DR_ISA_REF)->gemm_f32_nt(m, n, k, a, k, w, k, bias, want, n);
        size_t bad = 0;
        for (size_t i = 0; i < m * n; i++) {
            double mag = 0;
            for (size_t kk = 0; kk < k; kk++)
                mag += fabs((double)a[(i / n) * k + kk] * (double)w[(i % n) * k + kk]);
            if (fabs((double)c[i] - (double)want[i]) > 1e-6 + 4e-7 * (double)(k + 8) * mag &&
                bad++ < 3)
                DR_TEST_FAIL("onednn f32 [%zu]: %.9g, ref %.9g", i, (double)c[i], (double)want[i]);
        }
        printf("onednn f32 n=%zu k=%zu: impl %s\n", n, k, dr_onednn_matmul_impl(mm, m));
        dr_aligned_free(ws);
    }
    dr_onednn_matmul_destroy(mm);
    void *bufs[] = {w, a, bias, c, want};
    for (size_t i = 0; i < 5; i++)
        dr_aligned_free(bufs[i]);
}

int main(void)
{
    dr_test_init_seed();
    check_s8(1, 3, 0);
    check_s8(17, 64, 0);
    check_s8(256, 256, 0);
    check_s8(33, 1027, 0);
    check_s8(64, 3072, 1); /* extremes over a long k: no saturation anywhere */

    check_f32(17, 64);
    check_f32(256, 256);

    /* Clear errors for bad input. */
    struct dr_onednn_matmul *mm = NULL;
    struct dr_error err = {0};
    int8_t bad_w[4] = {0, 100, 0, 0};
    size_t one = 1, unsorted[2] = {8, 4};
    DR_CHECK(dr_onednn_matmul_create_s8(2, 2, bad_w, 2, &one, 1, &mm, &err) == DR_ERR_INVALID_ARG &&
                 strstr(err.msg, "[0][1] = 100") && mm == NULL,
             "weight outside the scheme accepted (%s)", err.msg);
    int8_t ok_w[4] = {0};
    DR_CHECK(dr_onednn_matmul_create_s8(2, 2, ok_w, 2, unsorted, 2, &mm, &err) ==
                     DR_ERR_INVALID_ARG &&
                 mm == NULL,
             "unsorted buckets accepted");
    DR_CHECK(dr_gemm_backend_from_env() == DR_GEMM_NATIVE || getenv("DR_GEMM"), "default backend");
    printf("%s onednn (seed %llu)\n", dr_test_failures ? "FAIL" : "PASS",
           (unsigned long long)dr_test_seed);
    return dr_test_failures ? 1 : 0;
}
