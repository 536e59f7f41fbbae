/* test_bundle.c: the bundle loader (models/bundle.h) on a good and on broken bundles.
 *
 * Usage (bundle_check.py writes the bundles and calls it):
 *   test_bundle load DIR          loads; every id finds its row and nothing else matches;
 *                                 exact scores equal a double-precision dot within the GEMM
 *                                 bound, over the whole range and over sub-ranges; bad
 *                                 arguments are refused; the index, the interest model, the
 *                                 categories and the text projection agree with the bundle
 *   test_bundle bad DIR TEXT      loading fails with an error whose message holds TEXT, and
 *                                 *out is untouched
 */
#include "bundle.h"
#include "dr_test.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static int check_load(const char *dir)
{
    struct dr_error err = {0};
    struct dr_bundle *b = NULL;
    if (dr_bundle_load(dir, NULL, &b, &err) != DR_OK) {
        DR_TEST_FAIL("load %s: %s", dir, err.msg);
        return 1;
    }
    size_t n = dr_bundle_n_items(b), dim = dr_bundle_item_dim(b);
    DR_CHECK(n > 0 && dim > 0, "shape %zu x %zu", n, dim);
    DR_CHECK(dr_bundle_name(b)[0] && dr_bundle_version(b)[0], "name and version");
    DR_CHECK(dr_interest_item_dim(dr_bundle_interest(b)) == dim, "interest item_dim");
    struct dr_ann_info info;
    dr_ann_get_info(dr_bundle_index(b), &info);
    DR_CHECK(info.n == n && info.dim == dim, "index %zu x %zu", info.n, info.dim);
    DR_CHECK(dr_bundle_ef_search(b) > 0, "ef_search");

    /* ids: each row round-trips; a prefix, an extension and a stranger do not match */
    for (size_t r = 0; r < n; r++) {
        size_t len = 0, row = SIZE_MAX;
        const char *id = dr_bundle_item_id(b, r, &len);
        DR_CHECK(strlen(id) == len && len > 0, "row %zu: id length", r);
        DR_CHECK(dr_bundle_item_row(b, id, len, &row) && row == r, "row %zu (%s): found %zu", r, id,
                 row);
        char longer[512];
        snprintf(longer, sizeof longer, "%s~", id);
        row = SIZE_MAX;
        size_t found_len = 0;
        if (dr_bundle_item_row(b, id, len - 1, &row)) {
            const char *found = dr_bundle_item_id(b, row, &found_len);
            DR_CHECK(found_len == len - 1 && memcmp(found, id, len - 1) == 0,
                     "row %zu: a prefix matched row %zu", r, row);
        }
        DR_CHECK(!dr_bundle_item_row(b, longer, strlen(longer), &row) || row != r,
                 "row %zu: an extension matched", r);
    }
    size_t row = 12345;
    DR_CHECK(!dr_bundle_item_row(b, "no such item, surely", 20, &row) && row == 12345,
             "a stranger matched");

    /* event types and categories */
    int32_t type = -1;
    DR_CHECK(dr_bundle_n_event_types(b) > 0 &&
                 dr_bundle_event_type(b, dr_bundle_event_type_name(b, 0), &type) && type == 0,
             "event types");
    DR_CHECK(!dr_bundle_event_type(b, "no-such-type", &type), "unknown event type matched");
    if (dr_bundle_has_categories(b)) {
        DR_CHECK(dr_bundle_n_categories(b) == info.n_categories, "categories %zu, index %u",
                 dr_bundle_n_categories(b), info.n_categories);
        for (size_t r = 0; r < n; r++)
            DR_CHECK(dr_bundle_item_category(b, r) < dr_bundle_n_categories(b), "row %zu", r);
    }

    /* exact scores against a double-precision dot, whole range and sub-ranges */
    enum { N_USERS = 7 };
    float *users = malloc(N_USERS * dim * sizeof(float));
    float *scores = malloc(N_USERS * n * sizeof(float));
    for (size_t i = 0; i < N_USERS * dim; i++)
        users[i] = dr_test_rand_normal();
    DR_CHECK(dr_bundle_score_exact(b, users, N_USERS, dim, 0, n, scores, n) == DR_OK, "score");
    double worst = 0;
    for (size_t u = 0; u < N_USERS; u++) {
        for (size_t r = 0; r < n; r++) {
            const float *v = dr_bundle_item_vector(b, r);
            double dot = 0, mag = 0;
            for (size_t j = 0; j < dim; j++) {
                dot += (double)users[u * dim + j] * (double)v[j];
                mag += fabs((double)users[u * dim + j] * (double)v[j]);
            }
            double e = fabs((double)scores[u * n + r] - dot);
            worst = fmax(worst, e);
            DR_CHECK(e <= 1e-6 + 2e-7 * (double)(dim + 8) * mag, "user %zu row %zu: %g vs %g", u, r,
                     (double)scores[u * n + r], dot);
        }
    }
    size_t lo = n / 3, hi = n - n / 5;
    float *part = malloc(N_USERS * (hi - lo) * sizeof(float));
    DR_CHECK(dr_bundle_score_exact(b, users, N_USERS, dim, lo, hi, part, hi - lo) == DR_OK,
             "score range");
    for (size_t u = 0; u < N_USERS; u++) {
        for (size_t r = lo; r < hi; r++)
            DR_CHECK(fabsf(part[u * (hi - lo) + r - lo] - scores[u * n + r]) <=
                         1e-5f * (1.0f + fabsf(scores[u * n + r])),
                     "range: user %zu row %zu", u, r);
    }
    DR_CHECK(dr_bundle_score_exact(b, users, 1, dim, 0, n + 1, scores, n + 1) == DR_ERR_INVALID_ARG,
             "a range past the end");
    DR_CHECK(dr_bundle_score_exact(b, users, 1, dim - 1, 0, n, scores, n) == DR_ERR_INVALID_ARG,
             "a user stride below item_dim");
    DR_CHECK(dr_bundle_score_exact(b, users, 1, dim, 0, n, scores, n - 1) == DR_ERR_INVALID_ARG,
             "a score stride below the range");
    DR_CHECK(dr_bundle_score_exact(b, users, 0, dim, 0, n, NULL, n) == DR_OK, "no users");
    /* the text projection: item_dim x text_dim, only with a text encoder */
    size_t text_dim = 123;
    const float *proj = dr_bundle_text_projection(b, &text_dim);
    DR_CHECK(proj ? text_dim > 0 && dr_bundle_text_encoder_path(b) : text_dim == 0,
             "text projection %p, text_dim %zu", (const void *)proj, text_dim);
    for (size_t i = 0; proj && i < dim * text_dim; i++)
        DR_CHECK(isfinite(proj[i]), "text projection value %zu", i);
    if (proj)
        printf("text projection %zu x %zu, normalize_input %d, max_len %zu\n", dim, text_dim,
               dr_bundle_text_projection_normalizes(b), dr_bundle_text_max_len(b));
    printf("bundle %s %s: %zu items x %zu, exact scores max abs error %.3g\n", dr_bundle_name(b),
           dr_bundle_version(b), n, dim, worst);
    free(part);
    free(scores);
    free(users);
    dr_bundle_destroy(b);
    return dr_test_failures ? 1 : 0;
}

static int check_bad(const char *dir, const char *text)
{
    struct dr_error err = {0};
    struct dr_bundle *sentinel = (struct dr_bundle *)&err, *b = sentinel;
    enum dr_status st = dr_bundle_load(dir, NULL, &b, &err);
    if (st == DR_OK) {
        DR_TEST_FAIL("%s: loaded, expected an error holding \"%s\"", dir, text);
        dr_bundle_destroy(b);
        return 1;
    }
    DR_CHECK(b == sentinel, "%s: *out changed on failure", dir);
    DR_CHECK(err.code == st && (st == DR_ERR_FORMAT || st == DR_ERR_IO), "%s: status %s", dir,
             dr_status_str(st));
    DR_CHECK(strstr(err.msg, text) != NULL, "%s: \"%s\" does not hold \"%s\"", dir, err.msg, text);
    printf("%s: %s\n", dr_status_str(st), err.msg);
    return dr_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    if (argc == 3 && strcmp(argv[1], "load") == 0)
        return check_load(argv[2]);
    if (argc == 4 && strcmp(argv[1], "bad") == 0)
        return check_bad(argv[2], argv[3]);
    fprintf(stderr, "usage: test_bundle load DIR | bad DIR TEXT\n");
    return 2;
}
