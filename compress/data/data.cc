#include "compress/data/data.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"
#include "runtime/io/idx.h"
#include "runtime/text/email_text.h"
#include "runtime/text/text_corpus.h"
#include "runtime/text/tokenizer.h"

namespace mighty::compress {
namespace {

torch::Tensor to_tensor(std::vector<uint8_t>&& bytes, std::vector<int64_t> shape) {
  auto t = torch::empty(shape, torch::kUInt8);
  std::copy(bytes.begin(), bytes.end(), t.data_ptr<uint8_t>());
  return t;
}

Dataset load_images(const ImageDataSpec& s, uint64_t seed) {
  Dataset d;
  d.kind = "images";
  std::string hashed;
  auto load_pair = [&](const std::string& images_path, const std::string& labels_path, torch::Tensor& x,
                       torch::Tensor& y) {
    IdxArray images = read_idx(expand_data_path(images_path));  // "$MIGHTY_DATA/...": the data cache
    IdxArray labels = read_idx(expand_data_path(labels_path));
    if (images.dims.size() != 3 && images.dims.size() != 4) {
      throw Error(fmt::format("{}: images must have rank 3 (N, H, W) or 4 (N, C, H, W), found rank {}",
                              images_path, images.dims.size()));
    }
    if (labels.dims.size() != 1) {
      throw Error(fmt::format("{}: labels must have rank 1, found rank {}", labels_path, labels.dims.size()));
    }
    if (images.dims[0] != labels.dims[0]) {
      throw Error(fmt::format("{}: {} labels for {} images in {}", labels_path, labels.dims[0],
                              images.dims[0], images_path));
    }
    std::vector<int64_t> shape = images.dims;
    if (shape.size() == 3) shape.insert(shape.begin() + 1, 1);
    hashed += hash64_hex(std::string(images.data.begin(), images.data.end()));
    hashed += hash64_hex(std::string(labels.data.begin(), labels.data.end()));
    x = to_tensor(std::move(images.data), shape);
    y = to_tensor(std::move(labels.data), {labels.dims[0]}).to(torch::kInt64);
  };
  torch::Tensor train_x, train_y;
  load_pair(s.train_images, s.train_labels, train_x, train_y);
  load_pair(s.test_images, s.test_labels, d.images.test_x, d.images.test_y);
  if (train_x.sizes().slice(1) != d.images.test_x.sizes().slice(1)) {
    throw Error(fmt::format("{}: image shape differs from {}", s.test_images, s.train_images));
  }
  const int64_t classes = std::max(train_y.max().item<int64_t>(), d.images.test_y.max().item<int64_t>()) + 1;
  if (!s.class_names.empty()) {
    if (static_cast<int64_t>(s.class_names.size()) < classes) {
      throw Error(fmt::format("data.class_names: {} names, but the labels go up to {}", s.class_names.size(),
                              classes - 1));
    }
    d.images.class_names = s.class_names;
  } else {
    for (int64_t c = 0; c < classes; ++c) d.images.class_names.push_back(std::to_string(c));
  }
  const int64_t n = train_x.size(0);
  if (s.validation_size >= n) {
    throw Error(
        fmt::format("data.validation_size: {} leaves no training images out of {}", s.validation_size, n));
  }
  auto rng = make_rng(seed, /*stream=*/1, 0);
  const auto order = torch::tensor(permutation(n, rng), torch::kInt64);
  const auto val_idx = order.slice(0, 0, s.validation_size);
  auto train_idx = order.slice(0, s.validation_size);
  if (s.train_limit > 0)
    train_idx = train_idx.slice(0, 0, std::min<int64_t>(s.train_limit, train_idx.size(0)));
  d.images.train_x = train_x.index_select(0, train_idx);
  d.images.train_y = train_y.index_select(0, train_idx);
  d.images.val_x = train_x.index_select(0, val_idx);
  d.images.val_y = train_y.index_select(0, val_idx);
  // Calibration draws from the training split (as PTQ tools do): the first images of its seeded order.
  const int64_t calib = std::min<int64_t>(s.calibration_size, d.images.train_x.size(0));
  d.images.calib_x = d.images.train_x.slice(0, 0, calib);
  d.images.calib_y = d.images.train_y.slice(0, 0, calib);
  if (s.test_limit > 0 && s.test_limit < d.images.test_x.size(0)) {
    d.images.test_x = d.images.test_x.slice(0, 0, s.test_limit);
    d.images.test_y = d.images.test_y.slice(0, 0, s.test_limit);
  }
  d.images.mean = s.mean;
  d.images.std = s.std;
  d.images.crop_padding = s.crop_padding;
  d.images.horizontal_flip = s.horizontal_flip;
  d.hash = hash64_hex(hashed);
  return d;
}

Dataset load_text(const TextDataSpec& s) {
  Dataset d;
  d.kind = "text";
  const std::string path = expand_data_path(s.path);
  const std::string bytes = read_file(path);
  TextCorpus corpus = parse_text_corpus(bytes, path);
  d.hash = hash64_hex(bytes);
  const auto n = static_cast<int64_t>(corpus.ids.size());
  const auto n_test = static_cast<int64_t>(n * s.test_fraction);
  const auto n_val = static_cast<int64_t>(n * s.validation_fraction);
  const int64_t n_train = n - n_val - n_test;
  const int64_t need = s.context + 1;
  if (n_train < need || n_val < need || n_test < need) {
    throw Error(
        fmt::format("{}: {} characters split into train {} / validation {} / test {}: each needs at least "
                    "context + 1 = {}",
                    path, n, n_train, n_val, n_test, need));
  }
  auto ids = torch::empty({n}, torch::kInt64);
  std::copy(corpus.ids.begin(), corpus.ids.end(), ids.data_ptr<int64_t>());
  d.text.train = ids.slice(0, 0, n_train);
  d.text.val = ids.slice(0, n_train, n_train + n_val);
  d.text.test = ids.slice(0, n_train + n_val);
  if (s.train_limit > 0) d.text.train = d.text.train.slice(0, 0, std::max(s.train_limit, need));
  if (s.eval_limit > 0) {
    d.text.val = d.text.val.slice(0, 0, std::max(s.eval_limit, need));
    d.text.test = d.text.test.slice(0, 0, std::max(s.eval_limit, need));
  }
  d.text.vocab = std::move(corpus.vocab);
  d.text.context = s.context;
  return d;
}

// Emails in folders; the class is the folder name's prefix. Each becomes email_text, then USE-Lite token ids
// (at most max_tokens, padded with -1).
Dataset load_documents(const DocumentDataSpec& s, uint64_t seed) {
  Dataset d;
  d.kind = "documents";
  const std::string corpus = expand_data_path(s.corpus), vocab_path = expand_data_path(s.vocab);
  if (!std::filesystem::is_directory(corpus)) {
    throw Error(
        fmt::format("{}: no such corpus directory (scripts/setup installs the SpamAssassin corpus)", corpus));
  }
  const std::string vocab_bytes = read_file(vocab_path);
  const auto vocab_json = nlohmann::json::parse(vocab_bytes, nullptr, false);
  if (vocab_json.is_discarded()) throw Error(fmt::format("{}: not JSON", vocab_path));
  const UnigramTokenizer tokenizer = UnigramTokenizer::from_json(vocab_json, vocab_path);
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(corpus)) {
    if (e.is_regular_file() && e.path().extension() == ".json" && e.path().filename() != "file_list.json") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  const auto n = static_cast<int64_t>(files.size());
  if (n < s.test_size + s.validation_size + 1) {
    throw Error(fmt::format("{}: {} documents, fewer than test {} + validation {} + 1", corpus, n,
                            s.test_size, s.validation_size));
  }
  auto ids = torch::full({n, s.max_tokens}, -1, torch::kInt64);
  auto labels = torch::empty({n}, torch::kInt64);
  std::string hashed = vocab_bytes;
  std::vector<int64_t> per_class(s.class_names.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const std::string path = files[static_cast<size_t>(i)].string();
    const std::string folder = files[static_cast<size_t>(i)].parent_path().filename().string();
    int64_t label = -1;
    for (size_t c = 0; c < s.class_names.size(); ++c) {
      if (folder.find(s.class_names[c]) == std::string::npos) continue;
      if (label >= 0) {
        throw Error(fmt::format("{}: folder '{}' names two classes ('{}' and '{}')", path, folder,
                                s.class_names[static_cast<size_t>(label)], s.class_names[c]));
      }
      label = static_cast<int64_t>(c);
    }
    if (label < 0) {
      throw Error(
          fmt::format("{}: folder '{}' names no class ({})", path, folder, fmt::join(s.class_names, ", ")));
    }
    const auto doc = nlohmann::json::parse(read_file(path), nullptr, false);
    if (!doc.is_object() || !doc.contains("text") || !doc["text"].is_string()) {
      throw Error(fmt::format("{}: expected a JSON object with a string \"text\"", path));
    }
    const std::string& raw = doc["text"].get_ref<const std::string&>();
    hashed += folder;
    hashed += raw;
    const auto tokens = tokenizer.encode(email_text(raw, static_cast<size_t>(s.max_bytes)));
    const int64_t kept = std::min<int64_t>(s.max_tokens, static_cast<int64_t>(tokens.size()));
    auto row = ids[i];
    for (int64_t t = 0; t < kept; ++t) row[t] = tokens[static_cast<size_t>(t)];
    labels[i] = label;
    ++per_class[static_cast<size_t>(label)];
  }
  for (size_t c = 0; c < per_class.size(); ++c) {
    if (per_class[c] == 0)
      throw Error(fmt::format("{}: no documents of class '{}'", corpus, s.class_names[c]));
  }
  auto rng = make_rng(seed, /*stream=*/1, 0);
  const auto order = torch::tensor(permutation(n, rng), torch::kInt64);
  const auto test_idx = order.slice(0, 0, s.test_size);
  const auto val_idx = order.slice(0, s.test_size, s.test_size + s.validation_size);
  auto train_idx = order.slice(0, s.test_size + s.validation_size);
  if (s.train_limit > 0)
    train_idx = train_idx.slice(0, 0, std::min<int64_t>(s.train_limit, train_idx.size(0)));
  ImageData& x = d.images;  // classification data: x holds token ids [N, max_tokens]
  x.train_x = ids.index_select(0, train_idx);
  x.train_y = labels.index_select(0, train_idx);
  x.val_x = ids.index_select(0, val_idx);
  x.val_y = labels.index_select(0, val_idx);
  x.test_x = ids.index_select(0, test_idx);
  x.test_y = labels.index_select(0, test_idx);
  const int64_t calib = std::min<int64_t>(s.calibration_size, x.train_x.size(0));
  x.calib_x = x.train_x.slice(0, 0, calib);
  x.calib_y = x.train_y.slice(0, 0, calib);
  x.class_names = s.class_names;
  x.token_vocab = static_cast<int64_t>(tokenizer.size());
  d.hash = hash64_hex(hashed);
  return d;
}

}  // namespace

bool Dataset::classifies() const { return kind != "text"; }

std::vector<int64_t> Dataset::input_shape() const {
  if (kind == "documents") return {images.train_x.size(1)};
  if (kind == "images") {
    auto s = images.train_x.sizes().slice(1);
    return {s.begin(), s.end()};
  }
  return {text.context};
}

int64_t Dataset::classes() const {
  return classifies() ? static_cast<int64_t>(images.class_names.size())
                      : static_cast<int64_t>(text.vocab.size());
}

int64_t Dataset::train_size() const { return classifies() ? images.train_x.size(0) : text.train.size(0); }

Dataset load_dataset(const DataSpec& spec, uint64_t seed) {
  if (spec.kind == "documents") return load_documents(spec.documents, seed);
  return spec.kind == "images" ? load_images(spec.images, seed) : load_text(spec.text);
}

std::mt19937_64 make_rng(uint64_t seed, uint64_t stream, uint64_t step) {
  // SplitMix64-style mixing so nearby (seed, stream, step) triples give unrelated generators.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return std::mt19937_64(mix(mix(mix(seed) ^ stream) ^ step));
}

std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

torch::Tensor normalize_images(const torch::Tensor& pixels, double mean, double std) {
  if (pixels.scalar_type() == torch::kInt64)
    return pixels;  // documents: token ids go to the model as they are
  return (pixels.to(torch::kFloat32).div_(255.0).sub_(mean)).div_(std);
}

torch::Tensor augment_images(const torch::Tensor& pixels, int64_t crop_padding, bool horizontal_flip,
                             std::mt19937_64& rng) {
  if (crop_padding == 0 && !horizontal_flip) return pixels;
  const int64_t n = pixels.size(0), h = pixels.size(2), w = pixels.size(3);
  const int64_t p = crop_padding;
  auto padded = p > 0 ? torch::constant_pad_nd(pixels, {p, p, p, p}, 0) : pixels;
  auto out = torch::empty_like(pixels);
  for (int64_t i = 0; i < n; ++i) {
    const auto dy = p > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * p + 1)) : 0;
    const auto dx = p > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * p + 1)) : 0;
    auto img = padded[i].slice(1, dy, dy + h).slice(2, dx, dx + w);
    if (horizontal_flip && (rng() & 1)) img = img.flip({2});
    out[i].copy_(img);
  }
  return out;
}

int64_t augment_draws_per_image(int64_t crop_padding, bool horizontal_flip) {
  return (crop_padding > 0 ? 2 : 0) + (horizontal_flip ? 1 : 0);
}

std::pair<torch::Tensor, torch::Tensor> sample_text_windows(const torch::Tensor& ids, int64_t context,
                                                            int64_t batch, std::mt19937_64& rng) {
  const int64_t span = ids.size(0) - context - 1;
  auto x = torch::empty({batch, context}, torch::kInt64);
  auto y = torch::empty({batch, context}, torch::kInt64);
  for (int64_t b = 0; b < batch; ++b) {
    const auto start = span > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(span + 1)) : 0;
    x[b].copy_(ids.slice(0, start, start + context));
    y[b].copy_(ids.slice(0, start + 1, start + context + 1));
  }
  return {x, y};
}

}  // namespace mighty::compress
