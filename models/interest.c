/* interest.c: the interest model over the kernel table (interest.h says what it computes).
 *
 * One code path advances a batch of users by one event: features for each user's event
 * (reading and then updating the user's long-term sum, weight and last timestamp), then the
 * LSTM layers on contiguous h/c matrices in the workspace.  dr_interest_run orders users by
 * history length, longest first, so at step t the users that still have events are a prefix
 * of the rows; dr_interest_step gathers the saved states into those matrices and scatters
 * them back.  Step-by-step and from-scratch therefore run the same operations per user.
 * dr_interest_run advances a chunk of steps at a time, layer by layer: the input products
 * (x W_ih^T + b) of all the chunk's events are one GEMM, which reads the weights once for up
 * to CHUNK_ROWS rows instead of once per step; only h W_hh^T is sequential.  Each row's
 * products and epilogue are the same operations as one step at a time (row-wise activation
 * scales, exact int32 sums), so a chunk changes no result.
 * The long-term sum and weight are doubles in the state.  Nothing allocates after load.
 */
#include "interest.h"

#include "linear.h"
#include "model_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lstm_layer {
    struct dr__linear w_ih, w_hh;
    float *bias; /* b_ih + b_hh, 4H */
};

struct dr_interest {
    const struct dr_kernels *kern;
    struct dr_model_file *mf;
    struct dr__owned owned;
    size_t dim, hidden, n_layers, n_types, n_buckets, max_events;
    double half_life_s;
    bool is_int8;
    const float *type_emb, *gap_emb, *num_w, *num_b, *num_mean, *num_std;
    struct lstm_layer layers[2];
    struct dr__linear short_proj, gate;
};

struct state_header {
    int64_t last_ts;
    uint64_t n_events;
    double z; /* sum of decayed weights */
    double reserved;
};

/* ---- loading --------------------------------------------------------------------------- */

static enum dr_status get_f32(struct dr_interest *m, const char *name, size_t ndim,
                              const size_t *shape, const float **out, struct dr_error *err)
{
    const void *p = NULL;
    enum dr_status st = dr_model_file_tensor(m->mf, name, DR_DTYPE_F32, ndim, shape, 4, &p, err);
    if (st == DR_OK)
        *out = p;
    return st;
}

static enum dr_status load_config(struct dr_interest *m, struct dr_error *err)
{
    static const char *const keys[] = {"item_dim",      "hidden_size",   "num_layers",
                                       "n_event_types", "n_gap_buckets", "max_events"};
    static const int64_t max[] = {1 << 14, 1 << 14, 2, 1024, 64, 1 << 20};
    int64_t v[6];
    for (size_t i = 0; i < 6; i++) {
        enum dr_status st = dr_model_file_config_int(m->mf, keys[i], 1, max[i], &v[i], err);
        if (st != DR_OK)
            return st;
    }
    m->dim = (size_t)v[0];
    m->hidden = (size_t)v[1];
    m->n_layers = (size_t)v[2];
    m->n_types = (size_t)v[3];
    m->n_buckets = (size_t)v[4];
    m->max_events = (size_t)v[5];
    enum dr_status st = dr_model_file_config_number(m->mf, "half_life_s", &m->half_life_s, err);
    if (st != DR_OK)
        return st;
    if (!(m->half_life_s > 0.0))
        return dr_error_set(err, DR_ERR_FORMAT, "manifest.json: config.half_life_s must be > 0");
    return DR_OK;
}

