/* tokenizer.c: BERT's basic tokenizer + WordPiece in one streaming pass (docs/tokenizer.md).
 *
 * BERT's reference applies its steps to whole strings (clean, split CJK, split whitespace,
 * lower + NFD + strip Mn per token, split punctuation, WordPiece per word).  Here each code
 * point goes through the same steps as it is decoded, and a word is handed to WordPiece as
 * soon as it ends, so the scratch is one word (DR_TOKENIZER_MAX_WORD_CHARS code points) on
 * the stack and nothing is allocated per call.  Two places need context BERT gets from the
 * whole string: str.lower()'s final sigma (look back: one flag; look ahead: a scan up to the
 * next cased or boundary character, linear overall) and NFD's canonical ordering (only
 * non-Mn marks with a combining class survive stripping; they are insertion-sorted in the
 * word).  Unicode properties come from utf8proc; ASCII classes are cached in the tokenizer.
 *
 * Invariants: the text is valid UTF-8 before tokenizing starts (checked in one pass); the
 * vocabulary hash table and everything else in struct dr_tokenizer are read-only after load,
 * so any number of threads may encode at once.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD DR_TOKENIZER_MAX_WORD_CHARS

/* Character classes (flags). */
enum {
    CLASS_REMOVED = 1u << 0,   /* U+0000, U+FFFD, C* but tab/newline/CR: dropped */
    CLASS_SPACE = 1u << 1,     /* ends a token: BERT's whitespace, and Zl/Zp (str.split) */
    CLASS_CJK = 1u << 2,       /* a token of its own */
    CLASS_PUNCT = 1u << 3,     /* a word of its own */
    CLASS_CASED = 1u << 4,     /* Unicode Cased (final sigma context) */
    CLASS_IGNORABLE = 1u << 5, /* Unicode Case_Ignorable (final sigma context) */
};

struct dr_tokenizer {
    char *blob;          /* the vocabulary text, each token NUL-terminated */
    uint32_t *tok_off;   /* [n_tokens] offset of token i in blob */
    uint32_t *tok_size;  /* [n_tokens] bytes of token i */
    uint32_t *slot_id;   /* [n_slots] token id + 1, 0 = empty (open addressing) */
    uint32_t *slot_hash; /* [n_slots] low 32 bits of the key's hash */
    size_t n_tokens;
    size_t slot_mask; /* n_slots - 1, n_slots a power of two >= 2 * n_tokens */
    int32_t unk_id, cls_id, sep_id;
    bool is_lower_case;
    uint8_t ascii_class[128];
};

/* ---- character classes (utf8proc) ---------------------------------------------------- */

static int category(int32_t cp)
{
    return utf8proc_get_property(cp)->category;
}

bool dr_tokenizer_is_control(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return false;
    switch (category(cp)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return true;
    default:
        return false;
    }
}

bool dr_tokenizer_is_whitespace(int32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r')
        return true;
    return category(cp) == UTF8PROC_CATEGORY_ZS;
}

