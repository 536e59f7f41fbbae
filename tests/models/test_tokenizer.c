/* test_tokenizer.c: the tokenizer against the facts of BERT's own tokenizer tests, plus the
 * edges BERT's rules imply (docs/tokenizer.md): vocab parsing, truncation, long words,
 * invalid UTF-8, final sigma, NFD ordering, Zs/Zl/Zp spaces.  No data files needed.
 *
 * Usage: test_tokenizer [case]  (no case: all of them)
 */
#include "dr_test.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <string.h>

/* The vocabulary of BERT's tokenizer tests, plus "," (its full-tokenizer test). */
static const char k_vocab[] = "[UNK]\n[CLS]\n[SEP]\nwant\n##want\n##ed\nwa\nun\nrunn\n##ing\n,\n";

struct joined {
    char text[4096];
    size_t size;
    int32_t ids[256];
    size_t n_ids;
};

static int join_piece(void *ctx, const struct dr_tokenizer_piece *piece)
{
    struct joined *j = ctx;
    if (j->size + piece->size + 2 < sizeof j->text) {
        if (j->size)
            j->text[j->size++] = '|';
        memcpy(j->text + j->size, piece->text, piece->size);
        j->size += piece->size;
        j->text[j->size] = '\0';
    }
    if (j->n_ids < 256)
        j->ids[j->n_ids++] = piece->id;
    return 0;
}

static struct dr_tokenizer *make(const char *vocab, bool lower)
{
    struct dr_tokenizer *tok = NULL;
    struct dr_error err = {0};
    if (dr_tokenizer_load_buffer(vocab, strlen(vocab), lower, &tok, &err) != DR_OK) {
        DR_TEST_FAIL("load: %s", err.msg);
        exit(1);
    }
    return tok;
}

/* Pieces of text joined by '|', compared with want. */
static void check_len(const struct dr_tokenizer *tok, enum dr_tokenizer_stage stage,
                      const char *text, size_t len, const char *want, int line)
{
    struct joined j = {.size = 0};
    j.text[0] = '\0';
    struct dr_error err = {0};
    enum dr_status st = dr_tokenizer_tokenize(tok, text, len, stage, join_piece, &j, &err);
    if (st != DR_OK)
        DR_TEST_FAIL("line %d: tokenize: %s", line, err.msg);
    else if (strcmp(j.text, want) != 0)
        DR_TEST_FAIL("line %d: got \"%s\", want \"%s\"", line, j.text, want);
}

#define CHECK_WORDS(tok, text, want)                                                               \
    check_len(tok, DR_TOKENIZER_WORDS, text, sizeof(text) - 1, want, __LINE__)
#define CHECK_PIECES(tok, text, want)                                                              \
    check_len(tok, DR_TOKENIZER_WORDPIECES, text, sizeof(text) - 1, want, __LINE__)

static void test_bert_basic(void)
{
    struct dr_tokenizer *lower = make(k_vocab, true);
    struct dr_tokenizer *cased = make(k_vocab, false);
    CHECK_WORDS(lower, " \tHeLLo!how  \n Are yoU?  ", "hello|!|how|are|you|?");
    CHECK_WORDS(lower, "H\u00E9llo", "hello");
    CHECK_WORDS(cased, " \tHeLLo!how  \n Are yoU?  ", "HeLLo|!|how|Are|yoU|?");
    CHECK_WORDS(cased, "H\u00E9llo", "H\u00E9llo");
    CHECK_WORDS(lower, "ah\u535A\u63A8zz", "ah|\u535A|\u63A8|zz");
    CHECK_WORDS(cased, "ah\u535A\u63A8zz", "ah|\u535A|\u63A8|zz");
    dr_tokenizer_destroy(lower);
    dr_tokenizer_destroy(cased);
}

