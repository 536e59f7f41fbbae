/* text_batcher.c: BERT encodes through the batcher (text_batcher.h).
 * Each slot owns the scratch of one batch (ids, lengths, output rows, the encoder's
 * workspace), sized once for the largest batch; only the batch's leader touches it. */
#include "text_batcher.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"

#define STACK_ITEMS 8

struct text_job {
    const int32_t *ids;
    size_t len;
    float *out;
};

struct text_slot {
    int32_t *ids;
    size_t *lens;
    float *out;
    void *ws;
    size_t ws_size;
};

struct dr_text_batcher {
    const struct dr_bert *bert;
    struct dr_metrics *metrics;
    struct dr_batcher *batcher;
    struct text_slot *slots;
    size_t n_slots, dim, max_len;
};

static void run_texts(void *ctx, size_t slot, struct dr_batch_item *const *items, size_t n)
{
    struct dr_text_batcher *tb = ctx;
    struct text_slot *s = &tb->slots[slot];
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const struct text_job *j = items[i]->job;
        memcpy(s->ids + at, j->ids, j->len * sizeof *s->ids);
        s->lens[i] = j->len;
        at += j->len;
    }
    dr_metrics_observe_batch(tb->metrics, DR_METRIC_MODEL_BERT, n);
    enum dr_status st =
        dr_bert_encode(tb->bert, n, s->ids, s->lens, s->out, tb->dim, s->ws, s->ws_size);
    for (size_t i = 0; i < n; i++) {
        const struct text_job *j = items[i]->job;
        if (st != DR_OK) /* one by one: only the bad text fails */
            items[i]->status = dr_bert_encode(tb->bert, 1, j->ids, &j->len, s->out + i * tb->dim,
                                              tb->dim, s->ws, s->ws_size);
        if (items[i]->status == DR_OK)
            memcpy(j->out, s->out + i * tb->dim, tb->dim * sizeof(float));
    }
}

void dr_text_batcher_destroy(struct dr_text_batcher *tb)
{
    if (!tb)
        return;
    dr_batcher_destroy(tb->batcher);
    for (size_t i = 0; tb->slots && i < tb->n_slots; i++) {
        free(tb->slots[i].ids);
        free(tb->slots[i].lens);
        dr_aligned_free(tb->slots[i].out);
        dr_aligned_free(tb->slots[i].ws);
    }
    free(tb->slots);
    free(tb);
}

enum dr_status dr_text_batcher_create(const struct dr_bert *bert,
                                      const struct dr_text_batcher_opts *opts,
                                      struct dr_metrics *metrics, struct dr_text_batcher **out)
{
    if (!bert || !opts || opts->max_batch < 2 || opts->max_len == 0 || opts->n_slots == 0)
        return DR_ERR_INVALID_ARG;
    struct dr_text_batcher *tb = calloc(1, sizeof *tb);
    if (!tb)
        return DR_ERR_NOMEM;
    tb->bert = bert;
    tb->metrics = metrics;
    tb->n_slots = opts->n_slots;
    tb->dim = dr_bert_output_dim(bert);
    tb->max_len = opts->max_len;
    size_t max_tokens = opts->max_batch * DR_TEXT_BATCH_TOKENS_PER_TEXT;
    if (max_tokens < opts->max_len)
        max_tokens = opts->max_len; /* one text of the longest kind always fits */
    struct dr_batcher_opts bo = {.max_batch = opts->max_batch,
                                 .max_cost = max_tokens,
                                 .max_delay_ns = opts->max_delay_ns,
                                 .n_slots = opts->n_slots};
    enum dr_status st = DR_ERR_NOMEM;
    tb->slots = calloc(opts->n_slots, sizeof *tb->slots);
    if (!tb->slots)
        goto fail;
    for (size_t i = 0; i < opts->n_slots; i++) {
        struct text_slot *s = &tb->slots[i];
        s->ws_size = dr_bert_workspace_size(bert, max_tokens, opts->max_len);
        s->ids = malloc(max_tokens * sizeof *s->ids);
        s->lens = malloc(opts->max_batch * sizeof *s->lens);
        s->out = dr_aligned_alloc(opts->max_batch * tb->dim * sizeof(float));
        s->ws = dr_aligned_alloc(s->ws_size);
        if (!s->ids || !s->lens || !s->out || !s->ws)
            goto fail;
    }
    st = dr_batcher_create(&bo, run_texts, tb, &tb->batcher);
    if (st != DR_OK)
        goto fail;
    *out = tb;
    return DR_OK;
fail:
    dr_text_batcher_destroy(tb);
    return st;
}

enum dr_status dr_text_batcher_encode(struct dr_text_batcher *tb, size_t n, const int32_t *ids,
                                      const size_t *lens, float *out, size_t ld_out,
                                      uint64_t deadline_ns)
{
    struct dr_batch_item stack_items[STACK_ITEMS];
    struct text_job stack_jobs[STACK_ITEMS];
    struct dr_batch_item *items = stack_items;
    struct text_job *jobs = stack_jobs;
    if (n > STACK_ITEMS) {
        items = malloc(n * sizeof *items);
        jobs = malloc(n * sizeof *jobs);
        if (!items || !jobs) {
            free(items);
            free(jobs);
            return DR_ERR_NOMEM;
        }
    }
    size_t at = 0;
    enum dr_status st = DR_OK;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > tb->max_len)
            st = DR_ERR_INVALID_ARG; /* as dr_bert_encode: nothing runs */
        jobs[i] = (struct text_job){.ids = ids + at, .len = lens[i], .out = out + i * ld_out};
        items[i] = (struct dr_batch_item){
            .bucket = dr_batcher_length_bucket(lens[i], DR_BATCH_N_BUCKETS),
            .cost = lens[i],
            .deadline_ns = deadline_ns,
            .job = &jobs[i],
        };
        at += lens[i];
    }
    if (st == DR_OK)
        st = dr_batcher_run(tb->batcher, items, n);
    bool is_dropped = false;
    for (size_t i = 0; st == DR_OK && i < n; i++) {
        dr_metrics_observe_batch_wait_ns(tb->metrics, DR_METRIC_MODEL_BERT, items[i].wait_ns);
        is_dropped |= items[i].status == DR_ERR_DEADLINE;
    }
    for (size_t i = 0; st == DR_OK && i < n; i++) {
        if (items[i].status != DR_OK)
            st = is_dropped ? DR_ERR_DEADLINE : items[i].status;
    }
    if (is_dropped)
        dr_metrics_count_deadline_drop(tb->metrics, false);
    if (items != stack_items) {
        free(items);
        free(jobs);
    }
    return st;
}
