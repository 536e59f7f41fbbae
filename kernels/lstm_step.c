/* lstm_step.c: one batched LSTM time step composed from the table's kernels.
 *
 * gates = dequant(x_q W_ih^T) + bias, then += dequant(h_q W_hh^T), then the cell update.
 * h is quantised per row on the way in (its values are in [-1, 1], so the per-row scale
 * loses little).  The workspace holds the gates (fp32), h_q (int8) and h's row scales.
 */
#include "kernels.h"

static size_t gates_bytes(size_t batch, size_t hidden)
{
    return dr_round_up(batch * 4 * hidden * sizeof(float), DR_ALIGNMENT);
}

static size_t hq_bytes(size_t batch, size_t hidden)
{
    return dr_round_up(batch * hidden, DR_ALIGNMENT);
}

size_t dr_lstm_step_workspace_size(size_t batch, size_t hidden)
{
    return gates_bytes(batch, hidden) + hq_bytes(batch, hidden) +
           dr_round_up(batch * sizeof(float), DR_ALIGNMENT);
}

void dr_lstm_step_s8(const struct dr_kernels *kern, const struct dr_lstm_weights *w, size_t batch,
                     const int8_t *x_q, size_t ld_x, const float *x_scale, float *h, float *c,
                     size_t ld_state, void *workspace)
{
    size_t hidden = w->w_hh->k;
    DR_ASSERT(w->w_ih->n == 4 * hidden && w->w_hh->n == 4 * hidden);
    char *ws = workspace;
    float *gates = (float *)ws;
    int8_t *h_q = (int8_t *)(ws + gates_bytes(batch, hidden));
    float *h_scale = (float *)(ws + gates_bytes(batch, hidden) + hq_bytes(batch, hidden));

    struct dr_gemm_epilogue ep_x = {
        .a_scale = x_scale, .w_scale = w->w_ih_scale, .bias = w->bias, .act = DR_ACT_NONE};
    kern->gemm_s8s8f32(batch, x_q, ld_x, w->w_ih, gates, 4 * hidden, &ep_x);

    kern->quantize_rows_s8(batch, hidden, h, ld_state, h_q, hidden, h_scale);
    struct dr_gemm_epilogue ep_h = {.a_scale = h_scale,
                                    .w_scale = w->w_hh_scale,
                                    .bias = NULL,
                                    .act = DR_ACT_NONE,
                                    .accumulate = true};
    kern->gemm_s8s8f32(batch, h_q, hidden, w->w_hh, gates, 4 * hidden, &ep_h);

    kern->lstm_cell_f32(batch, hidden, gates, 4 * hidden, c, h, ld_state);
}