static void test_bert_wordpiece(void)
{
    struct dr_tokenizer *tok = make(k_vocab, false);
    CHECK_PIECES(tok, "", "");
    CHECK_PIECES(tok, "unwanted running", "un|##want|##ed|runn|##ing");
    CHECK_PIECES(tok, "unwantedX running", "[UNK]|runn|##ing");
    static const char *const tokens[] = {"un", "##want", "##ed", "runn", "##ing"};
    static const int32_t ids[] = {7, 4, 5, 8, 9};
    for (int i = 0; i < 5; i++)
        DR_CHECK(dr_tokenizer_token_id(tok, tokens[i], strlen(tokens[i])) == ids[i], "id of %s",
                 tokens[i]);
    DR_CHECK(dr_tokenizer_token_id(tok, "runs", 4) == -1, "absent token");
    dr_tokenizer_destroy(tok);
}

static void test_bert_full(void)
{
    struct dr_tokenizer *tok = make(k_vocab, true);
    CHECK_PIECES(tok, "UNwant\u00E9d,running", "un|##want|##ed|,|runn|##ing");
    int32_t ids[16];
    size_t n = 0;
    const char *text = "UNwant\u00E9d,running";
    DR_CHECK(dr_tokenizer_encode(tok, text, strlen(text), 16, ids, &n, NULL) == DR_OK, "encode");
    static const int32_t want[] = {1, 7, 4, 5, 10, 8, 9, 2};
    DR_CHECK(n == 8 && memcmp(ids, want, sizeof want) == 0, "encode ids (n=%zu)", n);
    dr_tokenizer_destroy(tok);
}

static void test_bert_classes(void)
{
    static const int32_t ws[] = {' ', '\t', '\r', '\n', 0x00A0, 0x3000, 0x2009};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        DR_CHECK(dr_tokenizer_is_whitespace(ws[i]), "whitespace U+%04X", (unsigned)ws[i]);
    DR_CHECK(!dr_tokenizer_is_whitespace('A') && !dr_tokenizer_is_whitespace('-'), "not ws");
    DR_CHECK(!dr_tokenizer_is_whitespace(0x2028), "U+2028 is Zl, not BERT whitespace");

    DR_CHECK(dr_tokenizer_is_control(0x0005), "control U+0005");
    DR_CHECK(dr_tokenizer_is_control(0x200B) && dr_tokenizer_is_control(0xE000), "Cf, Co");
    static const int32_t not_control[] = {'A', ' ', '\t', '\r', '\n', 0x1F4A9};
    for (size_t i = 0; i < sizeof not_control / sizeof not_control[0]; i++)
        DR_CHECK(!dr_tokenizer_is_control(not_control[i]), "not control U+%04X",
                 (unsigned)not_control[i]);

    static const int32_t punct[] = {'-', '$', '`', '.', '^', '~', 0x00BF, 0x3001, 0x2014};
    for (size_t i = 0; i < sizeof punct / sizeof punct[0]; i++)
        DR_CHECK(dr_tokenizer_is_punctuation(punct[i]), "punctuation U+%04X", (unsigned)punct[i]);
    DR_CHECK(!dr_tokenizer_is_punctuation('A') && !dr_tokenizer_is_punctuation(' ') &&
                 !dr_tokenizer_is_punctuation(0x00A9),
             "not punctuation (U+00A9 is So)");

    DR_CHECK(dr_tokenizer_is_cjk(0x4E00) && dr_tokenizer_is_cjk(0x9FFF) &&
                 dr_tokenizer_is_cjk(0x2CEAF) && dr_tokenizer_is_cjk(0xF900) &&
                 dr_tokenizer_is_cjk(0x2FA1F),
             "CJK block edges");
    DR_CHECK(!dr_tokenizer_is_cjk(0x3042) && !dr_tokenizer_is_cjk(0xAC00) &&
                 !dr_tokenizer_is_cjk(0x2CEB0) && !dr_tokenizer_is_cjk(0x4DC0),
             "kana, hangul and neighbours are not CJK");
}

