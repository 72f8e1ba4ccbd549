#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <string>

#include "compress/data/data.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/idx.h"
#include "runtime/text/text_corpus.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string idx_images(uint32_t n, uint32_t h, uint32_t w) {
  std::string s = std::string("\0\0\x08\x03", 4) + be32(n) + be32(h) + be32(w);
  for (uint32_t i = 0; i < n * h * w; ++i) s += static_cast<char>(i % 251);
  return s;
}

std::string idx_labels(uint32_t n, uint32_t classes) {
  std::string s = std::string("\0\0\x08\x01", 4) + be32(n);
  for (uint32_t i = 0; i < n; ++i) s += static_cast<char>(i % classes);
  return s;
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, raw.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("mighty_data_" + std::to_string(::getpid()) + "_" + std::to_string(rand()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = (path / name).string();
    write_file_atomic(p, bytes);
    return p;
  }
};

}  // namespace

TEST_CASE("IDX: good files: plain and gzipped") {
  const auto a = parse_idx(idx_images(3, 4, 5), "mem");
  REQUIRE(a.dims == std::vector<int64_t>{3, 4, 5});
  REQUIRE(a.data.size() == 60);
  TempDir dir;
  const auto path = dir.write("x.gz", gzip(idx_images(3, 4, 5)));
  const auto b = read_idx(path);
  REQUIRE(b.dims == a.dims);
  REQUIRE(b.data == a.data);
}

TEST_CASE("IDX: every broken header field is a clear error") {
  const std::string good = idx_images(2, 3, 3);
  std::string bad_magic = good;
  bad_magic[0] = 1;
  REQUIRE_THROWS_WITH(parse_idx(bad_magic, "f"), Catch::Contains("f: IDX magic at offset 0"));
  std::string bad_type = good;
  bad_type[2] = 0x0d;
  REQUIRE_THROWS_WITH(parse_idx(bad_type, "f"),
                      Catch::Contains("element type at offset 2") && Catch::Contains("0x0d"));
  std::string bad_rank = good;
  bad_rank[3] = 9;
  REQUIRE_THROWS_WITH(parse_idx(bad_rank, "f"), Catch::Contains("rank at offset 3"));
  REQUIRE_THROWS_WITH(parse_idx(good.substr(0, 10), "f"), Catch::Contains("header"));
  REQUIRE_THROWS_WITH(parse_idx(good.substr(0, good.size() - 1), "f"),
                      Catch::Contains("need 18 bytes after the 16-byte header, found 17"));
  REQUIRE_THROWS_WITH(parse_idx(good + "x", "f"), Catch::Contains("found 19"));
  std::string zero_dim = std::string("\0\0\x08\x01", 4) + be32(0);
  REQUIRE_THROWS_WITH(parse_idx(zero_dim, "f"), Catch::Contains("dimension 0 at offset 4 is 0"));
}

