/* bert.h: the BERT text encoder (item, review and query text -> one vector per text).
 *
 * BERT-mini (4 layers, hidden 256, 4 heads) up to BERT-base (12, 768, 12) from one code path:
 * embeddings (word + position + token type 0) and LayerNorm; per layer multi-head
 * self-attention over each sequence's own tokens, residual + LayerNorm, a GELU feed-forward,
 * residual + LayerNorm; then [CLS] or mean pooling, an optional projection to the
 * item-vector size and optional L2 normalisation (docs/models.md).
 *
 * Linear layers run in the int8 scheme (docs/int8-scheme.md) when the model file holds int8
 * weights or the caller asks for int8; otherwise in fp32, the reference path.  LayerNorm,
 * softmax, GELU, the attention products and the residual stream are fp32 either way.
 *
 * A batch is a list of sequences of different lengths, stored back to back (no padding):
 * the linear layers run over all tokens of the batch at once, attention per sequence.
 * The model is read-only after dr_bert_load: any number of threads may encode at once, each
 * with its own workspace.
 *
 * Manifest config (architecture "bert-encoder"): vocab_size, hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size, max_position_embeddings,
 * type_vocab_size, layer_norm_eps, pooling ("cls" | "mean"), projection_dim (0: none),
 * normalize (bool).  Tensors use Hugging Face BERT's names with the "bert." prefix.
 */
#ifndef DR_BERT_H
#define DR_BERT_H

#include "kernels.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum dr_precision {
    DR_PRECISION_AUTO = 0, /* as the file stores its linear weights */
    DR_PRECISION_FP32,     /* fp32 products; needs an fp32 file */
    DR_PRECISION_INT8,     /* int8 products; an fp32 file is quantised at load (qmax 63) */
};

struct dr_model_opts {
    enum dr_precision precision;
    const struct dr_kernels *kernels; /* borrowed; NULL: dr_kernels_get() */
};

struct dr_bert; /* opaque; defined in models/bert.c only */

/* path: a model directory or its manifest.json (borrowed).  opts may be NULL.
 * *out: returns owned (free with dr_bert_destroy). */
enum dr_status dr_bert_load(const char *path, const struct dr_model_opts *opts,
                            struct dr_bert **out, struct dr_error *err);
void dr_bert_destroy(struct dr_bert *bert); /* NULL is a no-op */

size_t dr_bert_output_dim(const struct dr_bert *bert); /* projection_dim or hidden_size */
size_t dr_bert_hidden_size(const struct dr_bert *bert);
size_t dr_bert_n_layers(const struct dr_bert *bert);
size_t dr_bert_max_len(const struct dr_bert *bert); /* max_position_embeddings */
size_t dr_bert_vocab_size(const struct dr_bert *bert);
bool dr_bert_is_int8(const struct dr_bert *bert);
/* The vocabulary named by the manifest (borrowed; NULL if none) and its do_lower_case. */
const char *dr_bert_vocab_path(const struct dr_bert *bert);
bool dr_bert_vocab_lower_case(const struct dr_bert *bert);

/* Bytes of workspace for a batch of n_tokens tokens in all whose longest sequence has
 * max_seq_len tokens. */
size_t dr_bert_workspace_size(const struct dr_bert *bert, size_t n_tokens, size_t max_seq_len);

/* Encodes n_seqs sequences: ids holds them back to back (lens[i] ids each, [CLS] first),
 * out receives n_seqs rows of dr_bert_output_dim floats (row stride ld_out).  All borrowed.
 * workspace: workspace_size >= dr_bert_workspace_size(...) bytes, 64-byte aligned.
 * DR_ERR_INVALID_ARG (nothing written) if a length is 0 or over the maximum, an id is out of
 * the vocabulary, or the workspace is too small. */
enum dr_status dr_bert_encode(const struct dr_bert *bert, size_t n_seqs, const int32_t *ids,
                              const size_t *lens, float *out, size_t ld_out, void *workspace,
                              size_t workspace_size);

#ifdef __cplusplus
}
#endif

#endif /* DR_BERT_H */
