/* interest.h: the interest model: a user's events -> one user vector (docs/models.md).
 *
 * Per event: the item's vector + its text vector (if any) + an event-type embedding + a
 * time-gap bucket embedding + a linear map of four normalised numeric features (dwell,
 * amount, rating, has-rating).  An LSTM (1-2 layers, int8 weight products or fp32, fp32
 * state) over those gives the short-term drift; a time-decayed mean of the item vectors
 * (half-life config.half_life_s) gives the smoothed long-term interest; a gate fuses both:
 *   g = sigmoid(W_g [h; long] + b_g),  user = g * (W_s h + b_s) + (1 - g) * long.
 * models/train/driftrec_train/interest.py is the reference, to the formula.
 *
 * Everything a user's history contributes lives in a fixed-size state (LSTM h and c per
 * layer, the decayed sum and weight of the long-term mean, the last timestamp), so the
 * server caches one state per user: dr_interest_run replays a history from scratch,
 * dr_interest_step advances saved states by one new event each in O(1).  Both write user
 * vectors.  config.max_events only says how many events a caller should replay for a user
 * with no cached state; the model runs over whatever it is given.
 *
 * The model is read-only after load; any number of threads, each with its own workspace.
 * Manifest config (architecture "interest-lstm"): item_dim, hidden_size, num_layers,
 * n_event_types, n_gap_buckets, half_life_s, max_events.
 */
#ifndef DR_INTEREST_H
#define DR_INTEREST_H

#include "bert.h" /* struct dr_model_opts, enum dr_precision */
#include "kernels.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DR_INTEREST_N_NUMERIC 4

struct dr_interest_event {
    const float *item_vec;         /* item_dim floats, borrowed */
    const float *text_vec;         /* item_dim floats, or NULL when the event has no text */
    int64_t ts;                    /* Unix seconds; non-decreasing per user */
    int32_t event_type;            /* 0 .. n_event_types - 1 (events.py's EVENT_TYPES order) */
    float dwell_s, amount, rating; /* NAN when missing */
};

struct dr_interest; /* opaque; defined in models/interest.c only */

/* *out: returns owned (free with dr_interest_destroy).  opts may be NULL. */
enum dr_status dr_interest_load(const char *path, const struct dr_model_opts *opts,
                                struct dr_interest **out, struct dr_error *err);
void dr_interest_destroy(struct dr_interest *model); /* NULL is a no-op */

size_t dr_interest_item_dim(const struct dr_interest *model); /* also the user vector's size */
size_t dr_interest_hidden_size(const struct dr_interest *model);
size_t dr_interest_n_layers(const struct dr_interest *model);
size_t dr_interest_max_events(const struct dr_interest *model);
bool dr_interest_is_int8(const struct dr_interest *model);

/* A user's state: dr_interest_state_size bytes, 8-byte aligned, owned by the caller (the
 * server's cache).  dr_interest_state_init makes the state of a user with no events. */
size_t dr_interest_state_size(const struct dr_interest *model);
void dr_interest_state_init(const struct dr_interest *model, void *state);
uint64_t dr_interest_state_n_events(const void *state);

/* Bytes of workspace for up to n_users users per call (64-byte aligned memory).  Includes
 * dr_interest_run's chunk of up to max(n_users, 64) event rows: at batch 1 about
 * 64 * (5 * hidden_size + 2 * item_dim) floats (about 380 KiB for item_dim 128, hidden 256). */
size_t dr_interest_workspace_size(const struct dr_interest *model, size_t n_users);

/* From scratch: user u's events[u][0 .. n_events[u]) in time order (all borrowed).  Writes
 * the user vectors to out (n_users rows, stride ld_out) and, if states is not NULL, each
 * user's final state to states[u] (any previous content is ignored).  DR_ERR_INVALID_ARG,
 * with nothing written, for an event type out of range, a NULL item vector, time going
 * backwards or a small workspace. */
enum dr_status dr_interest_run(const struct dr_interest *model, size_t n_users,
                               const struct dr_interest_event *const *events,
                               const size_t *n_events, void *const *states, float *out,
                               size_t ld_out, void *workspace, size_t workspace_size);

/* One new event per user: advances states[u] by events[u] in O(1) and writes the user
 * vectors (out may be NULL).  Errors as dr_interest_run, with no state changed. */
enum dr_status dr_interest_step(const struct dr_interest *model, size_t n_users,
                                const struct dr_interest_event *events, void *const *states,
                                float *out, size_t ld_out, void *workspace, size_t workspace_size);

/* The user vectors of saved states, without a new event. */
enum dr_status dr_interest_user_vectors(const struct dr_interest *model, size_t n_users,
                                        const void *const *states, float *out, size_t ld_out,
                                        void *workspace, size_t workspace_size);

#ifdef __cplusplus
}
#endif

#endif /* DR_INTEREST_H */
