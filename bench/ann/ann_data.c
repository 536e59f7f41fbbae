/* ann_data.c: data for the ANN benchmark: the clustered synthetic recipe, item vectors from
 * a truncated SVD of an item co-occurrence matrix, and exact ground truth.
 *
 * The SVD is randomised subspace iteration on the symmetric co-occurrence matrix C (items
 * co-occurring within 10 positions of one user's sequence; counts): Y = C^q Omega, orthonormal
 * Q, B = Q^T C Q, eigen-decomposition of B by cyclic Jacobi, vectors Q V |lambda|^(1/2) for
 * the dim largest |lambda| (C symmetric: singular values are |eigenvalues|).  Everything is
 * seeded, so the vectors and the ground truth are the same run to run.
 */
#include "ann_data.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
    return ((double)(splitmix(state) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(uint64_t *state)
{
    double u = uniform01(state), v = uniform01(state);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

int dr_ann_data_synthetic(struct dr_ann_dataset *ds, size_t n, size_t nq, size_t dim,
                          size_t n_clusters, uint64_t seed)
{
    const size_t rank = 64;
    memset(ds, 0, sizeof *ds);
    snprintf(ds->name, sizeof ds->name, "synthetic-%zux%zu", n, dim);
    ds->n = n;
    ds->nq = nq;
    ds->dim = dim;
    ds->base = malloc(n * dim * sizeof(float));
    ds->queries = malloc(nq * dim * sizeof(float));
    float *centres = malloc(n_clusters * dim * sizeof(float));
    float *a = malloc(n_clusters * dim * rank * sizeof(float));
    double *row = malloc(dim * sizeof(double));
    if (!ds->base || !ds->queries || !centres || !a || !row) {
        free(centres);
        free(a);
        free(row);
        dr_ann_data_free(ds);
        return -1;
    }
    uint64_t st = seed;
    for (size_t i = 0; i < n_clusters * dim; i++)
        centres[i] = (float)normal(&st);
    for (size_t i = 0; i < n_clusters * dim * rank; i++)
        a[i] = (float)(normal(&st) / 8.0); /* N(0, 1/64) */
    for (size_t i = 0; i < n + nq; i++) {
        float *out = i < n ? ds->base + i * dim : ds->queries + (i - n) * dim;
        size_t k = (size_t)(splitmix(&st) % n_clusters);
        double z[64];
        for (size_t r = 0; r < rank; r++)
            z[r] = normal(&st);
        double norm = 0.0;
        for (size_t d = 0; d < dim; d++) {
            const float *ak = a + (k * dim + d) * rank;
            double v = centres[k * dim + d];
            for (size_t r = 0; r < rank; r++)
                v += (double)ak[r] * z[r];
            v += 0.3 * normal(&st);
            row[d] = v;
            norm += v * v;
        }
        norm = sqrt(norm);
        for (size_t d = 0; d < dim; d++)
            out[d] = (float)(row[d] / norm);
    }
    free(centres);
    free(a);
    free(row);
    return 0;
}

/* ---- co-occurrence SVD ---------------------------------------------------------------- */

struct csr {
    size_t n;
    size_t *start; /* n + 1 */
    uint32_t *col;
    float *val;
};

static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* y (n x r) = C x (n x r), row-major. */
static void csr_mul(const struct csr *c, const double *x, double *y, size_t r)
{
    for (size_t i = 0; i < c->n; i++) {
        double *yi = y + i * r;
        memset(yi, 0, r * sizeof(double));
        for (size_t p = c->start[i]; p < c->start[i + 1]; p++) {
            const double *xj = x + (size_t)c->col[p] * r;
            double v = c->val[p];
            for (size_t t = 0; t < r; t++)
                yi[t] += v * xj[t];
        }
    }
}

/* Orthonormal columns of y (n x r) by modified Gram-Schmidt, twice for stability. */
static void orthonormalise(double *y, size_t n, size_t r)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < r; j++) {
            for (size_t i = 0; i < j; i++) {
                double dot = 0.0;
                for (size_t row = 0; row < n; row++)
                    dot += y[row * r + i] * y[row * r + j];
                for (size_t row = 0; row < n; row++)
                    y[row * r + j] -= dot * y[row * r + i];
            }
            double norm = 0.0;
            for (size_t row = 0; row < n; row++)
                norm += y[row * r + j] * y[row * r + j];
            norm = norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
            for (size_t row = 0; row < n; row++)
                y[row * r + j] *= norm;
        }
    }
}

/* Eigen-decomposition of the symmetric r x r matrix a (destroyed) by cyclic Jacobi:
 * eigenvalues in w, eigenvectors in the columns of v. */