bool dr_tokenizer_is_punctuation(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return true;
    int cat = category(cp);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool dr_tokenizer_is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Case_Ignorable = Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter/MidNumLet/Single_Quote.
 * utf8proc has no word-break property, so those 17 code points are listed here. */
static bool is_case_ignorable(int32_t cp)
{
    switch (category(cp)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
        return true;
    default:
        break;
    }
    static const int32_t word_break_mid[] = {0x0027, 0x002E, 0x003A, 0x00B7, 0x0387, 0x055F,
                                             0x05F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                             0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < sizeof word_break_mid / sizeof word_break_mid[0]; i++)
        if (cp == word_break_mid[i])
            return true;
    return false;
}

/* Cased = Lu, Ll, Lt, or Other_Lowercase/Other_Uppercase.  utf8proc lacks the last two: a
 * case mapping stands in for them (Roman numerals, circled letters), and the rest that are
 * not Case_Ignorable anyway (ordinal indicators, squared and negative Latin capitals) are
 * listed.  tests/models/tokenizer_agreement.py checks every code point against Python. */
static bool is_cased(int32_t cp)
{
    int cat = category(cp);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
        return true;
    if (cp == 0x00AA || cp == 0x00BA || (cp >= 0x1F130 && cp <= 0x1F149) ||
        (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189))
        return true;
    return utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp;
}

static unsigned classify_slow(int32_t cp)
{
    unsigned cls = 0;
    if (cp == 0 || cp == 0xFFFD || dr_tokenizer_is_control(cp))
        return CLASS_REMOVED;
    int cat = category(cp);
    /* Python's str.split() also splits at U+2028 (Zl) and U+2029 (Zp). */
    if (dr_tokenizer_is_whitespace(cp) || cat == UTF8PROC_CATEGORY_ZL ||
        cat == UTF8PROC_CATEGORY_ZP)
        return CLASS_SPACE;
    if (dr_tokenizer_is_cjk(cp))
        cls |= CLASS_CJK;
    if (dr_tokenizer_is_punctuation(cp))
        cls |= CLASS_PUNCT;
    if (is_cased(cp))
        cls |= CLASS_CASED;
    if (is_case_ignorable(cp))
        cls |= CLASS_IGNORABLE;
    return cls;
}

static unsigned classify(const struct dr_tokenizer *tok, int32_t cp)
{
    return cp < 128 ? tok->ascii_class[cp] : classify_slow(cp);
}

/* ---- vocabulary ----------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static int32_t lookup(const struct dr_tokenizer *tok, const char *key, size_t key_size)
{
    uint64_t h = hash_bytes(key, key_size);
    uint32_t h32 = (uint32_t)h;
    for (size_t i = (size_t)h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        uint32_t id1 = tok->slot_id[i];
        if (id1 == 0)
            return -1;
        if (tok->slot_hash[i] == h32 && tok->tok_size[id1 - 1] == key_size &&
            memcmp(tok->blob + tok->tok_off[id1 - 1], key, key_size) == 0)
            return (int32_t)(id1 - 1);
    }
}

static void insert(struct dr_tokenizer *tok, uint32_t id)
{
    const char *key = tok->blob + tok->tok_off[id];
    size_t key_size = tok->tok_size[id];
    uint64_t h = hash_bytes(key, key_size);
    uint32_t h32 = (uint32_t)h;
    for (size_t i = (size_t)h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        uint32_t id1 = tok->slot_id[i];
        if (id1 == 0 || (tok->slot_hash[i] == h32 && tok->tok_size[id1 - 1] == key_size &&
                         memcmp(tok->blob + tok->tok_off[id1 - 1], key, key_size) == 0)) {
            tok->slot_id[i] = id + 1; /* a duplicate keeps its last line's id, as in BERT */
            tok->slot_hash[i] = h32;
            return;
        }
    }
}

/* Offset of the first invalid UTF-8 sequence in s, or n if there is none. */
static size_t utf8_invalid_at(const char *s, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        if ((unsigned char)s[pos] < 0x80) {
            pos++;
            continue;
        }
        utf8proc_int32_t cp;
        size_t left = n - pos < 4 ? n - pos : 4;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos, (utf8proc_ssize_t)left, &cp);
        if (k <= 0)
            return pos;
        pos += (size_t)k;
    }
    return n;
}

enum dr_status dr_tokenizer_load_buffer(const char *vocab, size_t vocab_size, bool do_lower_case,
                                        struct dr_tokenizer **out, struct dr_error *err)
{
    if (!out || (!vocab && vocab_size))
        return dr_error_set(err, DR_ERR_INVALID_ARG, "tokenizer: NULL argument");
    if (vocab_size >= UINT32_MAX)
        return dr_error_set(err, DR_ERR_FORMAT, "vocabulary: %zu bytes, over 4 GiB", vocab_size);

