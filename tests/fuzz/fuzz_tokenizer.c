/* fuzz_tokenizer.c: libFuzzer driver for models/tokenizer.c.
 *
 * The first input byte picks what the rest is: every 8th value a vocabulary (parsed, then
 * used once), otherwise text to encode with a small vocabulary, lower-cased or not, with
 * max_len 2 + byte % 64.  Besides ASan/UBSan, it checks: [CLS] first, [SEP] last, n_ids <=
 * max_len, ids in range, a truncated encoding is a prefix of the full one, and the
 * wordpieces reported by dr_tokenizer_tokenize are the full encoding's ids.
 */
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_vocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\nwant\n##want\n##ed\nwa\nun\nrunn\n##ing\n,\n"
    "a\n##a\nb\n##b\n\xC3\xA9\n##\xC3\xA9\n\xE4\xB8\x80\n!\n"
    "\xCF\x83\n\xCF\x82\n##\xCF\x82\nx\n##x\n";

#define MAX_IDS 4096

struct check_ctx {
    const int32_t *ids; /* the full encoding, without [CLS] */
    size_t n_ids;
    size_t at;
    size_t n_vocab;
};

static int check_piece(void *ctx, const struct dr_tokenizer_piece *piece)
{
    struct check_ctx *c = ctx;
    if (piece->id < 0 || (size_t)piece->id >= c->n_vocab)
        abort();
    if (c->at >= c->n_ids || c->ids[c->at] != piece->id)
        abort(); /* the stream and encode disagree */
    c->at++;
    return 0;
}

static int check_word(void *ctx, const struct dr_tokenizer_piece *piece)
{
    (void)ctx;
    if (piece->id != -1 || piece->n_chars == 0 || piece->size == 0 ||
        piece->size > 4 * DR_TOKENIZER_MAX_WORD_CHARS || memchr(piece->text, ' ', piece->size))
        abort();
    return 0;
}

static void fuzz_text(const struct dr_tokenizer *tok, const char *text, size_t len, size_t max_len)
{
    static int32_t full[MAX_IDS + 2], part[66];
    size_t n_full = 0, n_part = 0;
    size_t n_vocab = dr_tokenizer_vocab_len(tok);
    int32_t cls = dr_tokenizer_token_id(tok, "[CLS]", 5),
            sep = dr_tokenizer_token_id(tok, "[SEP]", 5);
    enum dr_status st = dr_tokenizer_encode(tok, text, len, MAX_IDS + 2, full, &n_full, NULL);
    enum dr_status st_part = dr_tokenizer_encode(tok, text, len, max_len, part, &n_part, NULL);
    if (st != st_part)
        abort();
    if (st != DR_OK)
        return;
    if (n_full < 2 || n_part < 2 || n_part > max_len || full[0] != cls || full[n_full - 1] != sep ||
        part[0] != cls || part[n_part - 1] != sep)
        abort();
    for (size_t i = 0; i < n_full; i++)
        if (full[i] < 0 || (size_t)full[i] >= n_vocab)
            abort();
    size_t n_kept = n_part - 2;
    if (n_kept > n_full - 2 || memcmp(part + 1, full + 1, n_kept * sizeof(int32_t)) != 0)
        abort(); /* truncation must keep a prefix */
    if (n_full < MAX_IDS + 2) {
        struct check_ctx c = {full + 1, n_full - 2, 0, n_vocab};
        if (dr_tokenizer_tokenize(tok, text, len, DR_TOKENIZER_WORDPIECES, check_piece, &c, NULL) !=
                DR_OK ||
            c.at != c.n_ids)
            abort();
    }
    if (dr_tokenizer_tokenize(tok, text, len, DR_TOKENIZER_WORDS, check_word, NULL, NULL) != DR_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dr_tokenizer *lower, *cased;
    if (!lower) {
        struct dr_error err;
        if (dr_tokenizer_load_buffer(k_vocab, sizeof k_vocab - 1, true, &lower, &err) != DR_OK ||
            dr_tokenizer_load_buffer(k_vocab, sizeof k_vocab - 1, false, &cased, &err) != DR_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
            abort();
        }
    }
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n_rest = size - 1;
    if (data[0] % 8 == 0) {
        struct dr_tokenizer *tok = NULL;
        struct dr_error err;
        if (dr_tokenizer_load_buffer(rest, n_rest, data[0] & 8, &tok, &err) == DR_OK) {
            const char *text = "unwanted running \xC3\xA9t\xC3\xA9 \xE4\xB8\x80! \xCE\xA3";
            fuzz_text(tok, text, strlen(text), 8);
            dr_tokenizer_destroy(tok);
        }
        return 0;
    }
    fuzz_text(data[0] & 1 ? lower : cased, rest, n_rest, 2 + data[0] % 64);
    return 0;
}