static enum dr_status load_lstm_layer(struct dr_interest *m, size_t l, struct dr_error *err)
{
    char wih[64], whh[64], bih[64], bhh[64];
    snprintf(wih, sizeof wih, "lstm.weight_ih_l%zu", l);
    snprintf(whh, sizeof whh, "lstm.weight_hh_l%zu", l);
    snprintf(bih, sizeof bih, "lstm.bias_ih_l%zu", l);
    snprintf(bhh, sizeof bhh, "lstm.bias_hh_l%zu", l);
    size_t h = m->hidden, in = l == 0 ? m->dim : h;
    struct lstm_layer *L = &m->layers[l];
    const float *b1 = NULL, *b2 = NULL;
    enum dr_status st;
    if ((st = dr__linear_load(m->mf, &m->owned, 1, (const char *[]){wih}, NULL, 4 * h, in,
                              m->is_int8, &L->w_ih, err)) ||
        (st = dr__linear_load(m->mf, &m->owned, 1, (const char *[]){whh}, NULL, 4 * h, h,
                              m->is_int8, &L->w_hh, err)) ||
        (st = get_f32(m, bih, 1, (size_t[]){4 * h}, &b1, err)) ||
        (st = get_f32(m, bhh, 1, (size_t[]){4 * h}, &b2, err)))
        return st;
    /* h W_hh^T runs one row per step at batch 1, and so does x W_ih^T in dr_interest_step:
     * give both the layout one-row products stream fastest (kernels.h). */
    if (m->is_int8 && ((st = dr_packed_s8_add_row_layout(&L->w_hh.packed, err)) ||
                       (st = dr_packed_s8_add_row_layout(&L->w_ih.packed, err))))
        return st;
    L->bias = dr__owned_alloc(&m->owned, 4 * h * sizeof(float));
    if (!L->bias)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < 4 * h; j++)
        L->bias[j] = b1[j] + b2[j];
    return DR_OK;
}

enum dr_status dr_interest_load(const char *path, const struct dr_model_opts *opts,
                                struct dr_interest **out, struct dr_error *err)
{
    struct dr_interest *m = calloc(1, sizeof *m);
    if (!m)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    m->kern = opts && opts->kernels ? opts->kernels : dr_kernels_get();
    enum dr_status st = dr_model_file_open(path, &m->mf, err);
    if (st != DR_OK)
        goto fail;
    if (strcmp(dr_model_file_architecture(m->mf), "interest-lstm") != 0) {
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "manifest.json: architecture \"%.64s\", expected \"interest-lstm\"",
                          dr_model_file_architecture(m->mf));
        goto fail;
    }
    enum dr_precision prec = opts ? opts->precision : DR_PRECISION_AUTO;
    m->is_int8 =
        prec == DR_PRECISION_INT8 || (prec == DR_PRECISION_AUTO && dr_model_file_is_int8(m->mf));
    if ((st = load_config(m, err)) != DR_OK)
        goto fail;
    size_t d = m->dim, h = m->hidden, nf = DR_INTEREST_N_NUMERIC;
    if ((st = get_f32(m, "features.event_type.weight", 2, (size_t[]){m->n_types, d}, &m->type_emb,
                      err)) ||
        (st = get_f32(m, "features.gap_bucket.weight", 2, (size_t[]){m->n_buckets, d}, &m->gap_emb,
                      err)) ||
        (st = get_f32(m, "features.numeric.weight", 2, (size_t[]){d, nf}, &m->num_w, err)) ||
        (st = get_f32(m, "features.numeric.bias", 1, (size_t[]){d}, &m->num_b, err)) ||
        (st = get_f32(m, "features.numeric_mean", 1, (size_t[]){nf}, &m->num_mean, err)) ||
        (st = get_f32(m, "features.numeric_std", 1, (size_t[]){nf}, &m->num_std, err)))
        goto fail;
    for (size_t f = 0; f < nf; f++) {
        if (!(m->num_std[f] > 0.0f)) {
            st = dr_error_set(err, DR_ERR_FORMAT, "features.numeric_std[%zu] must be > 0", f);
            goto fail;
        }
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        if ((st = load_lstm_layer(m, l, err)) != DR_OK)
            goto fail;
    }
    if ((st = dr__linear_load(m->mf, &m->owned, 1, (const char *[]){"fuse.short.weight"},
                              (const char *[]){"fuse.short.bias"}, d, h, m->is_int8, &m->short_proj,
                              err)) ||
        (st = dr__linear_load(m->mf, &m->owned, 1, (const char *[]){"fuse.gate.weight"},
                              (const char *[]){"fuse.gate.bias"}, d, h + d, m->is_int8, &m->gate,
                              err)))
        goto fail;
    *out = m;
    return DR_OK;