    enum dr_status st = DR_OK;
    size_t bad = utf8_invalid_at(vocab, vocab_size);
    if (bad < vocab_size) {
        size_t line = 1;
        for (size_t i = 0; i < bad; i++)
            line += vocab[i] == '\n';
        return dr_error_set(err, DR_ERR_FORMAT, "vocabulary: invalid UTF-8 on line %zu (byte %zu)",
                            line, bad);
    }
    size_t n_tokens = 0;
    for (size_t i = 0; i < vocab_size; i++)
        n_tokens += vocab[i] == '\n';
    if (vocab_size > 0 && vocab[vocab_size - 1] != '\n')
        n_tokens++; /* a last line without a newline */
    if (n_tokens == 0)
        return dr_error_set(err, DR_ERR_FORMAT, "vocabulary: empty");

    size_t n_slots = 16;
    while (n_slots < 2 * n_tokens)
        n_slots *= 2;
    struct dr_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        goto nomem;
    tok->blob = malloc(vocab_size + 1);
    tok->tok_off = malloc(n_tokens * sizeof *tok->tok_off);
    tok->tok_size = malloc(n_tokens * sizeof *tok->tok_size);
    tok->slot_id = calloc(n_slots, sizeof *tok->slot_id);
    tok->slot_hash = calloc(n_slots, sizeof *tok->slot_hash);
    if (!tok->blob || !tok->tok_off || !tok->tok_size || !tok->slot_id || !tok->slot_hash)
        goto nomem;
    if (vocab_size)
        memcpy(tok->blob, vocab, vocab_size);
    tok->blob[vocab_size] = '\0';
    tok->n_tokens = n_tokens;
    tok->slot_mask = n_slots - 1;
    tok->is_lower_case = do_lower_case;

    size_t start = 0;
    for (uint32_t id = 0; id < n_tokens; id++) {
        size_t end = start;
        while (end < vocab_size && tok->blob[end] != '\n')
            end++;
        tok->blob[end] = '\0'; /* the '\n', or the terminator past a last line */
        size_t size = end - start;
        if (size > 0 && tok->blob[end - 1] == '\r')
            tok->blob[start + --size] = '\0';
        tok->tok_off[id] = (uint32_t)start;
        tok->tok_size[id] = (uint32_t)size;
        insert(tok, id);
        start = end + 1;
    }
    tok->unk_id = lookup(tok, "[UNK]", 5);
    tok->cls_id = lookup(tok, "[CLS]", 5);
    tok->sep_id = lookup(tok, "[SEP]", 5);
    if (tok->unk_id < 0 || tok->cls_id < 0 || tok->sep_id < 0) {
        st = dr_error_set(err, DR_ERR_FORMAT, "vocabulary: no %s token",
                          tok->unk_id < 0   ? "[UNK]"
                          : tok->cls_id < 0 ? "[CLS]"
                                            : "[SEP]");
        goto fail;
    }
    for (int32_t cp = 0; cp < 128; cp++)
        tok->ascii_class[cp] = (uint8_t)classify_slow(cp);
    *out = tok;
    return DR_OK;

nomem:
    st = dr_error_set(err, DR_ERR_NOMEM, "vocabulary: out of memory for %zu tokens", n_tokens);
fail:
    dr_tokenizer_destroy(tok);
    return st;
}

enum dr_status dr_tokenizer_load(const char *vocab_path, bool do_lower_case,
                                 struct dr_tokenizer **out, struct dr_error *err)
{
    if (!vocab_path || !out)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "tokenizer: NULL argument");
    enum dr_status st;
    char *data = NULL;
    FILE *f = fopen(vocab_path, "rb");
    if (!f)
        return dr_error_set(err, DR_ERR_IO, "%s: %s", vocab_path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = dr_error_set(err, DR_ERR_IO, "%s: cannot seek: %s", vocab_path, strerror(errno));
        goto fail;
    }
    data = malloc((size_t)size + 1);
    if (!data) {
        st = dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory for %ld bytes", vocab_path, size);
        goto fail;
    }
    if (fread(data, 1, (size_t)size, f) != (size_t)size) {
        st = dr_error_set(err, DR_ERR_IO, "%s: short read", vocab_path);
        goto fail;
    }
    st = dr_tokenizer_load_buffer(data, (size_t)size, do_lower_case, out, err);
    if (st != DR_OK && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        dr_error_set(err, st, "%s: %s", vocab_path, msg);
    }
