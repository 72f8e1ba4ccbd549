// The .mighty container: round trip, a negative corpus with one crafted file per header and tensor-table
// field, truncation at every byte and a flipped bit at every byte.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "runtime/artifact.h"
#include "runtime/error.h"

using namespace mighty;
using nlohmann::json;

namespace {

ArtifactWriter small_writer() {
  ArtifactWriter w;
  w.set_metadata(
      {{"producer", "test"}, {"graph", {{"nodes", json::array()}, {"output", 0}}}, {"labels", {"a", "b"}}});
  const float f[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  const int8_t i8[5] = {-127, 0, 1, 127, -5};
  const uint8_t u8[3] = {0, 128, 255};
  const int32_t i32[2] = {-100000, 42};
  w.add_tensor("fc.weight", TensorType::kFloat32, {2, 3}, f);
  w.add_tensor("q.weight", TensorType::kInt8, {5}, i8);
  w.add_tensor("zp", TensorType::kUint8, {3}, u8);
  w.add_tensor("bias", TensorType::kInt32, {2}, i32);
  return w;
}

void put_u64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Rewrites the header checksum so a crafted change reaches the check it is meant for.
void reseal(std::string& file) {
  uint64_t meta_size = 0;
  for (int i = 7; i >= 0; --i) meta_size = (meta_size << 8) | static_cast<uint8_t>(file[24 + i]);
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  XXH64_update(st, file.data(), 48);
  XXH64_update(st, file.data() + 64, meta_size);
  put_u64(file, 48, XXH64_digest(st));
  XXH64_freeState(st);
}

// A file with the given metadata (tensor table included) and data region, built without the writer's rules.
std::string craft(const json& metadata, const std::string& data) {
  const std::string meta = metadata.dump();
  const uint64_t data_offset = (64 + meta.size() + 63) / 64 * 64;
  std::string file(data_offset + data.size(), '\0');
  std::memcpy(file.data(), "MIGHTY\r\n", 8);
  put_u32(file, 8, 1);
  put_u32(file, 12, 64);
  put_u64(file, 16, 64);
  put_u64(file, 24, meta.size());
  put_u64(file, 32, data_offset);
  put_u64(file, 40, data.size());
  std::memcpy(file.data() + 64, meta.data(), meta.size());
  std::memcpy(file.data() + data_offset, data.data(), data.size());
  reseal(file);
  return file;
}

std::string error_of(const std::string& bytes) {
  try {
    Artifact::from_bytes(bytes, "x.mighty");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::string hex(const std::string& bytes) {
  return fmt::format("{:016x}", XXH64(bytes.data(), bytes.size(), 0));
}

json entry(const std::string& name, const std::string& dtype, json shape, uint64_t offset, uint64_t bytes,
           const std::string& checksum) {
  return {{"name", name},     {"dtype", dtype}, {"shape", shape},
          {"offset", offset}, {"bytes", bytes}, {"checksum", checksum}};
}

}  // namespace

TEST_CASE("artifact: round trip of every dtype, from memory and from a file") {
  const std::string bytes = small_writer().serialize();
  const Artifact a = Artifact::from_bytes(bytes, "mem");
  REQUIRE(a.tensors().size() == 4);
  REQUIRE(a.metadata()["labels"] == json({"a", "b"}));
  const auto& f = a.tensor("fc.weight");
  REQUIRE(f.type == TensorType::kFloat32);
  REQUIRE(f.shape == std::vector<int64_t>{2, 3});
  REQUIRE(f.as<float>()[2] == 3.25f);
  REQUIRE(a.tensor("q.weight").as<int8_t>()[0] == -127);
  REQUIRE(a.tensor("zp").as<uint8_t>()[2] == 255);
  REQUIRE(a.tensor("bias").as<int32_t>()[0] == -100000);
  for (const auto& t : a.tensors()) REQUIRE(reinterpret_cast<uintptr_t>(t.data) % 64 == 0);
  REQUIRE_THROWS_WITH(a.tensor("nope"), Catch::Contains("no tensor named 'nope'"));

  const auto path =
      (std::filesystem::temp_directory_path() / ("mighty_art_" + std::to_string(::getpid()))).string();
  small_writer().write(path);
  Artifact b = Artifact::open(path);
  REQUIRE(b.file_size() == bytes.size());
  REQUIRE(b.tensor("bias").as<int32_t>()[1] == 42);
  Artifact moved = std::move(b);
  REQUIRE(moved.tensor("zp").as<uint8_t>()[1] == 128);
  std::filesystem::remove(path);
  REQUIRE_THROWS_WITH(Artifact::open(path), Catch::Contains("cannot open"));

  ArtifactWriter empty;
  const Artifact e = Artifact::from_bytes(empty.serialize(), "empty");
  REQUIRE(e.tensors().empty());
}

TEST_CASE("artifact: every header field is checked") {
  const std::string good = small_writer().serialize();
  auto with = [&](auto change) {
    std::string s = good;
    change(s);
    return error_of(s);
  };
  REQUIRE_THAT(error_of(good.substr(0, 10)),
               Catch::Contains("x.mighty: header at byte 0: expected at least 64 bytes"));
  REQUIRE_THAT(with([](std::string& s) { s[0] = 'N'; }), Catch::Contains("magic at byte 0"));
  REQUIRE_THAT(with([](std::string& s) { put_u32(s, 8, 2); }),
               Catch::Contains("format_version at byte 8: expected 1, found 2"));
  REQUIRE_THAT(with([](std::string& s) { put_u32(s, 12, 32); }),
               Catch::Contains("header_size at byte 12: expected 64, found 32"));
  REQUIRE_THAT(with([](std::string& s) { put_u64(s, 16, 128); }),
               Catch::Contains("metadata_offset at byte 16"));
  REQUIRE_THAT(with([](std::string& s) { put_u64(s, 24, uint64_t{1} << 62); }),
               Catch::Contains("metadata_size at byte 24"));
  REQUIRE_THAT(with([](std::string& s) { put_u64(s, 32, 65); }), Catch::Contains("data_offset at byte 32"));
  REQUIRE_THAT(with([](std::string& s) { put_u64(s, 32, uint64_t{1} << 40); }),
               Catch::Contains("data_offset at byte 32"));
  REQUIRE_THAT(with([](std::string& s) { put_u64(s, 40, 1); }), Catch::Contains("data_size at byte 40"));
  REQUIRE_THAT(with([](std::string& s) { s[56] = 1; }),
               Catch::Contains("reserved at byte 56: expected 0, found 1"));
  REQUIRE_THAT(with([](std::string& s) { s[48] ^= 1; }), Catch::Contains("checksum at byte 48"));
  REQUIRE_THAT(with([](std::string& s) { s[70] ^= 4; }),
               Catch::Contains("checksum at byte 48"));  // metadata byte
  // Padding between metadata and data must be zero (resealed, so only the padding rule can catch it).
  uint64_t meta_size = 0;
  for (int i = 7; i >= 0; --i) meta_size = (meta_size << 8) | static_cast<uint8_t>(good[24 + i]);
  if ((64 + meta_size) % 64 != 0) {
    REQUIRE_THAT(with([&](std::string& s) { s[64 + meta_size] = 7; }), Catch::Contains("padding at byte"));
  }
  REQUIRE_THAT(error_of(craft(json::array(), "")), Catch::Contains("metadata at byte 64: not a JSON object"));
  REQUIRE_THAT(error_of(craft({{"x", 1}}, "")),
               Catch::Contains("metadata.tensors at byte 64: expected an array"));
}

TEST_CASE("artifact: every tensor-table field is checked") {
  const std::string d16(16, '\x05');
  const std::string h = hex(d16);
  auto table = [](json entries) { return json{{"tensors", entries}}; };
  REQUIRE_THAT(error_of(craft(table(json::array({entry("a", "int8", {16}, 0, 16, h)})), d16)),
               Catch::Equals("no error"));
  REQUIRE_THAT(error_of(craft(table(json::array({json{{"dtype", "int8"}}})), d16)),
               Catch::Contains("tensors[0].name at byte 64"));
  REQUIRE_THAT(error_of(craft(table(json::array({json(3)})), d16)), Catch::Contains("tensors[0].entry"));
  REQUIRE_THAT(
      error_of(craft(table(json::array({entry("a", "int4", {16}, 0, 16, h)})), d16)),
      Catch::Contains(
          "tensors[0] ('a').dtype at byte 64: expected float32, int8, uint8 or int32, found 'int4'"));
  REQUIRE_THAT(error_of(craft(table(json::array({entry("a", "int8", {-16}, 0, 16, h)})), d16)),
               Catch::Contains("('a').shape"));
  REQUIRE_THAT(error_of(craft(table(json::array({entry("a", "int8", {uint64_t{1} << 41}, 0, 16, h)})), d16)),
               Catch::Contains("('a').shape"));
  REQUIRE_THAT(
      error_of(craft(table(json::array({entry("a", "int8", {1 << 20, 1 << 20, 1 << 20, 1 << 20}, 0, 16, h)})),
                     d16)),
      Catch::Contains("element count overflows"));
  REQUIRE_THAT(error_of(craft(table(json::array({entry("a", "float32", {16}, 0, 16, h)})), d16)),
               Catch::Contains("('a').bytes at byte 64: shape x float32 needs 64 bytes, found 16"));
  REQUIRE_THAT(
      error_of(craft(table(json::array({entry("a", "int8", {16}, 8, 16, h)})), std::string(8, '\0') + d16)),
      Catch::Contains("('a').offset at byte 64: expected a multiple of 64, found 8"));
  REQUIRE_THAT(error_of(craft(table(json::array({entry("a", "int8", {16}, 64, 16, h)})), d16)),
               Catch::Contains("('a').offset at byte 64: [64, +16) reaches past the 16 data bytes"));
  REQUIRE_THAT(
      error_of(
          craft(table(json::array({entry("a", "int8", {16}, 0, 16, h), entry("a", "int8", {16}, 64, 16, h)})),
                d16 + std::string(48, '\0') + d16)),
      Catch::Contains("tensors[1] ('a').name at byte 64: duplicated"));
  REQUIRE_THAT(
      error_of(craft(
          table(json::array({entry("a", "int8", {16}, 0, 16, h), entry("b", "int8", {8}, 0, 8, h)})), d16)),
      Catch::Contains("tensors[1] ('b').offset at byte 64: expected at least 16 (sorted, non-overlapping)"));
  REQUIRE_THAT(
      error_of(craft(table(json::array({entry("a", "int8", {16}, 0, 16, "0000000000000000")})), d16)),
      Catch::Contains("tensors[0] ('a').checksum at byte"));
  REQUIRE_THAT(error_of(craft(table(json::array({entry("a", "int8", {16}, 0, 16, h)})), d16 + "xyz")),
               Catch::Contains("3 bytes after the last tensor"));
  REQUIRE_THAT(
      error_of(
          craft(table(json::array({entry("a", "int8", {16}, 0, 16, h), entry("b", "int8", {16}, 64, 16, h)})),
                d16 + std::string(47, '\0') + "!" + d16)),
      Catch::Contains("padding at byte"));
}

TEST_CASE("artifact: truncation at every byte is a clean error") {
  const std::string good = small_writer().serialize();
  for (size_t n = 0; n < good.size(); ++n) {
    INFO("truncated to " << n << " of " << good.size() << " bytes");
    REQUIRE_THROWS_AS(Artifact::from_bytes(good.substr(0, n), "t"), Error);
  }
}

TEST_CASE("artifact: a flipped bit anywhere is detected") {
  const std::string good = small_writer().serialize();
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string s = good;
      s[i] = static_cast<char>(s[i] ^ (1 << bit));
      INFO("byte " << i << " bit " << bit);
      REQUIRE_THROWS_AS(Artifact::from_bytes(s, "f"), Error);
    }
  }
}

TEST_CASE("artifact: the fuzzer's corpus replays without a crash") {
  const std::filesystem::path corpus =
      std::filesystem::path(MIGHTY_SOURCE_DIR) / "tests/fuzz/corpus/artifact";
  int files = 0, loaded = 0;
  if (std::filesystem::exists(corpus)) {
    for (const auto& e : std::filesystem::directory_iterator(corpus)) {
      std::ifstream in(e.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ++files;
      try {
        Artifact::from_bytes(bytes, e.path().filename().string());
        ++loaded;
      } catch (const Error&) {
      }
    }
  }
  INFO(files << " corpus files, " << loaded << " valid");
  REQUIRE(files > 0);
}
