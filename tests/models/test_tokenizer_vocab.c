/* test_tokenizer_vocab.c: the tokenizer on the two real BERT vocabularies in the shared data:
 * Google's uncased English one (do_lower_case: true) and bert-base-chinese (false, from its
 * tokenizer_config.json).  Exits 77 (skipped) with a message when the data is absent.
 *
 * The data folder is $DR_DATA_DIR, else $DR_REPO_DIR/../shared/data (ctest sets DR_REPO_DIR).
 */
#include "dr_test.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <string.h>

static char g_data_dir[1024];

struct joined {
    char text[4096];
    size_t size;
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
    return 0;
}

static void check(const struct dr_tokenizer *tok, const char *text, const char *want, int line)
{
    struct joined j = {.size = 0};
    j.text[0] = '\0';
    if (dr_tokenizer_tokenize(tok, text, strlen(text), DR_TOKENIZER_WORDPIECES, join_piece, &j,
                              NULL) != DR_OK)
        DR_TEST_FAIL("line %d: tokenize failed", line);
    else if (strcmp(j.text, want) != 0)
        DR_TEST_FAIL("line %d: got \"%s\", want \"%s\"", line, j.text, want);
}
#define CHECK(tok, text, want) check(tok, text, want, __LINE__)

static struct dr_tokenizer *load(const char *folder, bool lower, size_t want_len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/vocab.txt", g_data_dir, folder);
    struct dr_tokenizer *tok = NULL;
    struct dr_error err = {0};
    if (dr_tokenizer_load(path, lower, &tok, &err) != DR_OK) {
        DR_TEST_FAIL("%s", err.msg);
        exit(1);
    }
    DR_CHECK(dr_tokenizer_vocab_len(tok) == want_len, "%s: %zu tokens, want %zu", folder,
             dr_tokenizer_vocab_len(tok), want_len);
    return tok;
}

/* do_lower_case as the folder's tokenizer_config.json says; true when it says nothing. */
static bool config_lower_case(const char *folder)
{
    char path[1200], buf[4096];
    snprintf(path, sizeof path, "%s/%s/tokenizer_config.json", g_data_dir, folder);
    FILE *f = fopen(path, "rb");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *key = strstr(buf, "\"do_lower_case\"");
    if (!key)
        return true;
    key = strchr(key + 15, ':');
    while (key && (*++key == ' '))
        ;
    return !(key && strncmp(key, "false", 5) == 0);
}

static void test_uncased_english(void)
{
    const char *folder = "bert-mini-uncased-vocab";
    DR_CHECK(config_lower_case(folder), "uncased vocabulary lower-cases");
    struct dr_tokenizer *tok = load(folder, config_lower_case(folder), 30522);
    DR_CHECK(dr_tokenizer_token_id(tok, "[PAD]", 5) == 0 &&
                 dr_tokenizer_token_id(tok, "[UNK]", 5) == 100 &&
                 dr_tokenizer_token_id(tok, "[CLS]", 5) == 101 &&
                 dr_tokenizer_token_id(tok, "[SEP]", 5) == 102,
             "special ids");
    CHECK(tok, "Hello, World!", "hello|,|world|!");
    CHECK(tok, "This moisturizer is AMAZING!!! 5/5 would buy again :)",
          "this|moist|##uri|##zer|is|amazing|!|!|!|5|/|5|would|buy|again|:|)");
    CHECK(tok, "Caf\u00E9 cr\u00E8me br\u00FBl\u00E9e", "cafe|cr|##eme|br|##ule|##e");
    CHECK(tok, "unaffable", "una|##ffa|##ble");
    CHECK(tok, "$19.99 for 2oz", "$|19|.|99|for|2|##oz");
    /* CJK characters split one by one (U+7231 is not in this vocabulary); emoji are not
     * punctuation, so one glued to a word makes the whole word [UNK]. */
    CHECK(tok, "\u6211\u7231lipstick \U0001F484", "\u6211|[UNK]|lipstick|[UNK]");
    CHECK(tok, "lipstick\U0001F484", "[UNK]");

    int32_t ids[8];
    size_t n = 0;
    const char *text = "hello world, hello again";
    DR_CHECK(dr_tokenizer_encode(tok, text, strlen(text), 5, ids, &n, NULL) == DR_OK && n == 5 &&
                 ids[0] == 101 && ids[4] == 102,
             "truncated to 5");
    DR_CHECK(ids[1] == 7592 && ids[2] == 2088 && ids[3] == 1010, "hello world , ids: %d %d %d",
             (int)ids[1], (int)ids[2], (int)ids[3]);
    dr_tokenizer_destroy(tok);
}