fail:
    dr_interest_destroy(m);
    return st;
}

void dr_interest_destroy(struct dr_interest *model)
{
    if (!model)
        return;
    for (size_t l = 0; l < 2; l++) {
        dr__linear_deinit(&model->layers[l].w_ih);
        dr__linear_deinit(&model->layers[l].w_hh);
    }
    dr__linear_deinit(&model->short_proj);
    dr__linear_deinit(&model->gate);
    dr__owned_free_all(&model->owned);
    dr_model_file_destroy(model->mf);
    free(model);
}

size_t dr_interest_item_dim(const struct dr_interest *model)
{
    return model->dim;
}

size_t dr_interest_hidden_size(const struct dr_interest *model)
{
    return model->hidden;
}

size_t dr_interest_n_layers(const struct dr_interest *model)
{
    return model->n_layers;
}

size_t dr_interest_max_events(const struct dr_interest *model)
{
    return model->max_events;
}

bool dr_interest_is_int8(const struct dr_interest *model)
{
    return model->is_int8;
}

/* ---- states ----------------------------------------------------------------------------- */

/* header | double S[dim] | float h[layers][hidden] | float c[layers][hidden] */
size_t dr_interest_state_size(const struct dr_interest *model)
{
    return sizeof(struct state_header) + model->dim * sizeof(double) +
           dr_round_up(2 * model->n_layers * model->hidden * sizeof(float), 8);
}

static double *state_sum(void *state)
{
    return (double *)(void *)((char *)state + sizeof(struct state_header));
}

static float *state_h(const struct dr_interest *m, void *state)
{
    return (float *)(void *)((char *)state + sizeof(struct state_header) + m->dim * sizeof(double));
}

void dr_interest_state_init(const struct dr_interest *model, void *state)
{
    memset(state, 0, dr_interest_state_size(model));
}

uint64_t dr_interest_state_n_events(const void *state)
{
    struct state_header hd;
    memcpy(&hd, state, sizeof hd);
    return hd.n_events;
}

/* ---- workspace --------------------------------------------------------------------------- */

struct order_key {
    size_t n, user;
};

/* Input rows per chunk of dr_interest_run (events x users): enough to read the input weights
 * once for many rows, small enough for the chunk's gates to stay in L2 (64 x 4H floats). */
#define CHUNK_ROWS 64

static size_t chunk_steps(size_t n_users)
{
    return n_users < CHUNK_ROWS ? CHUNK_ROWS / n_users : 1;
}

struct interest_ws {
    float *e, *hseq, *hbuf, *cbuf, *gates, *tmp, *u, *g, *s;
    int8_t *xq, *hq;
    float *xs, *hs;
    size_t *order;
    struct order_key *keys;
    void **row_states;
    char *states; /* n_users states, for dr_interest_run without caller states */
    struct dr__linear_scratch scratch;
};

