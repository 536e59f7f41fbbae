/* bert.c: the BERT encoder over the kernel table (bert.h says what it computes).
 *
 * Tokens of all sequences in a batch are rows of one matrix (no padding), so every linear
 * layer is one product over the whole batch: Q, K and V fused into one 3H x H product, the
 * attention output and the second FFN product accumulate onto the residual stream in the
 * GEMM epilogue, the first FFN product applies GELU in it.  Attention runs per sequence and
 * head in fp32 over the Q/K/V columns of that sequence's rows (softmax over exactly its
 * tokens: the padding mask is implicit).  The workspace holds every intermediate; nothing
 * allocates after load.  Read-only after load; any number of threads with their own
 * workspaces.
 */
#include "bert.h"

#include "linear.h"
#include "model_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bert_layer {
    struct dr__linear qkv, attn_out, ffn_in, ffn_out;
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
};

struct dr_bert {
    const struct dr_kernels *kern;
    struct dr_model_file *mf;
    struct dr__owned owned;
    size_t vocab, hidden, n_layers, n_heads, inter, max_pos, n_types, proj_dim;
    float eps;
    bool pool_mean, normalize, is_int8;
    const float *word, *pos, *type, *emb_ln_g, *emb_ln_b;
    struct bert_layer *layers;
    bool has_proj;
    struct dr__linear proj;
};

static enum dr_status get_f32(struct dr_bert *b, const char *name, size_t ndim, const size_t *shape,
                              const float **out, struct dr_error *err)
{
    const void *p = NULL;
    enum dr_status st = dr_model_file_tensor(b->mf, name, DR_DTYPE_F32, ndim, shape, 4, &p, err);
    if (st == DR_OK)
        *out = p;
    return st;
}

static enum dr_status load_config(struct dr_bert *b, struct dr_error *err)
{
    struct dr_model_file *mf = b->mf;
    int64_t v[8];
    static const char *const keys[] = {"vocab_size",        "hidden_size",
                                       "num_hidden_layers", "num_attention_heads",
                                       "intermediate_size", "max_position_embeddings",
                                       "type_vocab_size"};
    static const int64_t max[] = {1 << 24, 1 << 14, 256, 256, 1 << 16, 1 << 16, 1 << 10};
    for (size_t i = 0; i < 7; i++) {
        enum dr_status st = dr_model_file_config_int(mf, keys[i], 1, max[i], &v[i], err);
        if (st != DR_OK)
            return st;
    }
    b->vocab = (size_t)v[0];
    b->hidden = (size_t)v[1];
    b->n_layers = (size_t)v[2];
    b->n_heads = (size_t)v[3];
    b->inter = (size_t)v[4];
    b->max_pos = (size_t)v[5];
    b->n_types = (size_t)v[6];
    if (b->hidden % b->n_heads)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: hidden_size %zu is not a multiple of "
                            "num_attention_heads %zu",
                            b->hidden, b->n_heads);
    int64_t proj = 0;
    enum dr_status st =
        dr_model_file_config_int_or(mf, "projection_dim", 0, 1 << 14, 0, &proj, err);
    if (st != DR_OK)
        return st;
    b->proj_dim = (size_t)proj;
    b->has_proj = proj > 0;
    double eps = 1e-12;
    if (dr_model_file_config_number(mf, "layer_norm_eps", &eps, err) != DR_OK)
        return DR_ERR_FORMAT;
    b->eps = (float)eps;
    const char *pooling = NULL;
    if ((st = dr_model_file_config_string(mf, "pooling", &pooling, err)) != DR_OK)
        return st;
    if (strcmp(pooling, "cls") != 0 && strcmp(pooling, "mean") != 0)
        return dr_error_set(err, DR_ERR_FORMAT,
                            "manifest.json: config.pooling is \"%.32s\", expected \"cls\" or "
                            "\"mean\"",
                            pooling);
    b->pool_mean = strcmp(pooling, "mean") == 0;
    return dr_model_file_config_bool_or(mf, "normalize", false, &b->normalize, err);
}

