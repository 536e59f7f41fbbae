/* test_model_file.c: the manifest + safetensors loader on good and corrupt files.
 *
 * Each case builds its files in a fresh temporary directory: a safetensors blob written
 * byte by byte (header JSON by hand, so corruptions are exact) and a manifest whose
 * checksum matches the blob unless the case is about checksums.  The loader must refuse
 * every corrupt file with DR_ERR_FORMAT and a message naming the problem.
 *
 * Usage: test_model_file [case]  (no case: all of them)
 */
#include "dr_test.h"
#include "model_file.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[512];

/* u64 length + header (padded with spaces to a multiple of 8) + data. */
static uint8_t *make_st(const char *header, const void *data, size_t data_size, size_t *size)
{
    size_t hlen = strlen(header), padded = dr_round_up(hlen, 8);
    uint8_t *buf = malloc(8 + padded + data_size + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    if (data_size)
        memcpy(buf + 8 + padded, data, data_size);
    *size = 8 + padded + data_size;
    return buf;
}

static void write_file(const char *name, const void *buf, size_t size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(buf, 1, size, f) != size)) {
        DR_TEST_FAIL("cannot write %s", path);
        exit(1);
    }
    fclose(f);
}

static void sha_hex(const void *buf, size_t size, char hex[65])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(buf, size, d, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static const char k_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";

/* Writes model.safetensors from (header, data) and a manifest around it; extra is spliced
 * into the manifest (e.g. an int8 section).  sha_override replaces the weights' checksum. */
static void write_model(const char *header, const void *data, size_t data_size, const char *dtype,
                        const char *extra, const char *sha_override)
{
    size_t size;
    uint8_t *st = make_st(header, data, data_size, &size);
    write_file("model.safetensors", st, size);
    char sha[65], vsha[65];
    sha_hex(st, size, sha);
    sha_hex(k_vocab, strlen(k_vocab), vsha);
    write_file("vocab.txt", k_vocab, strlen(k_vocab));
    free(st);
    char manifest[2048];
    snprintf(manifest, sizeof manifest,
             "{\"format\": \"driftrec-model\", \"format_version\": 1, \"name\": \"t\",\n"
             " \"version\": \"1\", \"architecture\": \"test\",\n"
             " \"config\": {\"hidden_size\": 4, \"eps\": 1e-5, \"pooling\": \"mean\","
             " \"normalize\": true},\n"
             " \"weights\": {\"file\": \"model.safetensors\", \"sha256\": \"%s\","
             " \"dtype\": \"%s\"},\n"
             " \"vocab\": {\"file\": \"vocab.txt\", \"sha256\": \"%s\", \"do_lower_case\": true}"
             "%s}\n",
             sha_override ? sha_override : sha, dtype, vsha, extra ? extra : "");
    write_file("manifest.json", manifest, strlen(manifest));
}

/* Opens the model directory; if want_msg is NULL it must succeed, else fail with a
 * message containing want_msg.  Returns the open file on success (caller destroys). */
static struct dr_model_file *open_expect(const char *want_msg, int line)
{
    struct dr_model_file *mf = NULL;
    struct dr_error err = {0};
    enum dr_status st = dr_model_file_open(g_dir, &mf, &err);
    if (!want_msg) {
        if (st != DR_OK)
            DR_TEST_FAIL("line %d: open failed: %s", line, err.msg);
        return mf;
    }
    if (st == DR_OK) {
        DR_TEST_FAIL("line %d: open succeeded, expected \"%s\"", line, want_msg);
        dr_model_file_destroy(mf);
        return NULL;
    }
    if (!strstr(err.msg, want_msg))
        DR_TEST_FAIL("line %d: error \"%s\", expected it to contain \"%s\"", line, err.msg,
                     want_msg);
    if (mf)
        DR_TEST_FAIL("line %d: *out set on failure", line);
    return NULL;
}

/* A: F32 [2,3] at [0,24); b: I8 [3] at [24,27); c: F32 [2] at [27,35) (misaligned). */
static const char k_good_header[] =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
    " \"b\": {\"dtype\": \"I8\", \"shape\": [3], \"data_offsets\": [24, 27]},"
    " \"c\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [27, 35]}}";

static uint8_t g_data[35];

static void fill_good_data(void)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, c[2] = {-1.5f, 2.5f};
    int8_t b[3] = {-63, 0, 63};
    memcpy(g_data, a, 24);
    memcpy(g_data + 24, b, 3);
    memcpy(g_data + 27, c, 8);
}

