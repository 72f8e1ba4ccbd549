// The .mighty container: round trip, a negative corpus with one crafted file per header and tensor-table
// field, truncation at every byte and a flipped bit at every byte.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "../fuzz/artifact_one.h"
#include "../fuzz/replay.h"
#include "runtime/error.h"
#include "runtime/format/artifact.h"

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
  int8_t pruned[100] = {};  // 90% zeros: stored as a bitmap
  for (int i = 0; i < 100; i += 10) pruned[i] = static_cast<int8_t>(i - 50);
  w.add_tensor("pruned.weight", TensorType::kInt8, {10, 10}, pruned);
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
std::string craft(const json& metadata, const std::string& data, uint32_t version = 1) {
  const std::string meta = metadata.dump();
  const uint64_t data_offset = (64 + meta.size() + 63) / 64 * 64;
  std::string file(data_offset + data.size(), '\0');
  std::memcpy(file.data(), "MIGHTY\r\n", 8);
  put_u32(file, 8, version);
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
  REQUIRE(a.tensors().size() == 5);
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
  REQUIRE_THAT(with([](std::string& s) { put_u32(s, 8, 3); }),
               Catch::Contains("format_version at byte 8: expected 1 or 2, found 3"));
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

TEST_CASE("artifact: pruned tensors are stored as a bitmap of nonzeros and read back exactly") {
  ArtifactWriter w;
  std::vector<int8_t> q(1000, 0);
  std::vector<float> f(256, 0.0f);
  for (int i = 0; i < 1000; i += 7) q[i] = static_cast<int8_t>(i % 255 - 127);
  for (int i = 0; i < 256; i += 16) f[i] = 0.5f * static_cast<float>(i) - 3.0f;
  f[3] = -0.0f;  // a negative zero is a nonzero bit pattern and survives
  std::vector<int8_t> dense(1000, 1);
  w.add_tensor("q", TensorType::kInt8, {10, 100}, q.data());
  w.add_tensor("f", TensorType::kFloat32, {256}, f.data());
  w.add_tensor("dense", TensorType::kInt8, {1000}, dense.data());
  const std::string bytes = w.serialize();
  REQUIRE(bytes[8] == 2);  // format 2: some tensor is encoded
  const Artifact a = Artifact::from_bytes(bytes, "sparse");
  const auto& tq = a.tensor("q");
  REQUIRE(tq.encoding == "bitmap");
  REQUIRE(tq.bytes == 1000);
  REQUIRE(tq.stored_bytes == 125 + 142);  // bitmap + the nonzeros (143 multiples of 7, one of them maps to 0)
  REQUIRE(std::memcmp(tq.data, q.data(), 1000) == 0);
  REQUIRE(reinterpret_cast<uintptr_t>(tq.data) % 64 == 0);
  const auto& tf = a.tensor("f");
  REQUIRE(tf.encoding == "bitmap");
  REQUIRE(std::memcmp(tf.data, f.data(), f.size() * 4) == 0);
  REQUIRE(std::signbit(tf.as<float>()[3]));
  REQUIRE(a.tensor("dense").encoding.empty());
  REQUIRE(a.tensor("dense").stored_bytes == 1000);
  // Without any encoded tensor the file stays format 1.
  REQUIRE(small_writer().serialize()[8] == 2);
  ArtifactWriter plain;
  plain.add_tensor("dense", TensorType::kInt8, {1000}, dense.data());
  REQUIRE(plain.serialize()[8] == 1);

  // Crafted encodings: every rule names the tensor.
  std::string map(2, '\0'), stored;
  map[0] = 0x05;  // elements 0 and 2 of 16
  stored = map + "\x07\x09";
  auto sparse = [&](const std::string& data, json extra, uint32_t version = 2) {
    json e = entry("s", "int8", {16}, 0, data.size(), hex(data));
    e.update(extra);
    return error_of(craft({{"tensors", json::array({e})}}, data, version));
  };
  REQUIRE_THAT(sparse(stored, {{"encoding", "bitmap"}}), Catch::Equals("no error"));
  REQUIRE_THAT(
      sparse(stored, {{"encoding", "bitmap"}}, 1),
      Catch::Contains("('s').encoding at byte 64: expected \"bitmap\" (format 2), found \"bitmap\" in a "
                      "format 1 file"));
  REQUIRE_THAT(sparse(stored, {{"encoding", "rle"}}), Catch::Contains("('s').encoding"));
  REQUIRE_THAT(
      sparse(stored + "\x01", {{"encoding", "bitmap"}}),
      Catch::Contains("('s').bytes at byte 192: the bitmap marks 2 nonzero elements (4 bytes with it), "
                      "found 5 bytes"));
  REQUIRE_THAT(sparse(std::string(1, '\0'), {{"encoding", "bitmap"}}),
               Catch::Contains("takes 2 to 18 bytes, found 1"));
  json odd = entry("s", "int8", {12}, 0, 3, hex(std::string("\x00\x10\x07", 3)));
  odd["encoding"] = "bitmap";
  REQUIRE_THAT(error_of(craft({{"tensors", json::array({odd})}}, std::string("\x00\x10\x07", 3), 2)),
               Catch::Contains("bitmap bits past element 12 are set"));
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

TEST_CASE("artifact: the fuzzer's corpus replays: each file read, loaded and run, or one error") {
  REQUIRE(fuzz::replay_corpus("artifact",
                              [](const std::string& bytes) { return fuzz::artifact_one(bytes); }) > 100);
}