fail:
    free(data);
    fclose(f);
    return st;
}

void dr_tokenizer_destroy(struct dr_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->slot_hash);
    free(tok->slot_id);
    free(tok->tok_size);
    free(tok->tok_off);
    free(tok->blob);
    free(tok);
}

size_t dr_tokenizer_vocab_len(const struct dr_tokenizer *tok)
{
    return tok->n_tokens;
}

bool dr_tokenizer_is_lower_case(const struct dr_tokenizer *tok)
{
    return tok->is_lower_case;
}

int32_t dr_tokenizer_token_id(const struct dr_tokenizer *tok, const char *token, size_t token_size)
{
    return lookup(tok, token, token_size);
}

const char *dr_tokenizer_token(const struct dr_tokenizer *tok, int32_t id, size_t *token_size)
{
    if (id < 0 || (size_t)id >= tok->n_tokens)
        return NULL;
    if (token_size)
        *token_size = tok->tok_size[id];
    return tok->blob + tok->tok_off[id];
}

/* ---- the streaming pipeline ----------------------------------------------------------- */

struct run {
    const struct dr_tokenizer *tok;
    const char *text;
    size_t text_len;
    enum dr_tokenizer_stage stage;
    dr_tokenizer_piece_fn fn;
    void *ctx;
    bool is_stopped;
    bool is_prev_cased; /* the token's last non-case-ignorable character is cased */
    /* The current word: its first MAX_WORD code points; n_chars counts all of them. */
    size_t n_chars;
    size_t run_start; /* first code point of the current run of combining marks */
    int32_t cps[MAX_WORD];
    uint8_t ccc[MAX_WORD];
    /* The word as UTF-8 at bytes + 2, so "##" fits in front of any suffix; char_end[i] is
     * the end of code point i, relative to bytes + 2. */
    uint16_t char_end[MAX_WORD];
    char bytes[2 + 4 * MAX_WORD];
};

static void emit(struct run *r, const char *text, size_t size, size_t n_chars, int32_t id)
{
    struct dr_tokenizer_piece piece = {text, size, n_chars, id};
    if (r->fn(r->ctx, &piece) != 0)
        r->is_stopped = true;
}

static void emit_id(struct run *r, int32_t id)
{
    emit(r, r->tok->blob + r->tok->tok_off[id], r->tok->tok_size[id], 0, id);
}

/* Greedy longest-match-first WordPiece over the word in r (1..MAX_WORD code points).
 * A suffix is looked up as "##" + suffix by writing "##" over the two bytes before it:
 * they belong to pieces already matched, which are never looked at again. */
static void wordpiece(struct run *r, size_t n)
{
    int32_t ids[MAX_WORD];
    size_t n_ids = 0;
    const char *word = r->bytes + 2;
    for (size_t start = 0; start < n;) {
        size_t begin = start ? r->char_end[start - 1] : 0;
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t size = r->char_end[end - 1] - begin;
            id = start ? lookup(r->tok, r->bytes + begin, size + 2) /* "##" + suffix */
                       : lookup(r->tok, word, size);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            emit_id(r, r->tok->unk_id);
            return;
        }
        ids[n_ids++] = id;
        start = end;
        if (start < n) {
            size_t at = r->char_end[start - 1]; /* word + at - 2 */
            r->bytes[at] = '#';
            r->bytes[at + 1] = '#';
        }
    }
    for (size_t i = 0; i < n_ids && !r->is_stopped; i++)
        emit_id(r, ids[i]);
}

