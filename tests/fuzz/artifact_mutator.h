// A structure-aware mutation for the artifact fuzzer (libFuzzer's LLVMFuzzerCustomMutator): open the input as
// an artifact, change one thing in its metadata JSON (a number to an interesting value, a string to another
// string of the same file, a flag flipped, a key removed, an array element repeated or dropped, a value
// replaced by one of another type) or one element of a tensor (zero, NaN, an infinity, a huge or tiny value,
// the int8 extremes), and write it again with valid checksums. Byte flips mostly stop at the checksums; these
// reach the session's checks and the kernels that run what passes them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/format/artifact.h"

namespace mighty::fuzz {

inline void json_nodes(nlohmann::json& j, std::vector<nlohmann::json*>& out,
                       std::vector<std::string>& strings) {
  out.push_back(&j);
  if (j.is_string()) strings.push_back(j.get<std::string>());
  if (j.is_object() || j.is_array())
    for (auto& v : j) json_nodes(v, out, strings);
}

inline nlohmann::json interesting_json(std::minstd_rand& rng, const nlohmann::json& current,
                                       const std::vector<std::string>& strings) {
  switch (rng() % 16) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return -1;
    case 3:
      return 2;
    case 4:
      return 255;
    case 5:
      return int64_t{1} << 31;
    case 6:
      return std::numeric_limits<int64_t>::max();
    case 7:
      return 1e-30;
    case 8:
      return 1e30;
    case 9:
      return 0.5;
    case 10:
      return current.is_number() ? nlohmann::json(current.get<double>() * -1.0) : nlohmann::json(3);
    case 11:
      return current.is_number_integer()
                 ? nlohmann::json(static_cast<int64_t>(static_cast<uint64_t>(current.get<int64_t>()) + 1))
                 : nlohmann::json(7);
    case 12:
      return strings.empty() ? nlohmann::json("x") : nlohmann::json(strings[rng() % strings.size()]);
    case 13:
      return nullptr;
    case 14:
      return nlohmann::json::array();
    default:
      return !current.is_boolean() || !current.get<bool>();
  }
}

inline void mutate_tensor_element(std::minstd_rand& rng, const TensorView& t, std::vector<uint8_t>& bytes) {
  if (t.numel() == 0) return;
  const size_t size = tensor_type_size(t.type);
  const size_t at = (rng() % static_cast<size_t>(t.numel())) * size;
  if (t.type == TensorType::kFloat32) {
    const float values[] = {0.0f,
                            -0.0f,
                            1e-38f,
                            1e38f,
                            -1e38f,
                            1e-45f,
                            65504.0f,
                            std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
    std::memcpy(&bytes[at], &values[rng() % (sizeof(values) / sizeof(values[0]))], 4);
  } else if (t.type == TensorType::kInt32) {
    const int32_t values[] = {0, -1, std::numeric_limits<int32_t>::max(),
                              std::numeric_limits<int32_t>::min()};
    std::memcpy(&bytes[at], &values[rng() % 4], 4);
  } else {
    const uint8_t values[] = {0x00, 0x7f, 0x80, 0x81, 0xff};
    bytes[at] = values[rng() % 5];
  }
}

// Mutates `data` (an artifact of `size` bytes) in place; returns the new size, or 0 when the bytes are not a
// valid artifact or the result would not fit in `max_size` (the caller then mutates bytes).
inline size_t mutate_artifact(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed | 1u);
  nlohmann::json meta;
  std::vector<TensorView> views;
  std::vector<std::vector<uint8_t>> tensors;
  try {
    const Artifact a = Artifact::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "m");
    meta = a.metadata();
    views = a.tensors();
    for (const auto& t : views) {
      const auto* p = static_cast<const uint8_t*>(t.data);
      tensors.emplace_back(p, p + t.bytes);
    }
    meta.erase("tensors");
    meta.erase("format");
    if (!views.empty() && rng() % 4 == 0) {
      const size_t k = rng() % views.size();
      mutate_tensor_element(rng, views[k], tensors[k]);
    } else {
      std::vector<nlohmann::json*> nodes;
      std::vector<std::string> strings;
      json_nodes(meta, nodes, strings);
      nlohmann::json& node = *nodes[rng() % nodes.size()];
      const unsigned what = rng() % 6;
      if (what == 0 && node.is_object() && !node.empty()) {
        auto it = node.begin();
        std::advance(it, static_cast<long>(rng() % node.size()));
        node.erase(it.key());
      } else if (what == 1 && node.is_array() && !node.empty()) {
        if (rng() % 2 == 0) {
          node.erase(node.begin() + static_cast<long>(rng() % node.size()));
        } else {
          node.push_back(node[rng() % node.size()]);
        }
      } else if (&node != &meta) {
        node = interesting_json(rng, node, strings);
      }
    }
    ArtifactWriter w;
    w.set_metadata(meta);
    for (size_t k = 0; k < views.size(); ++k)
      w.add_tensor(views[k].name, views[k].type, views[k].shape, tensors[k].data());
    const std::string out = w.serialize();
    if (out.size() > max_size) return 0;
    std::memcpy(data, out.data(), out.size());
    return out.size();
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace mighty::fuzz
