/* fuzz_safetensors.c: libFuzzer driver for the safetensors parser in models/model_file.c.
 *
 * The input is a whole file.  Besides ASan/UBSan, when the parser accepts it this checks
 * the promises of model_file.h: every tensor lies inside the data area, its size is its
 * element count times its dtype's size, the tensors tile the area, and lookup by name finds
 * each one.
 */
#include "model_file.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dr_safetensors st;
    struct dr_error err;
    if (dr_safetensors_parse(data, size, "fuzz", &st, &err) != DR_OK) {
        if (err.code == DR_OK || err.msg[0] == '\0')
            abort(); /* a failure must say why */
        return 0;
    }
    size_t covered = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const struct dr_tensor_info *t = &st.tensors[i];
        if (t->begin > t->end || t->end > st.data_size)
            abort();
        if (t->data != st.data_area + t->begin)
            abort();
        if (t->end - t->begin != t->n_elements * dr_dtype_size(t->dtype))
            abort();
        if (dr_safetensors_find(&st, t->name) != t)
            abort();
        volatile uint8_t sink = 0;
        for (size_t b = t->begin; b < t->end; b++)
            sink ^= st.data_area[b]; /* ASan: the bytes are inside the input */
        (void)sink;
        covered += t->end - t->begin;
    }
    if (covered != st.data_size)
        abort();
    if (st.data_area + st.data_size != data + size)
        abort();
    dr_safetensors_deinit(&st);
    return 0;
}
