/* bundle.h: the model bundle: what training exports and the server maps (docs/bundle.md).
 *
 * A bundle is a directory: manifest.json, the interest model (a model directory), the item
 * ids, the item vectors (n_items x item_dim float32, mapped read-only), the HNSW index over
 * them, optional item categories, an optional text encoder (a BERT model directory) and an
 * optional text projection from that encoder's output to item space.  dr_bundle_load checks all of
 * it before returning: the manifest's keys and types, that no path leaves the bundle (no absolute
 * path, no "..", no symlink out), every sha256 the manifest lists (and that every file under items/
 * has one), the sizes of the item files, unique ids, finite vectors, the index's size, dimension
 * and metric, and that the interest model's item_dim is the bundle's.  A malformed bundle gives
 * DR_ERR_IO (a file cannot be read) or DR_ERR_FORMAT with a message naming the file.
 *
 * A loaded bundle is immutable: any number of threads may read it, score with it and search
 * its index (each with its own dr_ann_searcher and interest workspace).
 */
#ifndef DR_BUNDLE_H
#define DR_BUNDLE_H

#include "ann.h"
#include "interest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DR_BUNDLE_FORMAT         "driftrec-bundle"
#define DR_BUNDLE_FORMAT_VERSION 1
#define DR_BUNDLE_MAX_MANIFEST   (16u * 1024u * 1024u) /* bytes of manifest.json */

struct dr_bundle; /* opaque; defined in models/bundle.c only */

/* dir: the bundle directory (borrowed).  opts (may be NULL) go to the interest model's
 * loader (precision, kernel table); the kernel table also does the exact scoring.
 * *out: returns owned (free with dr_bundle_destroy); untouched on failure. */
enum dr_status dr_bundle_load(const char *dir, const struct dr_model_opts *opts,
                              struct dr_bundle **out, struct dr_error *err);
void dr_bundle_destroy(struct dr_bundle *bundle); /* NULL is a no-op */

/* Strings borrowed from the bundle. */
const char *dr_bundle_name(const struct dr_bundle *bundle);
const char *dr_bundle_version(const struct dr_bundle *bundle);
/* The text encoder's directory (resolved, inside the bundle) or NULL when there is none. */
const char *dr_bundle_text_encoder_path(const struct dr_bundle *bundle);
/* The text projection W_text (text_projection in the manifest): item_dim x text_dim floats,
 * row-major (torch's Linear weight layout), mapped read-only and borrowed; the item tower maps
 * a text encoder output t to item space as W_text . (t / |t|).  NULL (and *text_dim 0) when
 * the bundle has none; a bundle with one always has a text encoder whose output size is
 * text_dim.  text_dim may be NULL. */
const float *dr_bundle_text_projection(const struct dr_bundle *bundle, size_t *text_dim);
/* text_projection.normalize_input (default true): whether t is L2-normalised before W_text.
 * false without a projection. */
bool dr_bundle_text_projection_normalizes(const struct dr_bundle *bundle);
/* preprocessing.text.max_len: the tokens (with [CLS] and [SEP]) item text was cut to when the
 * item vectors were made; 0 when the manifest gives none. */
size_t dr_bundle_text_max_len(const struct dr_bundle *bundle);
/* preprocessing.time_unit is "steps": trained on order-only data, where an event's time was
 * its position, so gap buckets and the half-life count events, not seconds (absent or
 * "seconds": false). */
bool dr_bundle_time_in_steps(const struct dr_bundle *bundle);

size_t dr_bundle_n_items(const struct dr_bundle *bundle);
size_t dr_bundle_item_dim(const struct dr_bundle *bundle);
/* index.ef_search from the manifest: the ef a search should use by default. */
size_t dr_bundle_ef_search(const struct dr_bundle *bundle);

/* Row-major n_items x item_dim (row stride item_dim), mapped read-only; borrowed. */
const float *dr_bundle_item_vectors(const struct dr_bundle *bundle);
/* Row `row` (< n_items) of the above. */
const float *dr_bundle_item_vector(const struct dr_bundle *bundle, size_t row);
/* The id of row `row` (< n_items), NUL-terminated, borrowed; *len (may be NULL) gets its
 * length in bytes. */
const char *dr_bundle_item_id(const struct dr_bundle *bundle, size_t row, size_t *len);
/* true and *row when id[0 .. len) (borrowed, need not be NUL-terminated) is an item id;
 * false (and *row untouched) when it is not.  O(log n_items). */
bool dr_bundle_item_row(const struct dr_bundle *bundle, const char *id, size_t len, size_t *row);

/* The models the bundle owns; borrowed, valid until dr_bundle_destroy. */
const struct dr_interest *dr_bundle_interest(const struct dr_bundle *bundle);
const struct dr_ann_index *dr_bundle_index(const struct dr_bundle *bundle);

/* The manifest's event_types: the number, the name of type i (borrowed), and the type of a
 * name (true and *type, or false). */
size_t dr_bundle_n_event_types(const struct dr_bundle *bundle);
const char *dr_bundle_event_type_name(const struct dr_bundle *bundle, size_t type);
bool dr_bundle_event_type(const struct dr_bundle *bundle, const char *name, int32_t *type);

/* preprocessing.clip: the upper bounds applied to dwell_s and amount before the model sees
 * them (INFINITY when the manifest gives none). */
float dr_bundle_clip_dwell_s(const struct dr_bundle *bundle);
float dr_bundle_clip_amount(const struct dr_bundle *bundle);

/* Categories (items.categories): false when the bundle has none.  n_categories is the
 * number of category_names, or 1 + the largest number when there are no names; every item's
 * number is below it.  A name is NULL when the manifest has no names. */
bool dr_bundle_has_categories(const struct dr_bundle *bundle);
size_t dr_bundle_n_categories(const struct dr_bundle *bundle);
uint32_t dr_bundle_item_category(const struct dr_bundle *bundle, size_t row); /* 0: none */
const char *dr_bundle_category_name(const struct dr_bundle *bundle, size_t category);

/* Exact fp32 scores against items [row_begin, row_end):
 *   scores[u * ld_scores + (i - row_begin)] = user_vecs[u * ld_users ..] . vector(i)
 * for u < n_users (user vectors of item_dim floats, borrowed; scores borrowed, written).
 * fp32 through the kernel table's gemm_f32_nt, over blocks of items that stay in cache.
 * Every gemm_f32_nt computes each element as its own dot product, so a score depends only on
 * the two vectors (not on the range, the block or n_users): items with equal vectors tie
 * exactly.  Allocates nothing.  DR_ERR_INVALID_ARG for a bad range or stride. */
enum dr_status dr_bundle_score_exact(const struct dr_bundle *bundle, const float *user_vecs,
                                     size_t n_users, size_t ld_users, size_t row_begin,
                                     size_t row_end, float *scores, size_t ld_scores);

#ifdef __cplusplus
}
#endif

#endif /* DR_BUNDLE_H */