static enum dr_status load_layer(struct dr_bert *b, size_t i, struct bert_layer *layer,
                                 struct dr_error *err)
{
    char n[6][160], bn[6][160];
    static const char *const parts[6] = {"attention.self.query", "attention.self.key",
                                         "attention.self.value", "attention.output.dense",
                                         "intermediate.dense",   "output.dense"};
    for (size_t p = 0; p < 6; p++) {
        snprintf(n[p], sizeof n[p], "bert.encoder.layer.%zu.%s.weight", i, parts[p]);
        snprintf(bn[p], sizeof bn[p], "bert.encoder.layer.%zu.%s.bias", i, parts[p]);
    }
    const char *w3[3] = {n[0], n[1], n[2]}, *b3[3] = {bn[0], bn[1], bn[2]};
    size_t h = b->hidden;
    enum dr_status st;
    if ((st = dr__linear_load(b->mf, &b->owned, 3, w3, b3, h, h, b->is_int8, &layer->qkv, err)) ||
        (st = dr__linear_load(b->mf, &b->owned, 1, (const char *[]){n[3]}, (const char *[]){bn[3]},
                              h, h, b->is_int8, &layer->attn_out, err)) ||
        (st = dr__linear_load(b->mf, &b->owned, 1, (const char *[]){n[4]}, (const char *[]){bn[4]},
                              b->inter, h, b->is_int8, &layer->ffn_in, err)) ||
        (st = dr__linear_load(b->mf, &b->owned, 1, (const char *[]){n[5]}, (const char *[]){bn[5]},
                              h, b->inter, b->is_int8, &layer->ffn_out, err)))
        return st;
    char name[160];
    const float **dst[4] = {&layer->ln1_g, &layer->ln1_b, &layer->ln2_g, &layer->ln2_b};
    static const char *const ln[4] = {"attention.output.LayerNorm.weight",
                                      "attention.output.LayerNorm.bias", "output.LayerNorm.weight",
                                      "output.LayerNorm.bias"};
    for (size_t p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "bert.encoder.layer.%zu.%s", i, ln[p]);
        if ((st = get_f32(b, name, 1, (size_t[]){h}, dst[p], err)) != DR_OK)
            return st;
    }
    return DR_OK;
}

enum dr_status dr_bert_load(const char *path, const struct dr_model_opts *opts,
                            struct dr_bert **out, struct dr_error *err)
{
    struct dr_bert *b = calloc(1, sizeof *b);
    if (!b)
        return dr_error_set(err, DR_ERR_NOMEM, "out of memory");
    b->kern = opts && opts->kernels ? opts->kernels : dr_kernels_get();
    enum dr_status st = dr_model_file_open(path, &b->mf, err);
    if (st != DR_OK)
        goto fail;
    if (strcmp(dr_model_file_architecture(b->mf), "bert-encoder") != 0) {
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "manifest.json: architecture \"%.64s\", expected \"bert-encoder\"",
                          dr_model_file_architecture(b->mf));
        goto fail;
    }
    enum dr_precision prec = opts ? opts->precision : DR_PRECISION_AUTO;
    b->is_int8 =
        prec == DR_PRECISION_INT8 || (prec == DR_PRECISION_AUTO && dr_model_file_is_int8(b->mf));
    if ((st = load_config(b, err)) != DR_OK)
        goto fail;
    size_t h = b->hidden;
    if ((st = get_f32(b, "bert.embeddings.word_embeddings.weight", 2, (size_t[]){b->vocab, h},
                      &b->word, err)) ||
        (st = get_f32(b, "bert.embeddings.position_embeddings.weight", 2, (size_t[]){b->max_pos, h},
                      &b->pos, err)) ||
        (st = get_f32(b, "bert.embeddings.token_type_embeddings.weight", 2,
                      (size_t[]){b->n_types, h}, &b->type, err)) ||
        (st =
             get_f32(b, "bert.embeddings.LayerNorm.weight", 1, (size_t[]){h}, &b->emb_ln_g, err)) ||
        (st = get_f32(b, "bert.embeddings.LayerNorm.bias", 1, (size_t[]){h}, &b->emb_ln_b, err)))
        goto fail;
    b->layers = calloc(b->n_layers, sizeof *b->layers);
    if (!b->layers) {
        st = dr_error_set(err, DR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < b->n_layers; i++) {
        if ((st = load_layer(b, i, &b->layers[i], err)) != DR_OK)
            goto fail;
    }
    if (b->has_proj &&
        (st = dr__linear_load(b->mf, &b->owned, 1, (const char *[]){"projection.weight"},
                              (const char *[]){"projection.bias"}, b->proj_dim, h, b->is_int8,
                              &b->proj, err)) != DR_OK)
        goto fail;
    *out = b;
    return DR_OK;

fail:
    dr_bert_destroy(b);
    return st;
}

void dr_bert_destroy(struct dr_bert *bert)
{
    if (!bert)
        return;
    for (size_t i = 0; bert->layers && i < bert->n_layers; i++) {
        dr__linear_deinit(&bert->layers[i].qkv);
        dr__linear_deinit(&bert->layers[i].attn_out);
        dr__linear_deinit(&bert->layers[i].ffn_in);
        dr__linear_deinit(&bert->layers[i].ffn_out);
    }
    free(bert->layers);
    dr__linear_deinit(&bert->proj);
    dr__owned_free_all(&bert->owned);
    dr_model_file_destroy(bert->mf);
    free(bert);
}