static void case_good(void)
{
    write_model(k_good_header, g_data, sizeof g_data, "fp32", NULL, NULL);
    struct dr_model_file *mf = open_expect(NULL, __LINE__);
    if (!mf)
        return;
    DR_CHECK(strcmp(dr_model_file_name(mf), "t") == 0, "name");
    DR_CHECK(strcmp(dr_model_file_architecture(mf), "test") == 0, "architecture");
    DR_CHECK(!dr_model_file_is_int8(mf), "dtype fp32");
    DR_CHECK(dr_model_file_vocab_lower_case(mf), "do_lower_case");
    DR_CHECK(strstr(dr_model_file_vocab_path(mf), "vocab.txt") != NULL, "vocab path");
    DR_CHECK(dr_model_file_tensors(mf)->n_tensors == 3, "3 tensors");
    struct dr_error err = {0};
    const void *p = NULL;
    DR_CHECK(dr_model_file_tensor(mf, "a", DR_DTYPE_F32, 2, (size_t[]){2, 3}, 4, &p, &err) == DR_OK,
             "a: %s", err.msg);
    DR_CHECK(p && ((const float *)p)[5] == 6.0f, "a[1][2]");
    DR_CHECK(dr_model_file_tensor(mf, "c", DR_DTYPE_F32, 1, (size_t[]){2}, 64, &p, &err) == DR_OK,
             "c: %s", err.msg);
    DR_CHECK(p && (uintptr_t)p % 64 == 0, "c copied to 64-byte alignment");
    DR_CHECK(p && ((const float *)p)[1] == 2.5f, "c[1]");
    DR_CHECK(dr_model_file_tensor(mf, "b", DR_DTYPE_I8, 1, (size_t[]){3}, 1, &p, &err) == DR_OK,
             "b: %s", err.msg);
    DR_CHECK(p && ((const int8_t *)p)[0] == -63, "b[0]");
    int64_t h = 0;
    double eps = 0;
    const char *pooling = NULL;
    bool norm = false;
    DR_CHECK(dr_model_file_config_int(mf, "hidden_size", 1, 100, &h, &err) == DR_OK && h == 4,
             "config int");
    DR_CHECK(dr_model_file_config_number(mf, "eps", &eps, &err) == DR_OK && eps == 1e-5,
             "config number");
    DR_CHECK(dr_model_file_config_string(mf, "pooling", &pooling, &err) == DR_OK &&
                 strcmp(pooling, "mean") == 0,
             "config string");
    DR_CHECK(dr_model_file_config_bool_or(mf, "normalize", false, &norm, &err) == DR_OK && norm,
             "config bool");
    DR_CHECK(dr_model_file_config_int(mf, "hidden_size", 5, 100, &h, &err) == DR_ERR_FORMAT &&
                 strstr(err.msg, "config.hidden_size"),
             "config range: %s", err.msg);
    DR_CHECK(dr_model_file_config_int(mf, "layers", 1, 100, &h, &err) == DR_ERR_FORMAT &&
                 strstr(err.msg, "config.layers is missing"),
             "config missing: %s", err.msg);

    /* Requests that do not match the file name the tensor and both shapes. */
    DR_CHECK(dr_model_file_tensor(mf, "a", DR_DTYPE_F32, 2, (size_t[]){2, 4}, 4, &p, &err) ==
                     DR_ERR_FORMAT &&
                 strcmp(err.msg, "a: shape 2x3, expected 2x4") == 0,
             "wrong shape: %s", err.msg);
    DR_CHECK(dr_model_file_tensor(mf, "a", DR_DTYPE_F32, 1, (size_t[]){6}, 4, &p, &err) ==
                     DR_ERR_FORMAT &&
                 strcmp(err.msg, "a: shape 2x3, expected 6") == 0,
             "wrong rank: %s", err.msg);
    DR_CHECK(dr_model_file_tensor(mf, "b", DR_DTYPE_F32, 1, (size_t[]){3}, 4, &p, &err) ==
                     DR_ERR_FORMAT &&
                 strcmp(err.msg, "b: dtype I8, expected F32") == 0,
             "wrong dtype: %s", err.msg);
    DR_CHECK(dr_model_file_tensor(mf, "bert.pooler.dense.weight", DR_DTYPE_F32, 1, (size_t[]){3}, 4,
                                  &p, &err) == DR_ERR_FORMAT &&
                 strcmp(err.msg, "bert.pooler.dense.weight: missing tensor") == 0,
             "missing tensor: %s", err.msg);
    dr_model_file_destroy(mf);
}

