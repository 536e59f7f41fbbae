/* lstm_cell_ref.c: the LSTM state update, torch's gate order (i, f, g, o). */
#include "ref.h"

#include <math.h>

float dr__sigmoid_scalar(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

void dr_lstm_cell_f32__ref(size_t batch, size_t hidden, const float *gates, size_t ld_gates,
                           float *c, float *h, size_t ld_state)
{
    for (size_t b = 0; b < batch; b++) {
        const float *g = gates + b * ld_gates;
        for (size_t j = 0; j < hidden; j++) {
            float in = dr__sigmoid_scalar(g[j]);
            float forget = dr__sigmoid_scalar(g[hidden + j]);
            float cell = tanhf(g[2 * hidden + j]);
            float out = dr__sigmoid_scalar(g[3 * hidden + j]);
            float c_new = forget * c[b * ld_state + j] + in * cell;
            c[b * ld_state + j] = c_new;
            h[b * ld_state + j] = out * tanhf(c_new);
        }
    }
}