static void end_word(struct run *r)
{
    if (r->n_chars == 0 || r->is_stopped) {
        r->n_chars = r->run_start = 0;
        return;
    }
    size_t n = r->n_chars < MAX_WORD ? r->n_chars : MAX_WORD;
    size_t size = 0;
    for (size_t i = 0; i < n; i++) {
        size += (size_t)utf8proc_encode_char(r->cps[i], (utf8proc_uint8_t *)r->bytes + 2 + size);
        r->char_end[i] = (uint16_t)size;
    }
    if (r->stage == DR_TOKENIZER_WORDS)
        emit(r, r->bytes + 2, size, r->n_chars, -1);
    else if (r->n_chars > MAX_WORD)
        emit_id(r, r->tok->unk_id);
    else
        wordpiece(r, n);
    r->n_chars = r->run_start = 0;
}

/* A normalised code point with its canonical combining class (0 when not lower-casing). */
static void push_char(struct run *r, int32_t cp, unsigned cls, uint8_t ccc)
{
    if (cls & CLASS_PUNCT) { /* punctuation has combining class 0 */
        end_word(r);
        r->cps[0] = cp;
        r->n_chars = 1;
        end_word(r);
        return;
    }
    size_t n = r->n_chars++;
    if (n >= MAX_WORD)
        return; /* the word becomes [UNK]; only its length matters now */
    if (ccc == 0) {
        r->cps[n] = cp;
        r->ccc[n] = 0;
        r->run_start = n + 1;
        return;
    }
    /* NFD's canonical ordering: stable sort by combining class within the run. */
    size_t i = n;
    for (; i > r->run_start && r->ccc[i - 1] > ccc; i--) {
        r->cps[i] = r->cps[i - 1];
        r->ccc[i] = r->ccc[i - 1];
    }
    r->cps[i] = cp;
    r->ccc[i] = ccc;
}

/* Decodes the (valid) code point at *pos and advances it. */
static int32_t next_cp(const char *text, size_t len, size_t *pos)
{
    unsigned char b = (unsigned char)text[*pos];
    if (b < 0x80) {
        (*pos)++;
        return b;
    }
    utf8proc_int32_t cp = 0;
    size_t left = len - *pos < 4 ? len - *pos : 4;
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)text + *pos, (utf8proc_ssize_t)left, &cp);
    DR_ASSERT(k > 0);
    *pos += (size_t)k;
    return cp;
}

/* str.lower()'s Final_Sigma: is the next non-case-ignorable character of this token (if
 * any) cased?  Removed characters are skipped: BERT lower-cases the cleaned text. */
static bool is_next_cased(const struct run *r, size_t pos)
{
    while (pos < r->text_len) {
        int32_t cp = next_cp(r->text, r->text_len, &pos);
        unsigned cls = classify(r->tok, cp);
        if (cls & CLASS_REMOVED)
            continue;
        if (cls & (CLASS_SPACE | CLASS_CJK))
            return false;
        if (!(cls & CLASS_IGNORABLE))
            return (cls & CLASS_CASED) != 0;
    }
    return false;
}

