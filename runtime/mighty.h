/* mighty C API: load a .mighty artifact and run it, from C or any language with a C FFI.
 * Every function that can fail returns NULL or -1 and leaves a one-line message in mighty_last_error()
 * (per thread). A model is immutable after loading; one model may be run from several threads at once. */
#ifndef MIGHTY_H_
#define MIGHTY_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mighty_model mighty_model;

enum mighty_input_kind { MIGHTY_INPUT_IMAGES = 0, MIGHTY_INPUT_TOKENS = 1, MIGHTY_INPUT_TEXT = 2 };

/* Loads and verifies an artifact from a file, or from memory (the bytes are copied). NULL on error. */
mighty_model* mighty_load(const char* path);
mighty_model* mighty_load_memory(const void* data, size_t size);
void mighty_free(mighty_model* model);

/* The last error on this thread ("" if none). */
const char* mighty_last_error(void);

int mighty_input_kind(const mighty_model* model);
/* Floats per example (images), the context length (tokens) or the most tokens a document is read to (text).
 */
size_t mighty_input_size(const mighty_model* model);
/* Output floats per example: classes, or vocabulary x length for a language model run of `length` tokens. */
size_t mighty_output_size(const mighty_model* model, size_t length);
size_t mighty_label_count(const mighty_model* model);
const char* mighty_label(const mighty_model* model, size_t index); /* NULL when out of range */

/* uint8 pixels [count][input_size] -> the model's normalized float input. 0 on success, -1 on error. */
int mighty_preprocess_images(const mighty_model* model, const uint8_t* pixels, size_t count, float* out);
/* output: batch x mighty_output_size(model, 0) floats (logits). 0 on success, -1 on error. */
int mighty_run(const mighty_model* model, const float* input, size_t batch, float* output);
/* tokens: batch x length ids; output: batch x mighty_output_size(model, length) floats. */
int mighty_run_tokens(const mighty_model* model, const int64_t* tokens, size_t batch, size_t length,
                      float* output);
/* Document classifiers (MIGHTY_INPUT_TEXT): one raw text (an email, UTF-8 or Latin-1, `size` bytes) read as
 * the model was trained to read it (subject and body text, the model's own tokenizer); output:
 * mighty_output_size(model, 0) floats (logits). 0 on success, -1 on error. */
int mighty_run_text(const mighty_model* model, const char* text, size_t size, float* output);

#ifdef __cplusplus
}
#endif

#endif /* MIGHTY_H_ */