static size_t ws_layout(const struct dr_interest *m, size_t n, char *base, struct interest_ws *ws)
{
    size_t d = m->dim, h = m->hidden, wide = h + d > 4 * h ? h + d : 4 * h;
    size_t in = d > h ? d : h, rows = n * chunk_steps(n);
    size_t xq_len = rows * in > n * (h + d) ? rows * in : n * (h + d);
    size_t sizes[] = {
        rows * d * sizeof(float),            /* e: a chunk's layer-0 inputs */
        rows * h * sizeof(float),            /* hseq: a chunk's h, the next layer's inputs */
        m->n_layers * n * h * sizeof(float), /* hbuf */
        m->n_layers * n * h * sizeof(float), /* cbuf */
        rows * 4 * h * sizeof(float),        /* gates */
        n * wide * sizeof(float),            /* tmp */
        n * (h + d) * sizeof(float),         /* u = [h; long] */
        n * d * sizeof(float),               /* g */
        n * d * sizeof(float),               /* s */
        xq_len,                              /* xq */
        n * h,                               /* hq */
        rows * sizeof(float),                /* xs */
        n * sizeof(float),                   /* hs */
        n * sizeof(size_t),                  /* order */
        n * sizeof(struct order_key),        /* keys */
        n * sizeof(void *),                  /* row_states */
        n * dr_interest_state_size(m),       /* states */
    };
    void *p[sizeof sizes / sizeof sizes[0]];
    size_t at = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = base ? base + at : NULL;
        at += dr_round_up(sizes[i] ? sizes[i] : 1, DR_ALIGNMENT);
    }
    if (ws) {
        ws->e = p[0];
        ws->hseq = p[1];
        ws->hbuf = p[2];
        ws->cbuf = p[3];
        ws->gates = p[4];
        ws->tmp = p[5];
        ws->u = p[6];
        ws->g = p[7];
        ws->s = p[8];
        ws->xq = p[9];
        ws->hq = p[10];
        ws->xs = p[11];
        ws->hs = p[12];
        ws->order = p[13];
        ws->keys = p[14];
        ws->row_states = p[15];
        ws->states = p[16];
        ws->scratch = (struct dr__linear_scratch){.qa = ws->xq, .qs = ws->xs, .tmp = ws->tmp};
    }
    return at;
}

size_t dr_interest_workspace_size(const struct dr_interest *model, size_t n_users)
{
    return ws_layout(model, n_users ? n_users : 1, NULL, NULL);
}

/* ---- one event ------------------------------------------------------------------------------ */

static bool event_ok(const struct dr_interest *m, const struct dr_interest_event *ev, bool has_prev,
                     int64_t prev_ts)
{
    return ev->item_vec && ev->event_type >= 0 && (size_t)ev->event_type < m->n_types &&
           (!has_prev || ev->ts >= prev_ts);
}

static size_t gap_bucket(const struct dr_interest *m, bool first, int64_t prev_ts, int64_t ts)
{
    if (first)
        return 0;
    uint64_t minutes = ts > prev_ts ? (uint64_t)(ts - prev_ts) / 60u : 0u;
    size_t bits = 0;
    while (minutes) {
        bits++;
        minutes >>= 1;
    }
    size_t b = 1 + bits;
    return b < m->n_buckets ? b : m->n_buckets - 1;
}

/* Writes the event's LSTM input to e and folds its item into the state's long-term sum. */
static void event_input(const struct dr_interest *m, void *state,
                        const struct dr_interest_event *ev, float *e)
{
    struct state_header hd;
    memcpy(&hd, state, sizeof hd);
    size_t d = m->dim;
    bool first = hd.n_events == 0;
    const float *type = m->type_emb + (size_t)ev->event_type * d;
    const float *gap = m->gap_emb + gap_bucket(m, first, hd.last_ts, ev->ts) * d;

    double raw[DR_INTEREST_N_NUMERIC] = {0};
    bool present[DR_INTEREST_N_NUMERIC] = {false, false, false, true};
    if (!isnan(ev->dwell_s)) {
        raw[0] = log1p(fmax(0.0, (double)ev->dwell_s));
        present[0] = true;
    }
    if (!isnan(ev->amount)) {
        raw[1] = log1p(fmax(0.0, (double)ev->amount));
        present[1] = true;
    }
    if (!isnan(ev->rating)) {
        raw[2] = (double)ev->rating;
        present[2] = true;
        raw[3] = 1.0;
    }
    float num[DR_INTEREST_N_NUMERIC];
    for (size_t f = 0; f < DR_INTEREST_N_NUMERIC; f++)
        num[f] =
            present[f] ? (float)((raw[f] - (double)m->num_mean[f]) / (double)m->num_std[f]) : 0.0f;
    for (size_t j = 0; j < d; j++) {
        float x = ev->item_vec[j];
        if (ev->text_vec)
            x += ev->text_vec[j];
        x = x + type[j] + gap[j];
        float lin = m->num_b[j];
        for (size_t f = 0; f < DR_INTEREST_N_NUMERIC; f++)
            lin += m->num_w[j * DR_INTEREST_N_NUMERIC + f] * num[f];
        e[j] = x + lin;
    }

    /* Long-term: S <- 2^(-gap / half_life) S + item, Z likewise with 1. */
    double *sum = state_sum(state);
    double decay = first ? 0.0 : exp2(-(double)(ev->ts - hd.last_ts) / m->half_life_s);
    for (size_t j = 0; j < d; j++)
        sum[j] = decay * sum[j] + (double)ev->item_vec[j];
    hd.z = decay * hd.z + 1.0;
    hd.last_ts = ev->ts;
    hd.n_events++;
    memcpy(state, &hd, sizeof hd);
}