/* str.lower() then NFD, dropping Mn, for one code point of a token. */
static void push_lowered(struct run *r, int32_t cp, unsigned cls, size_t next_pos)
{
    int32_t lower[2];
    size_t n_lower = 1;
    if (cp < 128) {
        lower[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    } else if (cp == 0x03A3) { /* capital sigma: final form at the end of a cased word */
        lower[0] = r->is_prev_cased && !is_next_cased(r, next_pos) ? 0x03C2 : 0x03C3;
    } else if (cp == 0x0130) { /* SpecialCasing: I with dot above lowers to i + U+0307 */
        lower[0] = 'i';
        lower[1] = 0x0307;
        n_lower = 2;
    } else {
        lower[0] = utf8proc_tolower(cp);
    }
    if (!(cls & CLASS_IGNORABLE))
        r->is_prev_cased = (cls & CLASS_CASED) != 0;

    for (size_t i = 0; i < n_lower; i++) {
        if (lower[i] < 128) {
            push_char(r, lower[i], r->tok->ascii_class[lower[i]], 0);
            continue;
        }
        utf8proc_int32_t nfd[16];
        utf8proc_ssize_t n_nfd =
            utf8proc_decompose_char(lower[i], nfd, 16, UTF8PROC_DECOMPOSE, NULL);
        DR_ASSERT(n_nfd > 0 && n_nfd <= 16);
        for (utf8proc_ssize_t j = 0; j < n_nfd; j++) {
            const utf8proc_property_t *prop = utf8proc_get_property(nfd[j]);
            uint8_t ccc = (uint8_t)prop->combining_class;
            if (prop->category == UTF8PROC_CATEGORY_MN) {
                if (ccc == 0)
                    r->run_start = r->n_chars; /* a starter, though dropped */
                continue;
            }
            push_char(r, nfd[j], classify(r->tok, nfd[j]), ccc);
        }
    }
}

static void end_token(struct run *r)
{
    end_word(r);
    r->is_prev_cased = false;
}

static void run_text(struct run *r)
{
    const bool is_lower = r->tok->is_lower_case;
    size_t pos = 0;
    while (pos < r->text_len && !r->is_stopped) {
        int32_t cp = next_cp(r->text, r->text_len, &pos);
        unsigned cls = classify(r->tok, cp);
        if (cls & CLASS_REMOVED)
            continue;
        if (cls & CLASS_SPACE) {
            end_token(r);
            continue;
        }
        if (cls & CLASS_CJK)
            end_token(r);
        if (is_lower)
            push_lowered(r, cp, cls, pos);
        else
            push_char(r, cp, cls, 0);
        if (cls & CLASS_CJK)
            end_token(r);
    }
    end_token(r);
}

static enum dr_status check_text(const char *text, size_t text_len, struct dr_error *err)
{
    if (!text && text_len)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "tokenizer: NULL text");
    size_t bad = utf8_invalid_at(text, text_len);
    if (bad < text_len)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "tokenizer: invalid UTF-8 at byte %zu", bad);
    return DR_OK;
}

enum dr_status dr_tokenizer_tokenize(const struct dr_tokenizer *tok, const char *text,
                                     size_t text_len, enum dr_tokenizer_stage stage,
                                     dr_tokenizer_piece_fn fn, void *ctx, struct dr_error *err)
{
    if (!tok || !fn)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "tokenizer: NULL argument");
    enum dr_status st = check_text(text, text_len, err);
    if (st != DR_OK)
        return st;
    struct run r;
    r.tok = tok;
    r.text = text;
    r.text_len = text_len;
    r.stage = stage;
    r.fn = fn;
    r.ctx = ctx;
    r.is_stopped = false;
    r.is_prev_cased = false;
    r.n_chars = r.run_start = 0;
    run_text(&r);
    return DR_OK;
}

struct encode_ctx {
    int32_t *ids;
    size_t n_ids;
    size_t cap;
};

static int encode_piece(void *ctx, const struct dr_tokenizer_piece *piece)
{
    struct encode_ctx *e = ctx;
    e->ids[e->n_ids++] = piece->id;
    return e->n_ids == e->cap;
}

enum dr_status dr_tokenizer_encode(const struct dr_tokenizer *tok, const char *text,
                                   size_t text_len, size_t max_len, int32_t *ids, size_t *n_ids,
                                   struct dr_error *err)
{
    if (!tok || !ids || !n_ids)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "tokenizer: NULL argument");
    if (max_len < 2)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "tokenizer: max_len %zu leaves no room for [CLS] and [SEP]", max_len);
    enum dr_status st = check_text(text, text_len, err);
    if (st != DR_OK)
        return st;
    struct encode_ctx e = {ids + 1, 0, max_len - 2};
    if (e.cap > 0) {
        struct run r;
        r.tok = tok;
        r.text = text;
        r.text_len = text_len;
        r.stage = DR_TOKENIZER_WORDPIECES;
        r.fn = encode_piece;
        r.ctx = &e;
        r.is_stopped = false;
        r.is_prev_cased = false;
        r.n_chars = r.run_start = 0;
        run_text(&r);
    }
    ids[0] = tok->cls_id;
    ids[e.n_ids + 1] = tok->sep_id;
    *n_ids = e.n_ids + 2;
    return DR_OK;
}
