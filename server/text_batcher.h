/* text_batcher.h: BERT encodes grouped across calls (Embed's texts, Recommend's query text)
 * through the batcher (batcher.h).
 *
 * One item per text, bucketed by token count (dr_batcher_length_bucket), so a batch holds
 * texts of similar length and pads little; a batch is at most max_batch texts and
 * max_batch x DR_TEXT_BATCH_TOKENS_PER_TEXT tokens.  A batch is one dr_bert_encode call on
 * its leader's thread with the scratch of its slot.  If that call fails, its texts are
 * encoded one by one, so one bad text fails only its own call.
 */
#ifndef DR_TEXT_BATCHER_H
#define DR_TEXT_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "bert.h"
#include "metrics.h"

/* The token budget of a batch per text it may hold: short texts (the usual query and review)
 * fill a batch, long ones make smaller batches and bound the workspace. */
#define DR_TEXT_BATCH_TOKENS_PER_TEXT 64

struct dr_text_batcher_opts {
    size_t max_batch;      /* texts per batch, >= 2 (1 means: do not batch, use no batcher) */
    uint64_t max_delay_ns; /* batcher.h */
    size_t n_slots;        /* batches running at once */
    size_t max_len;        /* tokens per text, at most the encoder's positions */
};

struct dr_text_batcher;

/* bert, metrics (may be NULL): borrowed, outlive the batcher.  *out: returns owned (free with
 * dr_text_batcher_destroy). */
enum dr_status dr_text_batcher_create(const struct dr_bert *bert,
                                      const struct dr_text_batcher_opts *opts,
                                      struct dr_metrics *metrics, struct dr_text_batcher **out);
void dr_text_batcher_destroy(struct dr_text_batcher *tb); /* NULL is a no-op */

/* Encodes n texts (ids back to back, lens[i] ids each, as dr_bert_encode) into out (n rows,
 * stride ld_out), in batches shared with other calls.  deadline_ns: dr_now_ns clock, 0 =
 * none.  DR_ERR_DEADLINE (counted in driftrec_deadline_dropped_total) when it passed while a
 * text was queued, DR_ERR_NOMEM, else the encoder's status.  All borrowed. */
enum dr_status dr_text_batcher_encode(struct dr_text_batcher *tb, size_t n, const int32_t *ids,
                                      const size_t *lens, float *out, size_t ld_out,
                                      uint64_t deadline_ns);

#endif /* DR_TEXT_BATCHER_H */
