// Datasets as tensors, split deterministically from the recipe's seed, and the batches training draws from
// them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compress/recipe/recipe.h"

namespace mighty::compress {

// Classification data. Images: pixels stay uint8 [N, C, H, W] until a batch is formed. Documents: int64
// token ids [N, max_tokens], -1 after the end. Labels int64 [N].
struct ImageData {
  torch::Tensor train_x, train_y, val_x, val_y, test_x, test_y, calib_x, calib_y;
  std::vector<std::string> class_names;
  int64_t token_vocab = 0;  // documents: the tokenizer's vocabulary size
  double mean = 0.0, std = 1.0;
  int64_t crop_padding = 0;  // training augmentation
  bool horizontal_flip = false;
};

struct TextData {
  torch::Tensor train, val, test;  // int64 ids, contiguous splits in that order
  std::vector<char32_t> vocab;
  int64_t context = 0;
};

struct Dataset {
  std::string kind;  // images | text | documents
  ImageData images;  // images and documents
  TextData text;
  std::string hash;  // xxHash64 over the source files' bytes

  bool classifies() const;                   // images and documents: one label per example
  std::vector<int64_t> input_shape() const;  // per example, no batch dimension
  int64_t classes() const;                   // classes, or vocabulary size for text
  int64_t train_size() const;                // images, or characters
};

Dataset load_dataset(const DataSpec& spec, uint64_t seed);

// Deterministic generator for a purpose and a step, independent of everything else in the process.
std::mt19937_64 make_rng(uint64_t seed, uint64_t stream, uint64_t step);
// Fisher-Yates permutation of [0, n) from `rng` (portable: no std distribution whose output varies by
// library).
std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng);

// uint8 images -> normalized float32 (int64 token ids pass through unchanged).
torch::Tensor normalize_images(const torch::Tensor& pixels, double mean, double std);

// Random crop (after zero padding) and horizontal flip, drawn from `rng`, on uint8 images.
torch::Tensor augment_images(const torch::Tensor& pixels, int64_t crop_padding, bool horizontal_flip,
                             std::mt19937_64& rng);
// How many numbers augment_images draws per image (so a part of a batch can skip to its first image).
int64_t augment_draws_per_image(int64_t crop_padding, bool horizontal_flip);

// `batch` windows of context+1 ids at random offsets: returns {inputs [B, T], targets [B, T]}.
std::pair<torch::Tensor, torch::Tensor> sample_text_windows(const torch::Tensor& ids, int64_t context,
                                                            int64_t batch, std::mt19937_64& rng);

}  // namespace mighty::compress