static void jacobi_eigen(double *a, size_t r, double *w, double *v)
{
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < r; j++)
            v[i * r + j] = i == j;
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (size_t i = 0; i < r; i++)
            for (size_t j = i + 1; j < r; j++)
                off += a[i * r + j] * a[i * r + j];
        if (off < 1e-22)
            break;
        for (size_t p = 0; p < r; p++) {
            for (size_t q = p + 1; q < r; q++) {
                double apq = a[p * r + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double theta = (a[q * r + q] - a[p * r + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (size_t k = 0; k < r; k++) {
                    double akp = a[k * r + p], akq = a[k * r + q];
                    a[k * r + p] = c * akp - s * akq;
                    a[k * r + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < r; k++) {
                    double apk = a[p * r + k], aqk = a[q * r + k];
                    a[p * r + k] = c * apk - s * aqk;
                    a[q * r + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < r; k++) {
                    double vkp = v[k * r + p], vkq = v[k * r + q];
                    v[k * r + p] = c * vkp - s * vkq;
                    v[k * r + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    for (size_t i = 0; i < r; i++)
        w[i] = a[i * r + i];
}

/* out += the rows ids[0..n) of base. */
static void add_rows(float *out, const float *base, const uint32_t *ids, size_t n, size_t dim)
{
    for (size_t e = 0; e < n; e++) {
        const float *row = base + (size_t)ids[e] * dim;
        for (size_t k = 0; k < dim; k++)
            out[k] += row[k];
    }
}

int dr_ann_data_cooccurrence_svd(struct dr_ann_dataset *ds, const char *path, size_t dim, size_t nq,
                                 uint64_t seed)
{
    const size_t window = 10, oversample = 16, power_iters = 4;
    memset(ds, 0, sizeof *ds);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ann_data: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 20, len = 0;
    uint32_t *users = malloc(cap * 4), *items = malloc(cap * 4);
    unsigned long u, it;
    uint32_t max_item = 0;
    while (fscanf(f, "%lu %lu", &u, &it) == 2) {
        if (len == cap) {
            cap *= 2;
            users = realloc(users, cap * 4);
            items = realloc(items, cap * 4);
        }
        users[len] = (uint32_t)u;
        items[len] = (uint32_t)(it - 1);
        if (items[len] + 1 > max_item)
            max_item = items[len] + 1;
        len++;
    }
    fclose(f);
    size_t n = max_item;
    /* pairs within the window, both directions, as (i << 32 | j), summed after sorting */
    size_t n_pairs = 0, cap_pairs = len * window * 2;
    uint64_t *pairs = malloc(cap_pairs * sizeof(uint64_t));
    for (size_t a = 0; a < len; a++) {
        for (size_t b = a + 1; b < len && b <= a + window && users[b] == users[a]; b++) {
            if (items[a] == items[b])
                continue;
            pairs[n_pairs++] = (uint64_t)items[a] << 32 | items[b];
            pairs[n_pairs++] = (uint64_t)items[b] << 32 | items[a];
        }
    }
    qsort(pairs, n_pairs, sizeof(uint64_t), cmp_u64);
    struct csr c = {n, calloc(n + 1, sizeof(size_t)), malloc(n_pairs * 4), malloc(n_pairs * 4)};
    size_t nnz = 0;
    for (size_t p = 0; p < n_pairs; p++) {
        if (p > 0 && pairs[p] == pairs[p - 1]) {
            c.val[nnz - 1] += 1.0f;
            continue;
        }
        c.col[nnz] = (uint32_t)pairs[p];
        c.val[nnz] = 1.0f;
        c.start[(pairs[p] >> 32) + 1]++;
        nnz++;
    }
    for (size_t i = 0; i < n; i++)
        c.start[i + 1] += c.start[i];
    free(pairs);

    size_t r = dim + oversample;
    double *y = malloc(n * r * sizeof(double)), *z = malloc(n * r * sizeof(double));
    uint64_t st = seed;
    for (size_t i = 0; i < n * r; i++)
        z[i] = normal(&st);
    for (size_t q = 0; q < power_iters; q++) {
        csr_mul(&c, z, y, r);
        orthonormalise(y, n, r);
        double *t = y;
        y = z;
        z = t;
    }
    /* z: orthonormal basis Q (n x r); B = Q^T C Q */
    csr_mul(&c, z, y, r);
    double *bm = calloc(r * r, sizeof(double)), *w = malloc(r * sizeof(double)),
           *v = malloc(r * r * sizeof(double));
    for (size_t row = 0; row < n; row++)
        for (size_t i = 0; i < r; i++)
            for (size_t j = 0; j < r; j++)
                bm[i * r + j] += z[row * r + i] * y[row * r + j];
    for (size_t i = 0; i < r; i++)
        for (size_t j = i + 1; j < r; j++)
            bm[i * r + j] = bm[j * r + i] = 0.5 * (bm[i * r + j] + bm[j * r + i]);
    jacobi_eigen(bm, r, w, v);
    /* the dim largest |lambda| */
    size_t *order = malloc(r * sizeof(size_t));
    for (size_t i = 0; i < r; i++)
        order[i] = i;
    for (size_t i = 0; i < r; i++)
        for (size_t j = i + 1; j < r; j++)
            if (fabs(w[order[j]]) > fabs(w[order[i]])) {
                size_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    snprintf(ds->name, sizeof ds->name, "beauty-cooc-svd-%zux%zu", n, dim);
    ds->n = n;
    ds->dim = dim;
    ds->base = malloc(n * dim * sizeof(float));
    for (size_t row = 0; row < n; row++) {
        for (size_t k = 0; k < dim; k++) {
            size_t e = order[k];
            double s = 0.0;
            for (size_t i = 0; i < r; i++)
                s += z[row * r + i] * v[i * r + e];
            ds->base[row * dim + k] = (float)(s * sqrt(fabs(w[e])));
        }
    }
    /* queries: nq users spread over the file, the sum of their items but the last */
    size_t n_users = 0;
    for (size_t p = 0; p < len; p++)
        if (p == 0 || users[p] != users[p - 1])
            n_users++;
    ds->nq = nq < n_users ? nq : n_users;
    ds->queries = calloc(ds->nq * dim, sizeof(float));
    size_t user_index = 0, q = 0;
    for (size_t p = 0; p < len && q < ds->nq;) {
        size_t end = p + 1;
        while (end < len && users[end] == users[p])
            end++;
        if ((user_index + 1) * ds->nq / n_users != user_index * ds->nq / n_users) {
            add_rows(ds->queries + q * dim, ds->base, items + p, end - p - 1, dim);
            q++;
        }
        user_index++;
        p = end;
    }
    ds->nq = q;
    free(order);
    free(bm);
    free(w);
    free(v);
    free(y);
    free(z);
    free(c.start);
    free(c.col);
    free(c.val);
    free(users);
    free(items);
    return 0;
}

/* ---- ground truth ---------------------------------------------------------------------- */

struct gt_job {
    struct dr_ann_dataset *ds;
    size_t k, q_begin, q_end;
};

static void *gt_worker(void *arg)
{
    struct gt_job *job = arg;
    const struct dr_ann_dataset *ds = job->ds;
    size_t k = job->k, dim = ds->dim;
    double *best = malloc(k * sizeof(double));
    double *qd = malloc(dim * sizeof(double));
    for (size_t q = job->q_begin; q < job->q_end; q++) {
        uint32_t *out = ds->gt + q * k;
        size_t got = 0;
        for (size_t d = 0; d < dim; d++)
            qd[d] = ds->queries[q * dim + d];
        for (size_t i = 0; i < ds->n; i++) {
            const float *x = ds->base + i * dim;
            double s = 0.0;
            for (size_t d = 0; d < dim; d++)
                s += qd[d] * (double)x[d];
            if (got == k && s <= best[k - 1])
                continue;
            size_t j = got < k ? got++ : k - 1;
            while (j > 0 && best[j - 1] < s) {
                best[j] = best[j - 1];
                out[j] = out[j - 1];
                j--;
            }
            best[j] = s;
            out[j] = (uint32_t)i;
        }
    }
    free(best);
    free(qd);
    return NULL;
}

int dr_ann_data_ground_truth(struct dr_ann_dataset *ds, size_t k, unsigned n_threads,
                             const char *cache_path)
{
    ds->gt_k = k;
    ds->gt = malloc(ds->nq * k * sizeof(uint32_t));
    if (!ds->gt)
        return -1;
    /* the cache holds a checksum of the data so a changed recipe is recomputed */
    uint64_t sum = 1469598103934665603ULL;
    const uint8_t *bytes[2] = {(const uint8_t *)ds->base, (const uint8_t *)ds->queries};
    size_t sizes[2] = {ds->n * ds->dim * 4, ds->nq * ds->dim * 4};
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < sizes[b]; i += 7)
            sum = (sum ^ bytes[b][i]) * 1099511628211ULL;
    if (cache_path) {
        FILE *f = fopen(cache_path, "rb");
        uint64_t head[3];
        if (f && fread(head, 8, 3, f) == 3 && head[0] == sum && head[1] == ds->nq && head[2] == k &&
            fread(ds->gt, 4, ds->nq * k, f) == ds->nq * k) {
            fclose(f);
            return 0;
        }
        if (f)
            fclose(f);
    }
    if (n_threads < 1)
        n_threads = 1;
    pthread_t threads[64];
    struct gt_job jobs[64];
    if (n_threads > 64)
        n_threads = 64;
    for (unsigned t = 0; t < n_threads; t++) {
        jobs[t].ds = ds;
        jobs[t].k = k;
        jobs[t].q_begin = ds->nq * t / n_threads;
        jobs[t].q_end = ds->nq * (t + 1) / n_threads;
        pthread_create(&threads[t], NULL, gt_worker, &jobs[t]);
    }
    for (unsigned t = 0; t < n_threads; t++)
        pthread_join(threads[t], NULL);
    if (cache_path) {
        FILE *f = fopen(cache_path, "wb");
        if (f) {
            uint64_t head[3] = {sum, ds->nq, k};
            fwrite(head, 8, 3, f);
            fwrite(ds->gt, 4, ds->nq * k, f);
            fclose(f);
        }
    }
    return 0;
}

void dr_ann_data_free(struct dr_ann_dataset *ds)
{
    free(ds->base);
    free(ds->queries);
    free(ds->gt);
    memset(ds, 0, sizeof *ds);
}
