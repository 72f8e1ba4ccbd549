/* Classifies one raw image with a .mighty model through the C API.
 * Usage: classify MODEL.mighty IMAGE.raw   (IMAGE.raw: the model's input size in uint8 pixels, e.g. 784 for
 * 28x28) Prints the predicted label and its logit. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/mighty.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.mighty IMAGE.raw\n", argv[0]);
    return 2;
  }
  mighty_model* model = mighty_load(argv[1]);
  if (!model) {
    fprintf(stderr, "classify: %s\n", mighty_last_error());
    return 1;
  }
  const size_t pixels = mighty_input_size(model), classes = mighty_output_size(model, 0);
  unsigned char* image = malloc(pixels);
  float* input = malloc(pixels * sizeof(float));
  float* logits = malloc(classes * sizeof(float));
  FILE* f = fopen(argv[2], "rb");
  int status = 1;
  if (!f || fread(image, 1, pixels, f) != pixels) {
    fprintf(stderr, "classify: %s: expected %zu bytes of pixels\n", argv[2], pixels);
  } else if (mighty_preprocess_images(model, image, 1, input) != 0 ||
             mighty_run(model, input, 1, logits) != 0) {
    fprintf(stderr, "classify: %s\n", mighty_last_error());
  } else {
    size_t best = 0;
    for (size_t i = 1; i < classes; ++i)
      if (logits[i] > logits[best]) best = i;
    const char* label = mighty_label(model, best);
    printf("%zu %s %.4f\n", best, label ? label : "?", logits[best]);
    status = 0;
  }
  if (f) fclose(f);
  free(image);
  free(input);
  free(logits);
  mighty_free(model);
  return status;
}