/* Advances the rows of h and c (row stride hidden, layer stride n_rows) by n_steps events.
 * Step i's events are rows [0, n_active[i]) of h/c (non-increasing counts) and, in e, the
 * rows from the sum of the earlier counts on.  Layer by layer: one product for the inputs of
 * all the steps, then h W_hh^T and the cell update step by step. */
static void lstm_advance(const struct dr_interest *m, size_t n_steps, const size_t *n_active,
                         size_t n_rows, const struct interest_ws *ws)
{
    const struct dr_kernels *k = m->kern;
    size_t h = m->hidden, g4 = 4 * h, total = 0;
    for (size_t i = 0; i < n_steps; i++)
        total += n_active[i];
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct lstm_layer *L = &m->layers[l];
        const float *x = l == 0 ? ws->e : ws->hseq; /* read in full before hseq is rewritten */
        size_t in = l == 0 ? m->dim : h;
        float *hl = ws->hbuf + l * n_rows * h, *cl = ws->cbuf + l * n_rows * h;
        if (m->is_int8) {
            k->quantize_rows_s8(total, in, x, in, ws->xq, in, ws->xs);
            struct dr_gemm_epilogue ep = {
                .a_scale = ws->xs, .w_scale = L->w_ih.scale, .bias = L->bias, .act = DR_ACT_NONE};
            k->gemm_s8s8f32(total, ws->xq, in, &L->w_ih.packed, ws->gates, g4, &ep);
        } else {
            dr__linear_product_f32(k, &L->w_ih, total, x, in, L->bias, ws->gates, g4);
        }
        float *gates = ws->gates, *hseq = ws->hseq;
        for (size_t i = 0; i < n_steps; i++) {
            size_t n = n_active[i];
            if (m->is_int8) {
                /* h is in [-1, 1]: its per-row scale loses little. */
                k->quantize_rows_s8(n, h, hl, h, ws->hq, h, ws->hs);
                struct dr_gemm_epilogue ep = {.a_scale = ws->hs,
                                              .w_scale = L->w_hh.scale,
                                              .bias = NULL,
                                              .act = DR_ACT_NONE,
                                              .accumulate = true};
                /* Every other step visits W_hh's groups backwards: it starts on the groups
                 * the step before ended on, still in L1. */
                struct dr_packed_s8 w_hh = L->w_hh.packed;
                w_hh.row_backward = i & 1; /* 2% at batch 1 (docs/models.md) */
                k->gemm_s8s8f32(n, ws->hq, h, &w_hh, gates, g4, &ep);
            } else {
                dr__linear_product_f32(k, &L->w_hh, n, hl, h, NULL, ws->tmp, g4);
                for (size_t j = 0; j < n * g4; j++)
                    gates[j] += ws->tmp[j];
            }
            k->lstm_cell_f32(n, h, gates, g4, cl, hl, h);
            if (l + 1 < m->n_layers)
                memcpy(hseq, hl, n * h * sizeof(float));
            gates += n * g4;
            hseq += n * h;
        }
    }
}

/* User vectors for n rows: u holds [h_top; long] per row (stride h + d). Row i goes to
 * out + dst_row[i] * ld_out (dst_row NULL: row i). */