static void case_safetensors_corrupt(void)
{
    static const struct {
        const char *header;
        size_t data_size;
        const char *want;
    } cases[] = {
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}", 24,
         "not a JSON object"},
        {"[1, 2]", 0, "does not start with '{'"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} x", 8,
         "after its JSON object"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}", 20,
         "run past the data area"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
         " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]}}",
         24, "overlap"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16, "gap"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 8]}}", 8,
         "a: data_offsets [0, 8] hold 8 bytes, but F32 2x3 needs 24"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 12,
         "cover 8 bytes of a 12-byte data area"},
        {"{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
         "unsupported dtype \"Q4\""},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8,
         "shape[0] is not a non-negative integer"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8,
         "end before begin"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8,
         "\"data_offsets\" must be [begin, end]"},
        {"{\"a\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "missing or non-string"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
         " \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
         16, "a: tensor named twice"},
        {"{\"__metadata__\": {\"k\": 3}}", 0, "__metadata__.k is not a string"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296],"
         " \"data_offsets\": [0, 8]}}",
         8, "overflows"},
    };
    uint8_t zeros[64] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_model(cases[i].header, zeros, cases[i].data_size, "fp32", NULL, NULL);
        open_expect(cases[i].want, (int)(1000 + i));
    }
}

static void case_raw_lengths(void)
{
    struct dr_safetensors st;
    struct dr_error err = {0};
    uint8_t short_buf[5] = {0};
    DR_CHECK(dr_safetensors_parse(short_buf, sizeof short_buf, "x", &st, &err) == DR_ERR_FORMAT &&
                 strstr(err.msg, "too short"),
             "short: %s", err.msg);
    uint8_t big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    DR_CHECK(dr_safetensors_parse(big, sizeof big, "x", &st, &err) == DR_ERR_FORMAT &&
                 strstr(err.msg, "runs past the end of the file"),
             "huge header length: %s", err.msg);
    /* Truncated mid-header. */
    size_t size;
    uint8_t *buf = make_st(k_good_header, g_data, sizeof g_data, &size);
    DR_CHECK(dr_safetensors_parse(buf, 40, "x", &st, &err) == DR_ERR_FORMAT &&
                 strstr(err.msg, "runs past the end"),
             "truncated header: %s", err.msg);
    /* Truncated in the data area: the last tensor runs past it. */
    DR_CHECK(dr_safetensors_parse(buf, size - 3, "x", &st, &err) == DR_ERR_FORMAT &&
                 strstr(err.msg, "c: data_offsets [27, 35] run past the data area (32 bytes)"),
             "truncated data: %s", err.msg);
    DR_CHECK(dr_safetensors_parse(buf, size, "x", &st, &err) == DR_OK, "good: %s", err.msg);
    DR_CHECK(st.n_tensors == 3 && dr_safetensors_find(&st, "b") &&
                 !dr_safetensors_find(&st, "__metadata__"),
             "lookup");
    dr_safetensors_deinit(&st);
    /* An empty file list is valid (no tensors, no data). */
    free(buf);
    buf = make_st("{}", NULL, 0, &size);
    DR_CHECK(dr_safetensors_parse(buf, size, "x", &st, &err) == DR_OK && st.n_tensors == 0,
             "empty: %s", err.msg);
    dr_safetensors_deinit(&st);
    free(buf);
}

