/* tokenizer_dump.c: prints what the C tokenizer makes of its input, one line per input, so
 * tests/models/tokenizer_agreement.py can compare it with the Python twin line by line.
 *
 *   tokenizer_dump ids VOCAB LOWER MAX_LEN RECORDS   [CLS] ... [SEP] ids, or "ERR"
 *   tokenizer_dump words VOCAB LOWER RECORDS         basic-tokenizer words, or "ERR"
 *   tokenizer_dump codepoints VOCAB                  every code point in four contexts
 *
 * LOWER is 0 or 1.  RECORDS holds "<byte count>\n<bytes>\n" per input, so inputs may hold
 * newlines, NUL and invalid UTF-8.  Words never hold spaces, so a space joins them.
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out_words {
    char *buf;
    size_t size;
    size_t cap;
};

static int collect_word(void *ctx, const struct dr_tokenizer_piece *piece)
{
    struct out_words *o = ctx;
    if (o->size + piece->size + 2 > o->cap) {
        size_t cap = 2 * (o->cap + piece->size + 2);
        char *buf = realloc(o->buf, cap);
        if (!buf) {
            fprintf(stderr, "tokenizer_dump: out of memory\n");
            exit(2);
        }
        o->buf = buf;
        o->cap = cap;
    }
    if (o->size)
        o->buf[o->size++] = ' ';
    memcpy(o->buf + o->size, piece->text, piece->size);
    o->size += piece->size;
    return 0;
}

static void print_words(const struct dr_tokenizer *tok, const char *text, size_t len,
                        struct out_words *o, char end)
{
    o->size = 0;
    if (dr_tokenizer_tokenize(tok, text, len, DR_TOKENIZER_WORDS, collect_word, o, NULL) != DR_OK) {
        printf("ERR%c", end);
        return;
    }
    fwrite(o->buf ? o->buf : "", 1, o->size, stdout);
    putchar(end);
}

static struct dr_tokenizer *load(const char *path, const char *lower)
{
    struct dr_tokenizer *tok = NULL;
    struct dr_error err = {0};
    if (dr_tokenizer_load(path, strcmp(lower, "1") == 0, &tok, &err) != DR_OK) {
        fprintf(stderr, "tokenizer_dump: %s\n", err.msg);
        exit(2);
    }
    return tok;
}

/* Reads the next record into *buf; returns its length, or -1 at the end. */
static long next_record(FILE *f, char **buf, size_t *cap)
{
    long len;
    if (fscanf(f, "%ld", &len) != 1 || len < 0 || fgetc(f) != '\n')
        return -1;
    if ((size_t)len + 1 > *cap) {
        *cap = (size_t)len + 1;
        *buf = realloc(*buf, *cap);
        if (!*buf)
            exit(2);
    }
    if (fread(*buf, 1, (size_t)len, f) != (size_t)len || fgetc(f) != '\n') {
        fprintf(stderr, "tokenizer_dump: truncated record\n");
        exit(2);
    }
    return len;
}

static int dump_records(const struct dr_tokenizer *tok, size_t max_len, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 2;
    }
    char *buf = NULL;
    size_t cap = 0;
    int32_t *ids = max_len ? malloc(max_len * sizeof *ids) : NULL;
    struct out_words o = {0};
    long len;
    while ((len = next_record(f, &buf, &cap)) >= 0) {
        if (!max_len) {
            print_words(tok, buf, (size_t)len, &o, '\n');
            continue;
        }
        size_t n = 0;
        if (dr_tokenizer_encode(tok, buf, (size_t)len, max_len, ids, &n, NULL) != DR_OK) {
            puts("ERR");
            continue;
        }
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
    }
    free(o.buf);
    free(ids);
    free(buf);
    fclose(f);
    return 0;
}

/* For each code point c: the words of "x c y" lower-cased and not, then of "c Σ" and
 * "Α c Σ" lower-cased (c's Cased / Case_Ignorable role for the final sigma). */
static int dump_codepoints(const char *vocab)
{
    struct dr_tokenizer *lower = load(vocab, "1");
    struct dr_tokenizer *cased = load(vocab, "0");
    struct out_words o = {0};
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        char c[4];
        size_t n;
        if (cp < 0x80) {
            c[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            c[0] = (char)(0xC0 | (cp >> 6));
            c[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            c[0] = (char)(0xE0 | (cp >> 12));
            c[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            c[2] = (char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            c[0] = (char)(0xF0 | (cp >> 18));
            c[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            c[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            c[3] = (char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        char text[16];
        printf("%X\t", (unsigned)cp);
        text[0] = 'x';
        memcpy(text + 1, c, n);
        text[n + 1] = 'y';
        print_words(lower, text, n + 2, &o, '\t');
        print_words(cased, text, n + 2, &o, '\t');
        memcpy(text, c, n);
        memcpy(text + n, "\u03A3", 2);
        print_words(lower, text, n + 2, &o, '\t');
        memcpy(text, "\u0391", 2);
        memcpy(text + 2, c, n);
        memcpy(text + 2 + n, "\u03A3", 2);
        print_words(lower, text, n + 4, &o, '\n');
    }
    free(o.buf);
    dr_tokenizer_destroy(lower);
    dr_tokenizer_destroy(cased);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "ids") == 0) {
        struct dr_tokenizer *tok = load(argv[2], argv[3]);
        long max_len = strtol(argv[4], NULL, 10);
        int rc = max_len >= 2 ? dump_records(tok, (size_t)max_len, argv[5]) : 2;
        dr_tokenizer_destroy(tok);
        return rc;
    }
    if (argc == 5 && strcmp(argv[1], "words") == 0) {
        struct dr_tokenizer *tok = load(argv[2], argv[3]);
        int rc = dump_records(tok, 0, argv[4]);
        dr_tokenizer_destroy(tok);
        return rc;
    }
    if (argc == 3 && strcmp(argv[1], "codepoints") == 0)
        return dump_codepoints(argv[2]);
    fprintf(stderr, "usage: tokenizer_dump ids VOCAB LOWER MAX_LEN RECORDS\n"
                    "       tokenizer_dump words VOCAB LOWER RECORDS\n"
                    "       tokenizer_dump codepoints VOCAB\n");
    return 2;
}