static void fuse(const struct dr_interest *m, size_t n, const struct interest_ws *ws,
                 const size_t *dst_row, float *out, size_t ld_out)
{
    size_t d = m->dim, h = m->hidden;
    dr__linear_apply(m->kern, &m->gate, n, ws->u, h + d, ws->g, d, DR_ACT_NONE, false,
                     &ws->scratch);
    dr__linear_apply(m->kern, &m->short_proj, n, ws->u, h + d, ws->s, d, DR_ACT_NONE, false,
                     &ws->scratch);
    for (size_t i = 0; i < n; i++) {
        float *o = out + (dst_row ? dst_row[i] : i) * ld_out;
        const float *lng = ws->u + i * (h + d) + h;
        for (size_t j = 0; j < d; j++) {
            float g = 1.0f / (1.0f + expf(-ws->g[i * d + j]));
            o[j] = g * ws->s[i * d + j] + (1.0f - g) * lng[j];
        }
    }
}

/* [h_top; long] for the state into row u. */
static void fuse_input(const struct dr_interest *m, void *state, const float *h_top, float *u)
{
    struct state_header hd;
    memcpy(&hd, state, sizeof hd);
    memcpy(u, h_top, m->hidden * sizeof *u);
    const double *sum = state_sum(state);
    for (size_t j = 0; j < m->dim; j++)
        u[m->hidden + j] = hd.z > 0.0 ? (float)(sum[j] / hd.z) : 0.0f;
}

/* States <-> the workspace's h/c matrices (rows in order). */
static void gather(const struct dr_interest *m, size_t n, void *const *states,
                   const struct interest_ws *ws)
{
    size_t h = m->hidden, L = m->n_layers;
    for (size_t i = 0; i < n; i++) {
        const float *sh = state_h(m, states[i]), *sc = sh + L * h;
        for (size_t l = 0; l < L; l++) {
            memcpy(ws->hbuf + (l * n + i) * h, sh + l * h, h * sizeof(float));
            memcpy(ws->cbuf + (l * n + i) * h, sc + l * h, h * sizeof(float));
        }
    }
}

static void scatter(const struct dr_interest *m, size_t n, size_t n_rows, void *const *states,
                    const size_t *rows, const struct interest_ws *ws)
{
    size_t h = m->hidden, L = m->n_layers;
    for (size_t i = 0; i < n; i++) {
        size_t r = rows ? rows[i] : i;
        float *sh = state_h(m, states[i]), *sc = sh + L * h;
        for (size_t l = 0; l < L; l++) {
            memcpy(sh + l * h, ws->hbuf + (l * n_rows + r) * h, h * sizeof(float));
            memcpy(sc + l * h, ws->cbuf + (l * n_rows + r) * h, h * sizeof(float));
        }
    }
}

/* ---- entry points ------------------------------------------------------------------------ */

static int cmp_longest_first(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return x->user < y->user ? -1 : x->user > y->user;
}