static void test_cleaning(void)
{
    struct dr_tokenizer *tok = make(k_vocab, false);
    CHECK_WORDS(tok, "a\0b", "ab"); /* NUL is dropped, not a separator */
    CHECK_WORDS(tok,
                "a\xEF\xBF\xBD"
                "b",
                "ab"); /* U+FFFD likewise */
    CHECK_WORDS(tok, "a\x01\x7F\u200B\u00ADb", "ab");
    CHECK_WORDS(tok, "a\u00A0b\u3000c\u2009d", "a|b|c|d");
    CHECK_WORDS(tok, "a\u2028b\u2029c", "a|b|c"); /* Zl, Zp: str.split() splits there */
    CHECK_WORDS(tok, "\x0B\x0C\x1C\xC2\x85", ""); /* controls, though Python calls them space */
    CHECK_WORDS(tok, "x\xE3\x81\x82\xEA\xB0\x80y", "x\u3042\uAC00y"); /* kana, hangul stay */
    CHECK_WORDS(tok, "\u00BFQu\u00E9?\u3001\u2014", "\u00BF|Qu\u00E9|?|\u3001|\u2014");
    CHECK_WORDS(tok, "$5.99", "$|5|.|99");
    dr_tokenizer_destroy(tok);
}

static void test_lower_case(void)
{
    struct dr_tokenizer *tok = make(k_vocab, true);
    CHECK_WORDS(tok, "\u00C5NGSTR\u00D6M caf\u00E9 na\u00EFve", "angstrom|cafe|naive");
    /* str.lower(): U+0130 -> "i" + U+0307, then the Mn is stripped. */
    CHECK_WORDS(tok, "\u0130STANBUL", "istanbul");
    /* Final sigma, with the word's context: only at the end of a cased run. */
    CHECK_WORDS(tok, "\u039F\u0394\u039F\u03A3", "\u03BF\u03B4\u03BF\u03C2");
    CHECK_WORDS(tok, "\u03A3\u0391", "\u03C3\u03B1");
    CHECK_WORDS(tok, "\u03A3", "\u03C3");
    CHECK_WORDS(tok, "\u0391\u03A3.\u0392", "\u03B1\u03C3|.|\u03B2"); /* '.' is ignorable */
    CHECK_WORDS(tok, "\u0391\u03A3 \u0392", "\u03B1\u03C2|\u03B2");
    CHECK_WORDS(tok, "\u0391\u03A3\u4E00", "\u03B1\u03C2|\u4E00");
    CHECK_WORDS(tok, "\u0391\x01\u03A3", "\u03B1\u03C2"); /* removed before lower-casing */
    CHECK_WORDS(tok, "1\u03A3", "1\u03C3");
    /* Hangul decomposes to jamo (NFD); the compatibility ideograph to its unified form. */
    CHECK_WORDS(tok, "\uAC00", "\u1100\u1161");
    CHECK_WORDS(tok, "\uF900", "\u8C48");
    /* A token of combining marks only vanishes. */
    CHECK_WORDS(tok, "a \u0301\u0302 b", "a|b");
    /* NFD orders kept marks by combining class: U+1D16D (226) after U+1D165 (216). */
    CHECK_WORDS(tok, "x\U0001D16D\U0001D165", "x\U0001D165\U0001D16D");
    CHECK_WORDS(tok, "x\U0001D16D\u0301\U0001D165", "x\U0001D165\U0001D16D");
    CHECK_WORDS(tok, "x\U0001D16D\u034F\U0001D165", "x\U0001D16D\U0001D165"); /* CGJ: starter */
    dr_tokenizer_destroy(tok);
}

static void test_long_words(void)
{
    struct dr_tokenizer *tok = make("[UNK]\n[CLS]\n[SEP]\na\n##a\n", false);
    char text[512];
    struct joined j;
    for (size_t len = 99; len <= 102; len++) {
        memset(text, 'a', len);
        memset(&j, 0, sizeof j);
        DR_CHECK(dr_tokenizer_tokenize(tok, text, len, DR_TOKENIZER_WORDPIECES, join_piece, &j,
                                       NULL) == DR_OK,
                 "tokenize");
        size_t want = len <= DR_TOKENIZER_MAX_WORD_CHARS ? len : 1;
        DR_CHECK(j.n_ids == want && j.ids[0] == (len <= 100 ? 3 : 0), "len %zu: %zu ids", len,
                 j.n_ids);
    }
    /* 100 two-byte characters is still one word of 100 code points. */
    for (size_t i = 0; i < 100; i++)
        memcpy(text + 2 * i, "\u00E9", 2);
    memset(&j, 0, sizeof j);
    dr_tokenizer_tokenize(tok, text, 200, DR_TOKENIZER_WORDPIECES, join_piece, &j, NULL);
    DR_CHECK(j.n_ids == 1 && j.ids[0] == 0, "100 x U+00E9 -> [UNK] (no such piece)");
    dr_tokenizer_destroy(tok);

    struct dr_tokenizer *words = make(k_vocab, false);
    memset(text, 'b', 300);
    memset(&j, 0, sizeof j);
    dr_tokenizer_tokenize(words, text, 300, DR_TOKENIZER_WORDS, join_piece, &j, NULL);
    DR_CHECK(j.n_ids == 1 && j.size == DR_TOKENIZER_MAX_WORD_CHARS,
             "a long word is reported once, by its prefix");
    dr_tokenizer_destroy(words);
}