size_t dr_bert_output_dim(const struct dr_bert *bert)
{
    return bert->has_proj ? bert->proj_dim : bert->hidden;
}

size_t dr_bert_hidden_size(const struct dr_bert *bert)
{
    return bert->hidden;
}

size_t dr_bert_n_layers(const struct dr_bert *bert)
{
    return bert->n_layers;
}

size_t dr_bert_max_len(const struct dr_bert *bert)
{
    return bert->max_pos;
}

size_t dr_bert_vocab_size(const struct dr_bert *bert)
{
    return bert->vocab;
}

bool dr_bert_is_int8(const struct dr_bert *bert)
{
    return bert->is_int8;
}

const char *dr_bert_vocab_path(const struct dr_bert *bert)
{
    return dr_model_file_vocab_path(bert->mf);
}

bool dr_bert_vocab_lower_case(const struct dr_bert *bert)
{
    return dr_model_file_vocab_lower_case(bert->mf);
}

/* ---- the forward pass ------------------------------------------------------------------- */

struct bert_ws {
    float *x, *qkv, *ctx, *inter, *tmp, *scores, *pooled;
    float *key_t; /* one sequence's keys transposed, all heads: hidden x max_len */
    struct dr__linear_scratch scratch;
};

static size_t ws_layout(const struct dr_bert *b, size_t n_tokens, size_t max_len, size_t n_seqs,
                        char *base, struct bert_ws *ws)
{
    size_t h = b->hidden, wide = b->inter > 3 * h ? b->inter : 3 * h;
    size_t sizes[9] = {
        n_tokens * h * sizeof(float),             /* x */
        n_tokens * 3 * h * sizeof(float),         /* qkv */
        n_tokens * h * sizeof(float),             /* ctx */
        n_tokens * b->inter * sizeof(float),      /* inter */
        n_tokens * wide * sizeof(float),          /* tmp */
        max_len * max_len * sizeof(float),        /* scores */
        n_seqs * h * sizeof(float),               /* pooled */
        n_tokens * (b->inter > h ? b->inter : h), /* scratch.qa */
        h * max_len * sizeof(float),              /* key_t */
    };
    size_t at = 0;
    void *ptrs[9];
    for (size_t i = 0; i < 9; i++) {
        ptrs[i] = base ? base + at : NULL;
        at += dr_round_up(sizes[i], DR_ALIGNMENT);
    }
    size_t qs_at = at;
    at += dr_round_up(n_tokens * sizeof(float), DR_ALIGNMENT);
    if (ws) {
        ws->x = ptrs[0];
        ws->qkv = ptrs[1];
        ws->ctx = ptrs[2];
        ws->inter = ptrs[3];
        ws->tmp = ptrs[4];
        ws->scores = ptrs[5];
        ws->pooled = ptrs[6];
        ws->scratch.qa = ptrs[7];
        ws->key_t = ptrs[8];
        ws->scratch.qs = (float *)(void *)(base + qs_at);
        ws->scratch.tmp = ws->tmp;
    }
    return at;
}

size_t dr_bert_workspace_size(const struct dr_bert *bert, size_t n_tokens, size_t max_seq_len)
{
    /* n_seqs <= n_tokens: size the pooled rows for the worst case. */
    return ws_layout(bert, n_tokens, max_seq_len, n_tokens, NULL, NULL);
}

static void embed(const struct dr_bert *b, size_t n_seqs, const int32_t *ids, const size_t *lens,
                  float *x)
{
    size_t h = b->hidden, row = 0;
    for (size_t s = 0; s < n_seqs; s++) {
        for (size_t t = 0; t < lens[s]; t++, row++) {
            const float *w = b->word + (size_t)ids[row] * h, *p = b->pos + t * h;
            float *y = x + row * h;
            for (size_t j = 0; j < h; j++)
                y[j] = w[j] + p[j] + b->type[j];
        }
    }
    b->kern->layernorm_f32(row, h, x, h, b->emb_ln_g, b->emb_ln_b, b->eps, x, h);
}