enum dr_status dr_interest_run(const struct dr_interest *model, size_t n_users,
                               const struct dr_interest_event *const *events,
                               const size_t *n_events, void *const *states, float *out,
                               size_t ld_out, void *workspace, size_t workspace_size)
{
    for (size_t u = 0; u < n_users; u++) {
        for (size_t t = 0; t < n_events[u]; t++) {
            if (!event_ok(model, &events[u][t], t > 0, t > 0 ? events[u][t - 1].ts : 0))
                return DR_ERR_INVALID_ARG;
        }
    }
    if (n_users == 0)
        return DR_OK;
    if (!workspace || workspace_size < ws_layout(model, n_users, NULL, NULL))
        return DR_ERR_INVALID_ARG;
    struct interest_ws ws;
    ws_layout(model, n_users, workspace, &ws);
    size_t h = model->hidden, d = model->dim, L = model->n_layers;
    size_t state_size = dr_interest_state_size(model);

    /* Rows ordered longest history first: at step t the users with events left are the
     * first n_active rows.  order[i] is row i's user, row_states[i] its state. */
    for (size_t u = 0; u < n_users; u++)
        ws.keys[u] = (struct order_key){.n = n_events[u], .user = u};
    qsort(ws.keys, n_users, sizeof *ws.keys, cmp_longest_first);
    for (size_t i = 0; i < n_users; i++) {
        ws.order[i] = ws.keys[i].user;
        ws.row_states[i] = states ? states[ws.order[i]] : ws.states + i * state_size;
        dr_interest_state_init(model, ws.row_states[i]);
    }
    memset(ws.hbuf, 0, L * n_users * h * sizeof(float));
    memset(ws.cbuf, 0, L * n_users * h * sizeof(float));

    size_t max_n = n_events[ws.order[0]], n_active = n_users, steps = chunk_steps(n_users);
    size_t chunk_active[CHUNK_ROWS];
    for (size_t t0 = 0; t0 < max_n; t0 += steps) {
        size_t n_steps = max_n - t0 < steps ? max_n - t0 : steps, row = 0;
        for (size_t s = 0; s < n_steps; s++) {
            size_t t = t0 + s;
            while (n_active > 0 && n_events[ws.order[n_active - 1]] <= t)
                n_active--;
            for (size_t i = 0; i < n_active; i++)
                event_input(model, ws.row_states[i], &events[ws.order[i]][t], ws.e + (row + i) * d);
            chunk_active[s] = n_active;
            row += n_active;
        }
        lstm_advance(model, n_steps, chunk_active, n_users, &ws);
    }

    scatter(model, n_users, n_users, ws.row_states, NULL, &ws);
    const float *h_top = ws.hbuf + (L - 1) * n_users * h;
    for (size_t i = 0; i < n_users; i++)
        fuse_input(model, ws.row_states[i], h_top + i * h, ws.u + i * (h + d));
    fuse(model, n_users, &ws, ws.order, out, ld_out);
    return DR_OK;
}

enum dr_status dr_interest_step(const struct dr_interest *model, size_t n_users,
                                const struct dr_interest_event *events, void *const *states,
                                float *out, size_t ld_out, void *workspace, size_t workspace_size)
{
    for (size_t u = 0; u < n_users; u++) {
        struct state_header hd;
        memcpy(&hd, states[u], sizeof hd);
        if (!event_ok(model, &events[u], hd.n_events > 0, hd.last_ts))
            return DR_ERR_INVALID_ARG;
    }
    if (n_users == 0)
        return DR_OK;
    if (!workspace || workspace_size < ws_layout(model, n_users, NULL, NULL))
        return DR_ERR_INVALID_ARG;
    struct interest_ws ws;
    ws_layout(model, n_users, workspace, &ws);
    size_t h = model->hidden, d = model->dim;
    gather(model, n_users, states, &ws);
    for (size_t u = 0; u < n_users; u++)
        event_input(model, states[u], &events[u], ws.e + u * d);
    lstm_advance(model, 1, &n_users, n_users, &ws);
    scatter(model, n_users, n_users, states, NULL, &ws);
    if (out) {
        const float *h_top = ws.hbuf + (model->n_layers - 1) * n_users * h;
        for (size_t u = 0; u < n_users; u++)
            fuse_input(model, states[u], h_top + u * h, ws.u + u * (h + d));
        fuse(model, n_users, &ws, NULL, out, ld_out);
    }
    return DR_OK;
}

enum dr_status dr_interest_user_vectors(const struct dr_interest *model, size_t n_users,
                                        const void *const *states, float *out, size_t ld_out,
                                        void *workspace, size_t workspace_size)
{
    if (n_users == 0)
        return DR_OK;
    if (!workspace || workspace_size < ws_layout(model, n_users, NULL, NULL))
        return DR_ERR_INVALID_ARG;
    struct interest_ws ws;
    ws_layout(model, n_users, workspace, &ws);
    size_t h = model->hidden, d = model->dim, L = model->n_layers;
    for (size_t u = 0; u < n_users; u++) {
        void *st = (void *)(uintptr_t)states[u]; /* read only: fuse_input does not write */
        fuse_input(model, st, state_h(model, st) + (L - 1) * h, ws.u + u * (h + d));
    }
    fuse(model, n_users, &ws, NULL, out, ld_out);
    return DR_OK;
}
