/* tokenizer.h: BERT's basic tokenizer + WordPiece over a vocab.txt, for query and item text.
 *
 * The rules are BERT's (docs/tokenizer.md gives them one by one): clean control characters,
 * split CJK ideographs, whitespace and punctuation, optionally lower-case and strip accents,
 * then greedy longest-match WordPiece with "##" continuations and [UNK].  The Python twin
 * (models/train/driftrec_train/tokenizer.py) gives the same ids; tests check both.
 *
 * A tokenizer is built once (dr_tokenizer_load) and is read-only afterwards: any number of
 * threads may encode with it at once.  Encoding is linear in the text and allocates nothing;
 * its scratch (one word of at most DR_TOKENIZER_MAX_WORD_CHARS code points) is on the stack.
 */
#ifndef DR_TOKENIZER_H
#define DR_TOKENIZER_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A word longer than this (in code points, after normalisation) becomes [UNK]. */
#define DR_TOKENIZER_MAX_WORD_CHARS 100

struct dr_tokenizer; /* opaque; defined in models/tokenizer.c only */

/* Loads vocab_path (borrowed): UTF-8 tokens, one per '\n'-separated line, the id being the
 * line number from 0; a trailing '\r' is dropped; a duplicated token keeps its last line's
 * id.  The vocabulary must hold [UNK], [CLS] and [SEP].  do_lower_case: lower-case and strip
 * accents (true for uncased vocabularies, false for bert-base-chinese).
 * *out: returns owned (free with dr_tokenizer_destroy). */
enum dr_status dr_tokenizer_load(const char *vocab_path, bool do_lower_case,
                                 struct dr_tokenizer **out, struct dr_error *err);

/* The same from vocab text in memory (borrowed; copied): tests, fuzzing, embedded vocabs. */
enum dr_status dr_tokenizer_load_buffer(const char *vocab, size_t vocab_size, bool do_lower_case,
                                        struct dr_tokenizer **out, struct dr_error *err);

void dr_tokenizer_destroy(struct dr_tokenizer *tok); /* NULL is a no-op */

size_t dr_tokenizer_vocab_len(const struct dr_tokenizer *tok);
bool dr_tokenizer_is_lower_case(const struct dr_tokenizer *tok);

/* Id of a token (bytes borrowed, not NUL-terminated), or -1 if not in the vocabulary. */
int32_t dr_tokenizer_token_id(const struct dr_tokenizer *tok, const char *token, size_t token_size);

/* Text of id (borrowed from tok, NUL-terminated) with its size, or NULL if out of range. */
const char *dr_tokenizer_token(const struct dr_tokenizer *tok, int32_t id, size_t *token_size);

/* Encodes text (borrowed, text_len bytes of UTF-8, may hold NUL) as
 * [CLS] wordpiece ids [SEP], dropping the ids past max_len - 2 (BERT's truncation).
 * ids (borrowed) must have room for max_len ids; max_len >= 2.  *n_ids gets the count.
 * The whole text is checked first: invalid UTF-8 (overlong forms, surrogates, > U+10FFFF,
 * truncated sequences) fails with DR_ERR_INVALID_ARG and the byte offset in err (which may
 * be NULL), with ids and *n_ids untouched.  It never tokenizes past the truncation point. */
enum dr_status dr_tokenizer_encode(const struct dr_tokenizer *tok, const char *text,
                                   size_t text_len, size_t max_len, int32_t *ids, size_t *n_ids,
                                   struct dr_error *err);

/* One piece of text as the tokenizer sees it, for tests, tools and debugging. */
struct dr_tokenizer_piece {
    const char *text; /* UTF-8, not NUL-terminated; valid during the callback only */
    size_t size;      /* bytes in text */
    size_t n_chars;   /* DR_TOKENIZER_WORDS: code points in the word, of which text holds
                         the first DR_TOKENIZER_MAX_WORD_CHARS at most; wordpieces: 0 */
    int32_t id;       /* vocabulary id (DR_TOKENIZER_WORDPIECES), or -1 (DR_TOKENIZER_WORDS) */
};

enum dr_tokenizer_stage {
    DR_TOKENIZER_WORDS,      /* the basic tokenizer's output, before WordPiece */
    DR_TOKENIZER_WORDPIECES, /* WordPiece tokens with their ids, no [CLS]/[SEP] */
};

/* Returns 0 to go on, anything else to stop early (dr_tokenizer_tokenize then returns DR_OK). */
typedef int (*dr_tokenizer_piece_fn)(void *ctx, const struct dr_tokenizer_piece *piece);

/* Calls fn(ctx, piece) for each word or wordpiece of text, in order.  Errors as for
 * dr_tokenizer_encode: invalid UTF-8 is found before any piece is reported. */
enum dr_status dr_tokenizer_tokenize(const struct dr_tokenizer *tok, const char *text,
                                     size_t text_len, enum dr_tokenizer_stage stage,
                                     dr_tokenizer_piece_fn fn, void *ctx, struct dr_error *err);

/* BERT's character classes, for tests: category C* but tab/newline/CR; space, tab, newline,
 * CR or Zs; ASCII non-alphanumerics or P*; the CJK ideograph blocks. */
bool dr_tokenizer_is_control(int32_t cp);
bool dr_tokenizer_is_whitespace(int32_t cp);
bool dr_tokenizer_is_punctuation(int32_t cp);
bool dr_tokenizer_is_cjk(int32_t cp);

#ifdef __cplusplus
}
#endif

#endif /* DR_TOKENIZER_H */