static void attention(const struct dr_bert *b, size_t n_seqs, const size_t *lens,
                      const struct bert_ws *ws)
{
    const struct dr_kernels *k = b->kern;
    size_t h = b->hidden, dh = h / b->n_heads, row = 0;
    float scale = 1.0f / sqrtf((float)dh);
    for (size_t s = 0; s < n_seqs; s++) {
        size_t len = lens[s];
        const float *qkv = ws->qkv + row * 3 * h;
        /* Q K^T as a plain product over K transposed (every head's keys at once): the _nt
         * kernel's dot-product tile spends more on its final reductions than on the 64-long
         * dot products here. */
        k->transpose_f32(len, h, qkv + h, 3 * h, ws->key_t, len);
        for (size_t hd = 0; hd < b->n_heads; hd++) {
            const float *q = qkv + hd * dh, *v = q + 2 * h;
            k->gemm_f32_nn(len, len, dh, q, 3 * h, ws->key_t + hd * dh * len, len, NULL, ws->scores,
                           len);
            k->softmax_f32(len, len, ws->scores, len, len, scale);
            k->gemm_f32_nn(len, dh, len, ws->scores, len, v, 3 * h, NULL,
                           ws->ctx + row * h + hd * dh, h);
        }
        row += len;
    }
}

enum dr_status dr_bert_encode(const struct dr_bert *bert, size_t n_seqs, const int32_t *ids,
                              const size_t *lens, float *out, size_t ld_out, void *workspace,
                              size_t workspace_size)
{
    size_t n_tokens = 0, max_len = 0;
    for (size_t s = 0; s < n_seqs; s++) {
        if (lens[s] == 0 || lens[s] > bert->max_pos)
            return DR_ERR_INVALID_ARG;
        n_tokens += lens[s];
        max_len = lens[s] > max_len ? lens[s] : max_len;
    }
    for (size_t i = 0; i < n_tokens; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= bert->vocab)
            return DR_ERR_INVALID_ARG;
    }
    if (n_seqs == 0)
        return DR_OK;
    if (!workspace || workspace_size < ws_layout(bert, n_tokens, max_len, n_seqs, NULL, NULL))
        return DR_ERR_INVALID_ARG;
    struct bert_ws ws;
    ws_layout(bert, n_tokens, max_len, n_seqs, workspace, &ws);
    const struct dr_kernels *k = bert->kern;
    size_t h = bert->hidden;

    embed(bert, n_seqs, ids, lens, ws.x);
    for (size_t i = 0; i < bert->n_layers; i++) {
        const struct bert_layer *L = &bert->layers[i];
        dr__linear_apply(k, &L->qkv, n_tokens, ws.x, h, ws.qkv, 3 * h, DR_ACT_NONE, false,
                         &ws.scratch);
        attention(bert, n_seqs, lens, &ws);
        dr__linear_apply(k, &L->attn_out, n_tokens, ws.ctx, h, ws.x, h, DR_ACT_NONE, true,
                         &ws.scratch);
        k->layernorm_f32(n_tokens, h, ws.x, h, L->ln1_g, L->ln1_b, bert->eps, ws.x, h);
        dr__linear_apply(k, &L->ffn_in, n_tokens, ws.x, h, ws.inter, bert->inter, DR_ACT_GELU,
                         false, &ws.scratch);
        dr__linear_apply(k, &L->ffn_out, n_tokens, ws.inter, bert->inter, ws.x, h, DR_ACT_NONE,
                         true, &ws.scratch);
        k->layernorm_f32(n_tokens, h, ws.x, h, L->ln2_g, L->ln2_b, bert->eps, ws.x, h);
    }

    /* Pooling: [CLS] (each sequence's first row) or the mean of its rows. */
    size_t row = 0;
    for (size_t s = 0; s < n_seqs; s++) {
        float *p = ws.pooled + s * h;
        memcpy(p, ws.x + row * h, h * sizeof *p);
        if (bert->pool_mean) {
            for (size_t t = 1; t < lens[s]; t++) {
                const float *xr = ws.x + (row + t) * h;
                for (size_t j = 0; j < h; j++)
                    p[j] += xr[j];
            }
            float inv = (float)lens[s];
            for (size_t j = 0; j < h; j++)
                p[j] /= inv;
        }
        row += lens[s];
    }
    size_t d = dr_bert_output_dim(bert);
    if (bert->has_proj) {
        dr__linear_apply(k, &bert->proj, n_seqs, ws.pooled, h, out, ld_out, DR_ACT_NONE, false,
                         &ws.scratch);
    } else {
        for (size_t s = 0; s < n_seqs; s++)
            memcpy(out + s * ld_out, ws.pooled + s * h, h * sizeof *out);
    }
    if (bert->normalize) {
        for (size_t s = 0; s < n_seqs; s++) {
            float *o = out + s * ld_out;
            double ss = 0.0;
            for (size_t j = 0; j < d; j++)
                ss += (double)o[j] * (double)o[j];
            float inv = ss > 0.0 ? (float)(1.0 / fmax(sqrt(ss), 1e-12)) : 0.0f;
            for (size_t j = 0; j < d; j++)
                o[j] *= inv;
        }
    }
    return DR_OK;
}