static void test_encode_truncation(void)
{
    struct dr_tokenizer *tok = make(k_vocab, true);
    const char *text = "unwanted running, unwanted";
    int32_t ids[32];
    size_t n = 0;
    static const int32_t full[] = {1, 7, 4, 5, 8, 9, 10, 7, 4, 5, 2};
    DR_CHECK(dr_tokenizer_encode(tok, text, strlen(text), 32, ids, &n, NULL) == DR_OK && n == 11 &&
                 memcmp(ids, full, sizeof full) == 0,
             "full encode");
    for (size_t max_len = 2; max_len <= 12; max_len++) {
        int32_t out[12];
        for (size_t i = 0; i < 12; i++)
            out[i] = -7;
        DR_CHECK(dr_tokenizer_encode(tok, text, strlen(text), max_len, out, &n, NULL) == DR_OK,
                 "encode max_len %zu", max_len);
        size_t want = max_len < 11 ? max_len : 11;
        DR_CHECK(n == want, "max_len %zu: n %zu, want %zu", max_len, n, want);
        DR_CHECK(out[0] == 1 && out[n - 1] == 2, "max_len %zu: [CLS] ... [SEP]", max_len);
        DR_CHECK(memcmp(out + 1, full + 1, (n - 2) * sizeof(int32_t)) == 0, "prefix %zu", max_len);
        DR_CHECK(n >= 12 || out[n] == -7, "max_len %zu: wrote past n", max_len);
    }
    DR_CHECK(dr_tokenizer_encode(tok, text, strlen(text), 1, ids, &n, NULL) == DR_ERR_INVALID_ARG,
             "max_len 1");
    DR_CHECK(dr_tokenizer_encode(tok, "", 0, 8, ids, &n, NULL) == DR_OK && n == 2, "empty");
    DR_CHECK(dr_tokenizer_encode(tok, NULL, 0, 8, ids, &n, NULL) == DR_OK && n == 2, "NULL, 0");
    dr_tokenizer_destroy(tok);
}

static void test_invalid_utf8(void)
{
    struct dr_tokenizer *tok = make(k_vocab, true);
    static const struct {
        const char *bytes;
        size_t len;
        size_t at;
    } bad[] = {
        {"ab\x80", 3, 2},              /* lone continuation byte */
        {"a\xC3", 2, 1},               /* truncated sequence */
        {"\xC0\xAF", 2, 0},            /* overlong '/' */
        {"x\xE0\x80\xAF", 4, 1},       /* overlong, 3 bytes */
        {"\xED\xA0\x80", 3, 0},        /* surrogate U+D800 */
        {"ok \xF4\x90\x80\x80", 7, 3}, /* U+110000 */
        {"\xFF", 1, 0},                /* never valid */
        {"\xE4\xB8", 2, 0},            /* truncated CJK */
        {"want\xF0\x9F\x98", 7, 4},    /* truncated emoji */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t ids[8] = {0};
        size_t n = 12345;
        struct dr_error err = {0};
        enum dr_status st = dr_tokenizer_encode(tok, bad[i].bytes, bad[i].len, 8, ids, &n, &err);
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad[i].at);
        DR_CHECK(st == DR_ERR_INVALID_ARG && n == 12345 && strstr(err.msg, want) != NULL,
                 "case %zu: status %d, msg \"%s\"", i, (int)st, err.msg);
        struct joined j = {.size = 0};
        st = dr_tokenizer_tokenize(tok, bad[i].bytes, bad[i].len, DR_TOKENIZER_WORDS, join_piece,
                                   &j, NULL);
        DR_CHECK(st == DR_ERR_INVALID_ARG && j.n_ids == 0, "case %zu: tokenize reports nothing", i);
    }
    dr_tokenizer_destroy(tok);
}