static void case_truncated_file(void)
{
    /* The file on disk is cut short and the manifest's checksum is that of the cut file. */
    size_t size;
    uint8_t *buf = make_st(k_good_header, g_data, sizeof g_data, &size);
    char header[4096];
    memcpy(header, buf + 8, size - 8 - sizeof g_data);
    header[size - 8 - sizeof g_data] = '\0';
    write_model(header, g_data, sizeof g_data - 5, "fp32", NULL, NULL);
    open_expect("model.safetensors: c: data_offsets [27, 35] run past the data area", __LINE__);
    free(buf);
}

static void case_checksum(void)
{
    write_model(k_good_header, g_data, sizeof g_data, "fp32", NULL,
                "0000000000000000000000000000000000000000000000000000000000000000");
    open_expect("model.safetensors: sha256 ", __LINE__);
    /* A flipped data byte after the manifest was written. */
    write_model(k_good_header, g_data, sizeof g_data, "fp32", NULL, NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, -1, SEEK_END);
    fputc(0x55, f);
    fclose(f);
    open_expect("the manifest says", __LINE__);
    /* The vocabulary is checked too. */
    write_model(k_good_header, g_data, sizeof g_data, "fp32", NULL, NULL);
    write_file("vocab.txt", "[UNK]\n", 6);
    open_expect("vocab.txt: sha256", __LINE__);
}

static void case_manifest(void)
{
    write_model(k_good_header, g_data, sizeof g_data, "int8", NULL, NULL);
    open_expect("int8.scheme", __LINE__);
    write_model(k_good_header, g_data, sizeof g_data, "int8",
                ", \"int8\": {\"scheme\": \"s8act-per-row/s7w-per-col/v1\", \"weight_qmax\": 127,"
                " \"scale_suffix\": \"_scale\"}",
                NULL);
    open_expect("int8.weight_qmax must be in [1, 63]", __LINE__);
    write_model(k_good_header, g_data, sizeof g_data, "int8",
                ", \"int8\": {\"scheme\": \"s8act-per-row/s7w-per-col/v1\", \"weight_qmax\": 63,"
                " \"scale_suffix\": \"_scale\"}",
                NULL);
    struct dr_model_file *mf = open_expect(NULL, __LINE__);
    DR_CHECK(mf && dr_model_file_is_int8(mf), "int8 manifest");
    dr_model_file_destroy(mf);
    write_model(k_good_header, g_data, sizeof g_data, "bf16", NULL, NULL);
    open_expect("weights.dtype", __LINE__);
    write_file("manifest.json", "{\"format\": \"driftrec-model\", \"format_version\": 2}", 49);
    open_expect("format_version must be 1", __LINE__);
    write_file("manifest.json", "{\"format\": \"x\"", 14);
    open_expect("not a JSON object", __LINE__);
    write_file("manifest.json",
               "{\"format\": \"driftrec-model\", \"format_version\": 1, \"name\": \"t\","
               " \"version\": \"1\", \"architecture\": \"a\", \"config\": {},"
               " \"weights\": {\"file\": \"../model.safetensors\", \"sha256\": \"00\","
               " \"dtype\": \"fp32\"}}",
               191);
    open_expect("weights.file must be a file name", __LINE__);
    unlink("nonexistent");
    struct dr_model_file *none = NULL;
    struct dr_error err = {0};
    DR_CHECK(dr_model_file_open("/nonexistent/model", &none, &err) == DR_ERR_IO && !none,
             "missing directory: %s", err.msg);
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/dr_model_file_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    fill_good_data();
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        {"good", case_good},
        {"safetensors_corrupt", case_safetensors_corrupt},
        {"raw_lengths", case_raw_lengths},
        {"truncated_file", case_truncated_file},
        {"checksum", case_checksum},
        {"manifest", case_manifest},
    };
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        cases[i].fn();
        ran++;
    }
    char path[600];
    const char *files[] = {"model.safetensors", "manifest.json", "vocab.txt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
        unlink(path);
    }
    rmdir(g_dir);
    if (!ran) {
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    if (dr_test_failures)
        return 1;
    printf("PASS\n");
    return 0;
}
