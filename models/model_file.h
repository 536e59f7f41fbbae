/* model_file.h: driftrec model files: a JSON manifest + safetensors tensors.
 *
 * A model is a directory holding manifest.json, the tensors (model.safetensors) and, for
 * text encoders, vocab.txt.  The manifest, field by field:
 *
 *   format          "driftrec-model"                     (required)
 *   format_version  1                                    (required)
 *   name, version   strings                              (required)
 *   architecture    "bert-encoder" | "interest-lstm"     (required)
 *   config          object: the architecture's dimensions (bert.h, interest.h name them)
 *   weights         { "file": "model.safetensors", "sha256": 64 hex digits,
 *                     "dtype": "fp32" | "int8" }  -- dtype of every linear layer's weight
 *   int8            { "scheme": "s8act-per-row/s7w-per-col/v1", "weight_qmax": 63,
 *                     "scale_suffix": "_scale", "calibration": text }   (when dtype int8)
 *   vocab           { "file": "vocab.txt", "sha256": ..., "do_lower_case": bool }  (optional)
 *
 * With dtype int8, a linear layer's weight "X.weight" is I8 [out][in] in [-63, 63] and its
 * per-output-channel scales are "X.weight_scale", F32 [out]; everything else stays F32.
 *
 * safetensors (github.com/huggingface/safetensors) has no magic number:
 *   u64 little-endian N | N bytes of JSON header | data area
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the data area) and may hold "__metadata__" (string -> string).
 * As the reference parser requires, tensors sorted by offset must tile the data area
 * exactly: the first begins at 0, each begins where the previous ends, the last ends at the
 * end of the file, and each one's size is its element count times its dtype's size.
 *
 * The loader maps the file read-only, checks all of that plus the checksums, and hands out
 * tensors by name after checking dtype and shape ("bert.encoder.layer.3.output.dense.weight:
 * shape 256x1000, expected 256x1024").  A tensor whose address is not aligned as the
 * caller asks is copied to aligned memory owned by the model file; the file is never padded.
 * Load time only: a model file is used by one thread while the model is built.
 */
#ifndef DR_MODEL_FILE_H
#define DR_MODEL_FILE_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DR_MODEL_FORMAT           "driftrec-model"
#define DR_MODEL_FORMAT_VERSION   1
#define DR_MODEL_INT8_SCHEME      "s8act-per-row/s7w-per-col/v1"
#define DR_TENSOR_MAX_DIMS        8
#define DR_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u) /* the reference parser's limit */

enum dr_dtype {
    DR_DTYPE_BOOL = 0,
    DR_DTYPE_U8,
    DR_DTYPE_I8,
    DR_DTYPE_I16,
    DR_DTYPE_U16,
    DR_DTYPE_F16,
    DR_DTYPE_BF16,
    DR_DTYPE_I32,
    DR_DTYPE_U32,
    DR_DTYPE_F32,
    DR_DTYPE_I64,
    DR_DTYPE_U64,
    DR_DTYPE_F64,
    DR_DTYPE_COUNT
};

const char *dr_dtype_name(enum dr_dtype dtype); /* "F32", as safetensors spells it */
size_t dr_dtype_size(enum dr_dtype dtype);      /* bytes per element */

struct dr_tensor_info {
    char *name; /* owned by the parsed file */
    enum dr_dtype dtype;
    size_t ndim;
    size_t shape[DR_TENSOR_MAX_DIMS];
    size_t n_elements;
    size_t begin, end;   /* offsets in the data area */
    const uint8_t *data; /* begin's address; borrowed from the buffer, may be unaligned */
};

/* A parsed safetensors buffer.  The buffer is borrowed and must outlive the struct. */
struct dr_safetensors {
    size_t n_tensors;
    struct dr_tensor_info *tensors; /* owned; sorted by name */
    const uint8_t *data_area;       /* borrowed */
    size_t data_size;
};

/* Parses and validates a whole safetensors file held in buf (borrowed).  label names the
 * file in error messages.  On failure *out is untouched and err says the first problem. */
enum dr_status dr_safetensors_parse(const void *buf, size_t size, const char *label,
                                    struct dr_safetensors *out, struct dr_error *err);
void dr_safetensors_deinit(struct dr_safetensors *st); /* zeroed or deinited: no-op */
/* The tensor called name, or NULL. */
const struct dr_tensor_info *dr_safetensors_find(const struct dr_safetensors *st, const char *name);

/* ---- model files ---------------------------------------------------------------------- */

struct dr_model_file; /* opaque; defined in models/model_file.c only */

/* Opens path: a model directory or its manifest.json (borrowed).  Reads and checks the
 * manifest, the checksum of every file it names, and the safetensors structure.
 * *out: returns owned (free with dr_model_file_destroy). */
enum dr_status dr_model_file_open(const char *path, struct dr_model_file **out,
                                  struct dr_error *err);
void dr_model_file_destroy(struct dr_model_file *mf); /* NULL is a no-op */

/* Strings borrowed from mf. */
const char *dr_model_file_name(const struct dr_model_file *mf);
const char *dr_model_file_version(const struct dr_model_file *mf);
const char *dr_model_file_architecture(const struct dr_model_file *mf);
bool dr_model_file_is_int8(const struct dr_model_file *mf); /* weights.dtype == "int8" */
/* The vocabulary's path (resolved against the model directory) or NULL if none. */
const char *dr_model_file_vocab_path(const struct dr_model_file *mf);
bool dr_model_file_vocab_lower_case(const struct dr_model_file *mf);
const struct dr_safetensors *dr_model_file_tensors(const struct dr_model_file *mf);

/* config.<key>: a required integer in [min, max], a number, a string or a boolean.  Missing
 * or mistyped keys fail with DR_ERR_FORMAT naming the key; *out is set only on success.
 * The _or forms return def when the key is absent (and fail when it has the wrong type). */
enum dr_status dr_model_file_config_int(const struct dr_model_file *mf, const char *key,
                                        int64_t min, int64_t max, int64_t *out,
                                        struct dr_error *err);
enum dr_status dr_model_file_config_int_or(const struct dr_model_file *mf, const char *key,
                                           int64_t min, int64_t max, int64_t def, int64_t *out,
                                           struct dr_error *err);
enum dr_status dr_model_file_config_number(const struct dr_model_file *mf, const char *key,
                                           double *out, struct dr_error *err);
/* *out borrowed from mf. */
enum dr_status dr_model_file_config_string(const struct dr_model_file *mf, const char *key,
                                           const char **out, struct dr_error *err);
enum dr_status dr_model_file_config_bool_or(const struct dr_model_file *mf, const char *key,
                                            bool def, bool *out, struct dr_error *err);

/* The tensor called name, checked to have dtype and the ndim dimensions of shape, its data
 * aligned to at least max(alignment, dtype size) bytes (a copy owned by mf when the mapped
 * bytes are not).  *out (borrowed from mf, valid until it is destroyed) on success.
 * Missing tensor, wrong dtype or wrong shape: DR_ERR_FORMAT naming the tensor. */
enum dr_status dr_model_file_tensor(struct dr_model_file *mf, const char *name, enum dr_dtype dtype,
                                    size_t ndim, const size_t *shape, size_t alignment,
                                    const void **out, struct dr_error *err);

/* Lowercase hex SHA-256 of a file (65 bytes with the NUL) through OpenSSL's libcrypto. */
enum dr_status dr_sha256_file(const char *path, char hex[65], struct dr_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DR_MODEL_FILE_H */
