/* Classifies one input with a .mighty model through the C API.
 * Usage: classify MODEL.mighty INPUT
 *   image models: INPUT is raw uint8 pixels, the model's input size of them (e.g. 784 for 28x28);
 *   document classifiers (e.g. the spam filter): INPUT is a raw email or any text file.
 * Prints the predicted label's index, name and logit. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/mighty.h"

/* The whole file in memory (NULL on error); its size in *size. */
static char* read_all(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0, got;
  char* data = malloc(cap);
  while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char* bigger = realloc(data, cap *= 2);
      if (!bigger) free(data);
      data = bigger;
    }
  }
  fclose(f);
  *size = n;
  return data;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.mighty INPUT\n", argv[0]);
    return 2;
  }
  mighty_model* model = mighty_load(argv[1]);
  if (!model) {
    fprintf(stderr, "classify: %s\n", mighty_last_error());
    return 1;
  }
  const size_t classes = mighty_output_size(model, 0);
  float* logits = malloc(classes * sizeof(float));
  size_t size = 0;
  char* data = read_all(argv[2], &size);
  int status = 1;
  if (!data) {
    fprintf(stderr, "classify: %s: cannot read it\n", argv[2]);
  } else if (mighty_input_kind(model) == MIGHTY_INPUT_TEXT) {
    if (mighty_run_text(model, data, size, logits) != 0) {
      fprintf(stderr, "classify: %s\n", mighty_last_error());
    } else {
      status = 0;
    }
  } else {
    const size_t pixels = mighty_input_size(model);
    float* input = malloc(pixels * sizeof(float));
    if (size != pixels) {
      fprintf(stderr, "classify: %s: expected %zu bytes of pixels, found %zu\n", argv[2], pixels, size);
    } else if (mighty_preprocess_images(model, (const unsigned char*)data, 1, input) != 0 ||
               mighty_run(model, input, 1, logits) != 0) {
      fprintf(stderr, "classify: %s\n", mighty_last_error());
    } else {
      status = 0;
    }
    free(input);
  }
  if (status == 0) {
    size_t best = 0;
    for (size_t i = 1; i < classes; ++i)
      if (logits[i] > logits[best]) best = i;
    const char* label = mighty_label(model, best);
    printf("%zu %s %.4f\n", best, label ? label : "?", logits[best]);
  }
  free(data);
  free(logits);
  mighty_free(model);
  return status;
}