static void test_vocab_parsing(void)
{
    struct dr_tokenizer *tok = NULL;
    struct dr_error err = {0};
    /* CRLF lines, no newline at the end, a duplicate (the last line's id wins), an empty line. */
    const char crlf[] = "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\n\r\nhi\r\nthere";
    DR_CHECK(dr_tokenizer_load_buffer(crlf, sizeof crlf - 1, false, &tok, &err) == DR_OK,
             "crlf: %s", err.msg);
    DR_CHECK(dr_tokenizer_vocab_len(tok) == 8, "8 lines, got %zu", dr_tokenizer_vocab_len(tok));
    DR_CHECK(dr_tokenizer_token_id(tok, "hi", 2) == 6, "duplicate keeps the last id");
    DR_CHECK(dr_tokenizer_token_id(tok, "there", 5) == 7, "last line without newline");
    DR_CHECK(dr_tokenizer_token_id(tok, "", 0) == 5, "empty line is a token");
    size_t size = 0;
    const char *text = dr_tokenizer_token(tok, 4, &size);
    DR_CHECK(text && size == 2 && strcmp(text, "hi") == 0, "token 4");
    DR_CHECK(dr_tokenizer_token(tok, 8, NULL) == NULL && dr_tokenizer_token(tok, -1, NULL) == NULL,
             "out of range");
    dr_tokenizer_destroy(tok);

    /* U+2028 is a token of the Chinese vocabulary: only '\n' separates lines. */
    const char sep[] = "[UNK]\n[CLS]\n[SEP]\n\u2028\n##\u2028\n";
    tok = NULL;
    DR_CHECK(dr_tokenizer_load_buffer(sep, sizeof sep - 1, false, &tok, &err) == DR_OK &&
                 dr_tokenizer_vocab_len(tok) == 5 && dr_tokenizer_token_id(tok, "\u2028", 3) == 3,
             "U+2028 token");
    dr_tokenizer_destroy(tok);

    static const struct {
        const char *vocab;
        const char *msg;
    } bad[] = {
        {"", "empty"},
        {"[CLS]\n[SEP]\n", "no [UNK]"},
        {"[UNK]\n[SEP]\n", "no [CLS]"},
        {"[UNK]\n[CLS]\n", "no [SEP]"},
        {"[UNK]\n[CLS]\n[SEP]\nok\nb\xE9z\n", "invalid UTF-8 on line 5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tok = (struct dr_tokenizer *)&err; /* must stay untouched */
        memset(&err, 0, sizeof err);
        enum dr_status st =
            dr_tokenizer_load_buffer(bad[i].vocab, strlen(bad[i].vocab), true, &tok, &err);
        DR_CHECK(st == DR_ERR_FORMAT && strstr(err.msg, bad[i].msg) &&
                     tok == (struct dr_tokenizer *)&err,
                 "bad vocab %zu: %s", i, err.msg);
    }
    tok = NULL;
    DR_CHECK(dr_tokenizer_load("no/such/vocab.txt", true, &tok, &err) == DR_ERR_IO &&
                 strstr(err.msg, "no/such/vocab.txt") && tok == NULL,
             "missing file: %s", err.msg);
    dr_tokenizer_destroy(NULL);
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        {"bert_basic", test_bert_basic},     {"bert_wordpiece", test_bert_wordpiece},
        {"bert_full", test_bert_full},       {"bert_classes", test_bert_classes},
        {"cleaning", test_cleaning},         {"lower_case", test_lower_case},
        {"long_words", test_long_words},     {"encode_truncation", test_encode_truncation},
        {"invalid_utf8", test_invalid_utf8}, {"vocab_parsing", test_vocab_parsing},
    };
    int n_run = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        cases[i].fn();
        n_run++;
    }
    if (n_run == 0) {
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 1;
    }
    if (dr_test_failures) {
        fprintf(stderr, "%d failure(s)\n", dr_test_failures);
        return 1;
    }
    printf("tokenizer: %d case(s) passed\n", n_run);
    return 0;
}