static void test_chinese(void)
{
    const char *folder = "bert-base-chinese-tokenizer";
    DR_CHECK(!config_lower_case(folder), "bert-base-chinese keeps case");
    struct dr_tokenizer *tok = load(folder, config_lower_case(folder), 21128);
    DR_CHECK(dr_tokenizer_token_id(tok, "[UNK]", 5) == 100 &&
                 dr_tokenizer_token_id(tok, "[CLS]", 5) == 101 &&
                 dr_tokenizer_token_id(tok, "[SEP]", 5) == 102,
             "special ids");
    /* Every ideograph is its own token. */
    CHECK(tok, "\u8FD9\u4E2A\u53E3\u7EA2\u5F88\u597D\u7528",
          "\u8FD9|\u4E2A|\u53E3|\u7EA2|\u5F88|\u597D|\u7528");
    CHECK(tok, "\u4ECA\u5929\u4E70\u4E863\u652F\u53E3\u7EA2\uFF01",
          "\u4ECA|\u5929|\u4E70|\u4E86|3|\u652F|\u53E3|\u7EA2|\uFF01");
    /* Mixed Chinese, English, digits and emoji.  No lower-casing: the vocabulary has no
     * piece for "iPhone" ("##P"), so it is [UNK]; so is the emoji. */
    CHECK(tok, "iPhone 15\u624B\u673A\u58F3\U0001F60A", "[UNK]|15|\u624B|\u673A|\u58F3|[UNK]");
    CHECK(tok, "iphone", "iphone");
    int32_t ids[16];
    size_t n = 0;
    const char *text = "\u53E3\u7EA2 lipstick";
    DR_CHECK(dr_tokenizer_encode(tok, text, strlen(text), 16, ids, &n, NULL) == DR_OK && n >= 5 &&
                 ids[0] == 101 && ids[1] == dr_tokenizer_token_id(tok, "\u53E3", 3) &&
                 ids[2] == dr_tokenizer_token_id(tok, "\u7EA2", 3) && ids[n - 1] == 102,
             "encode ideographs");
    dr_tokenizer_destroy(tok);
}

int main(void)
{
    dr_test_init_seed();
    const char *env = getenv("DR_DATA_DIR");
    if (env && *env)
        snprintf(g_data_dir, sizeof g_data_dir, "%s", env);
    else
        snprintf(g_data_dir, sizeof g_data_dir, "%s/../shared/data",
                 getenv("DR_REPO_DIR") ? getenv("DR_REPO_DIR") : ".");
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/bert-mini-uncased-vocab/vocab.txt", g_data_dir);
    FILE *f = fopen(probe, "rb");
    char probe2[1200];
    snprintf(probe2, sizeof probe2, "%s/bert-base-chinese-tokenizer/vocab.txt", g_data_dir);
    FILE *f2 = fopen(probe2, "rb");
    if (!f || !f2) {
        printf("SKIP: shared data not found (%s, %s); set DR_DATA_DIR\n", probe, probe2);
        if (f)
            fclose(f);
        if (f2)
            fclose(f2);
        return DR_TEST_SKIP;
    }
    fclose(f);
    fclose(f2);
    test_uncased_english();
    test_chinese();
    if (dr_test_failures) {
        fprintf(stderr, "%d failure(s)\n", dr_test_failures);
        return 1;
    }
    printf("tokenizer vocabularies: passed\n");
    return 0;
}