TEST_CASE("IDX: truncated or corrupt gzip is a clear error") {
  const std::string gz = gzip(idx_images(20, 8, 8));
  REQUIRE_THROWS_WITH(gunzip(gz.substr(0, gz.size() / 2), "f.gz"),
                      Catch::Contains("f.gz") && Catch::Contains("truncated"));
  std::string corrupt = gz;
  for (size_t i = 12; i < 40; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  REQUIRE_THROWS_WITH(gunzip(corrupt, "f.gz"), Catch::Contains("f.gz"));
  REQUIRE_THROWS_WITH(gunzip(gz + "junk", "f.gz"), Catch::Contains("unexpected bytes after"));
}

TEST_CASE("image dataset: counts must agree and splits are deterministic") {
  TempDir dir;
  ImageDataSpec spec;
  spec.train_images = dir.write("tri", idx_images(50, 6, 6));
  spec.train_labels = dir.write("trl", idx_labels(50, 4));
  spec.test_images = dir.write("tei", idx_images(10, 6, 6));
  spec.test_labels = dir.write("tel", idx_labels(10, 4));
  spec.validation_size = 8;
  spec.calibration_size = 5;
  DataSpec d{"images", spec, {}, {}};
  const Dataset a = load_dataset(d, 7);
  REQUIRE(a.images.train_x.sizes() == torch::IntArrayRef{42, 1, 6, 6});
  REQUIRE(a.images.val_x.size(0) == 8);
  REQUIRE(a.images.calib_x.size(0) == 5);
  REQUIRE(a.classes() == 4);
  REQUIRE(a.input_shape() == std::vector<int64_t>{1, 6, 6});
  const Dataset b = load_dataset(d, 7);
  REQUIRE(torch::equal(a.images.train_x, b.images.train_x));
  REQUIRE(torch::equal(a.images.val_y, b.images.val_y));
  const Dataset c = load_dataset(d, 8);
  REQUIRE_FALSE(torch::equal(a.images.train_y, c.images.train_y));
  REQUIRE(a.hash == b.hash);

  d.images.train_labels = dir.write("trl_short", idx_labels(49, 4));
  REQUIRE_THROWS_WITH(load_dataset(d, 7), Catch::Contains("49 labels for 50 images"));
  d.images.train_labels = spec.train_labels;
  d.images.validation_size = 50;
  REQUIRE_THROWS_WITH(load_dataset(d, 7), Catch::Contains("validation_size"));
  d.images.validation_size = 8;
  d.images.test_images = dir.write("tei_bad", idx_images(10, 7, 6));
  REQUIRE_THROWS_WITH(load_dataset(d, 7), Catch::Contains("image shape differs"));
  d.images.test_images = (dir.path / "absent").string();
  REQUIRE_THROWS_WITH(load_dataset(d, 7), Catch::Contains("absent"));
}

TEST_CASE("text corpus: vocabulary and ids and strict UTF-8") {
  const auto c = parse_text_corpus("abca\xc3\xa9", "t");
  REQUIRE(c.vocab == std::vector<char32_t>{U'a', U'b', U'c', U'\u00e9'});
  REQUIRE(c.ids == std::vector<int32_t>{0, 1, 2, 0, 3});
  REQUIRE(encode_utf8(U'\u00e9') == "\xc3\xa9");
  REQUIRE_THROWS_WITH(parse_text_corpus("ab\xff", "t"), Catch::Contains("byte offset 2"));
  REQUIRE_THROWS_WITH(parse_text_corpus("ab\xc3", "t"),
                      Catch::Contains("truncated UTF-8 sequence at byte offset 2"));
  REQUIRE_THROWS_WITH(parse_text_corpus("\xc0\x80", "t"), Catch::Contains("invalid UTF-8 code point"));
  REQUIRE_THROWS_WITH(parse_text_corpus("", "t"), Catch::Contains("empty"));
}

TEST_CASE("text dataset: contiguous splits and windows") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 400; ++i) text += "in the beginning ";
  DataSpec d;
  d.kind = "text";
  d.text.path = dir.write("corpus.txt", text);
  d.text.context = 16;
  const Dataset ds = load_dataset(d, 1);
  const auto n = static_cast<int64_t>(text.size());
  REQUIRE(ds.text.train.size(0) + ds.text.val.size(0) + ds.text.test.size(0) == n);
  REQUIRE(ds.text.val.size(0) == static_cast<int64_t>(n * 0.05));
  REQUIRE(ds.classes() == 8);  // space b e g h i n t
  auto rng = make_rng(1, 9, 0);
  auto [x, y] = sample_text_windows(ds.text.train, 16, 4, rng);
  REQUIRE(x.sizes() == torch::IntArrayRef{4, 16});
  REQUIRE(torch::equal(x.slice(1, 1), y.slice(1, 0, 15)));  // targets are the inputs shifted by one
  d.text.context = 1000;
  REQUIRE_THROWS_WITH(load_dataset(d, 1), Catch::Contains("context + 1 = 1001"));
}

TEST_CASE("augmentation keeps shape and is reproducible") {
  auto pixels = torch::randint(0, 255, {6, 1, 8, 8}).to(torch::kUInt8);
  auto r1 = make_rng(3, 2, 10), r2 = make_rng(3, 2, 10);
  auto a = augment_images(pixels, 2, true, r1);
  auto b = augment_images(pixels, 2, true, r2);
  REQUIRE(a.sizes() == pixels.sizes());
  REQUIRE(torch::equal(a, b));
  REQUIRE_FALSE(torch::equal(a, pixels));
  auto r3 = make_rng(3, 2, 10);
  REQUIRE(torch::equal(augment_images(pixels, 0, false, r3), pixels));
}
