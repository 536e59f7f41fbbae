/* linear.h: linear layers loaded from model files, run in fp32 or the int8 scheme.
 * Internal to models/ (dr__ names): the BERT encoder and the interest model share it.
 *
 * A layer is y = x W^T + b with W a torch Linear weight [n][k].  Loading may concatenate
 * several tensors along n (BERT's query, key and value become one 3H x H product).  In int8,
 * W is packed once (dr_packed_s8_init) with per-output-channel scales, either read from an
 * int8 file ("<name>_scale") or computed from fp32 weights with dr_quantize_weights_s8.
 */
#ifndef DR_LINEAR_H
#define DR_LINEAR_H

#include "kernels.h"
#include "model_file.h"

#include <stdbool.h>
#include <stddef.h>

/* Aligned allocations released together (a model's lifetime). */
struct dr__owned {
    void **ptrs;
    size_t n, cap;
};
void *dr__owned_alloc(struct dr__owned *owned, size_t size_bytes); /* NULL if out of memory */
void dr__owned_free_all(struct dr__owned *owned);

struct dr__linear {
    size_t n, k;
    bool is_int8;
    const float *w_t;           /* fp32 path: W^T [k][n], owned */
    struct dr_packed_s8 packed; /* int8 path */
    const float *scale;         /* int8 path: n per-column weight scales */
    const float *bias;          /* n, or NULL */
};

/* Loads the concatenation of n_parts weights (each n_each x k; bias_names[i] may be NULL
 * for no bias, and all-NULL biases give bias NULL).  int8: pack (reading scales from an int8
 * file, or quantising an fp32 one).  An int8 file cannot run the fp32 path. */
enum dr_status dr__linear_load(struct dr_model_file *mf, struct dr__owned *owned, size_t n_parts,
                               const char *const *weight_names, const char *const *bias_names,
                               size_t n_each, size_t k, bool int8, struct dr__linear *out,
                               struct dr_error *err);
void dr__linear_deinit(struct dr__linear *l);

/* Scratch for dr__linear_apply over m rows: qa (m*k int8), qs (m floats), tmp (m*n floats,
 * fp32 path with accumulate only). */
struct dr__linear_scratch {
    int8_t *qa;
    float *qs;
    float *tmp;
};

/* fp32 y = x W^T + bias (bias NULL: none; any n floats, not necessarily l->bias), through the
 * nn kernel over W^T: its FMA tile, where the nt kernel's dot products end in a horizontal sum
 * per output.  Each output is a sum over k in order, whatever m: a row's result does not
 * depend on the rows beside it. */
void dr__linear_product_f32(const struct dr_kernels *kern, const struct dr__linear *l, size_t m,
                            const float *x, size_t ldx, const float *bias, float *y, size_t ldy);

/* y = act(x W^T + b) (+ y if accumulate), x m x k (ldx), y m x n (ldy). */
void dr__linear_apply(const struct dr_kernels *kern, const struct dr__linear *l, size_t m,
                      const float *x, size_t ldx, float *y, size_t ldy, enum dr_activation act,
                      bool accumulate, const struct dr__linear_scratch *scratch);

#endif /* DR_LINEAR_H */
