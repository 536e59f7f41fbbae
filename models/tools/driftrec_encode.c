/* driftrec-encode: text -> vector with a BERT model directory, for checks and for users.
 *
 *   driftrec-encode MODEL_DIR [--precision auto|fp32|int8] [--max-len N] [--batch N] < lines
 *
 * Each input line (UTF-8) is tokenized with the model's vocabulary ([CLS] ... [SEP],
 * truncated to max-len, default the model's maximum) and encoded; each output line is the
 * vector as a JSON array, in input order.  Exit status 2 on a usage, model or input error
 * (the message names the line).
 */
#include "bert.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: driftrec-encode MODEL_DIR [--precision auto|fp32|int8] "
                    "[--max-len N] [--batch N] < text lines\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    struct dr_model_opts opts = {.precision = DR_PRECISION_AUTO};
    size_t max_len = 0, batch = 16;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
            const char *p = argv[++i];
            opts.precision = strcmp(p, "fp32") == 0   ? DR_PRECISION_FP32
                             : strcmp(p, "int8") == 0 ? DR_PRECISION_INT8
                                                      : DR_PRECISION_AUTO;
        } else if (strcmp(argv[i], "--max-len") == 0 && i + 1 < argc) {
            max_len = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = strtoul(argv[++i], NULL, 10);
        } else {
            return usage();
        }
    }
    struct dr_error err = {0};
    struct dr_bert *bert = NULL;
    if (dr_bert_load(argv[1], &opts, &bert, &err) != DR_OK) {
        fprintf(stderr, "driftrec-encode: %s\n", err.msg);
        return 2;
    }
    const char *vocab = dr_bert_vocab_path(bert);
    struct dr_tokenizer *tok = NULL;
    if (!vocab) {
        fprintf(stderr, "driftrec-encode: the model names no vocabulary\n");
        dr_bert_destroy(bert);
        return 2;
    }
    if (dr_tokenizer_load(vocab, dr_bert_vocab_lower_case(bert), &tok, &err) != DR_OK) {
        fprintf(stderr, "driftrec-encode: %s\n", err.msg);
        dr_bert_destroy(bert);
        return 2;
    }
    if (max_len < 2 || max_len > dr_bert_max_len(bert))
        max_len = dr_bert_max_len(bert);
    if (batch == 0)
        batch = 1;
    size_t dim = dr_bert_output_dim(bert);
    int32_t *ids = malloc(batch * max_len * sizeof *ids);
    size_t *lens = malloc(batch * sizeof *lens);
    float *out = malloc(batch * dim * sizeof *out);
    size_t ws_size = dr_bert_workspace_size(bert, batch * max_len, max_len);
    void *ws = dr_aligned_alloc(ws_size);
    int rc = 0;
    if (!ids || !lens || !out || !ws) {
        fprintf(stderr, "driftrec-encode: out of memory\n");
        rc = 2;
        goto done;
    }
    char *line = NULL;
    size_t cap = 0, n_seqs = 0, n_tokens = 0, line_no = 0;
    ssize_t got;
    for (;;) {
        got = getline(&line, &cap, stdin);
        if (got >= 0) {
            line_no++;
            size_t len = (size_t)got;
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
            if (dr_tokenizer_encode(tok, line, len, max_len, ids + n_tokens, &lens[n_seqs], &err) !=
                DR_OK) {
                fprintf(stderr, "driftrec-encode: line %zu: %s\n", line_no, err.msg);
                rc = 2;
                break;
            }
            n_tokens += lens[n_seqs++];
        }
        if (n_seqs == batch || (got < 0 && n_seqs > 0)) {
            if (dr_bert_encode(bert, n_seqs, ids, lens, out, dim, ws, ws_size) != DR_OK) {
                fprintf(stderr, "driftrec-encode: encode failed\n");
                rc = 2;
                break;
            }
            for (size_t s = 0; s < n_seqs; s++) {
                putchar('[');
                for (size_t j = 0; j < dim; j++)
                    printf(j ? ", %.9g" : "%.9g", (double)out[s * dim + j]);
                puts("]");
            }
            n_seqs = n_tokens = 0;
        }
        if (got < 0)
            break;
    }
    free(line);
done:
    dr_aligned_free(ws);
    free(out);
    free(lens);
    free(ids);
    dr_tokenizer_destroy(tok);
    dr_bert_destroy(bert);
    return rc;
}
