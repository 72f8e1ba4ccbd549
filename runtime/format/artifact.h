// The .mighty artifact: one file holding a model's graph, tensors and provenance.
//
//   offset 0   header, 64 bytes, little-endian:
//                magic "MIGHTY\r\n" (8) | format_version u32 | header_size u32 (= 64) |
//                metadata_offset u64 (= 64) | metadata_size u64 | data_offset u64 | data_size u64 |
//                checksum u64 = xxHash64 over header bytes [0, 48) followed by the metadata | reserved u64 (=
//                0)
//   metadata   JSON: producer, graph, input spec, labels, quantization, verify results, and the tensor table
//              [{name, dtype, shape, offset, bytes, checksum, encoding?}] with offsets relative to
//              data_offset and bytes/checksum of the stored bytes
//   encoding   absent: the elements, row-major. "bitmap" (format 2): a bitmap of the nonzero elements (bit i
//              of byte i/8 = element i; padding bits 0), then the nonzero elements in order. The writer uses
//              it where it saves at least a tenth of the bytes (pruned weights); readers expand it on open.
//   data       tensors 64-byte aligned, sorted by offset, non-overlapping, ending exactly at the end of the
//   file
//
// Reading trusts nothing: every count, size and offset is checked against the bytes that exist, with
// overflow- checked arithmetic, before anything is allocated or read; every tensor's xxHash64 is verified. A
// failure is one mighty::Error line naming the file, the field, the byte offset, and what was expected and
// found.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mighty {

enum class TensorType { kFloat32, kInt8, kUint8, kInt32 };
const char* tensor_type_name(TensorType t);
size_t tensor_type_size(TensorType t);

struct TensorView {
  std::string name;
  TensorType type = TensorType::kFloat32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // the dense elements (expanded on open when stored encoded)
  uint64_t bytes = 0;          // of the dense elements
  uint64_t stored_bytes = 0;   // in the file
  std::string encoding;        // "" (dense) or "bitmap"

  int64_t numel() const;
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data);
  }
};

inline constexpr uint32_t kArtifactVersion = 1;         // written when no tensor is encoded
inline constexpr uint32_t kArtifactVersionEncoded = 2;  // written when some tensor is (readers take both)
inline constexpr size_t kArtifactHeaderSize = 64;
inline constexpr uint64_t kArtifactAlignment = 64;

class ArtifactWriter {
 public:
  // The metadata object (graph, input, labels, ...); "tensors" and "format" are filled by write().
  void set_metadata(nlohmann::json metadata) { metadata_ = std::move(metadata); }
  nlohmann::json& metadata() { return metadata_; }
  // Copies the tensor's bytes (stored as a bitmap of nonzeros and the nonzero elements where that saves at
  // least a tenth); names must be unique.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape, const void* data);
  // The complete file as bytes, and the atomic write of it (temporary file, flush, rename).
  std::string serialize() const;
  void write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::string bytes;     // as stored
    std::string encoding;  // "" or "bitmap"
  };
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<Pending> tensors_;
};

class Artifact {
 public:
  // Opens and verifies a file (memory-mapped; read() into memory where mmap is unavailable).
  static Artifact open(const std::string& path);
  // Verifies an in-memory image; `name` is used in messages. The bytes are copied.
  static Artifact from_bytes(std::string bytes, const std::string& name);

  Artifact(Artifact&&) noexcept;
  Artifact& operator=(Artifact&&) noexcept;
  ~Artifact();

  const nlohmann::json& metadata() const { return metadata_; }
  // The class labels (metadata "labels": checked to be strings on open); empty when the file has none.
  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView& tensor(const std::string& name) const;  // throws mighty::Error naming the missing tensor
  bool has_tensor(const std::string& name) const;
  uint64_t file_size() const { return size_; }
  const std::string& name() const { return name_; }

 private:
  Artifact() = default;
  struct Layout {
    uint32_t version;
    uint64_t data_offset, data_size;
  };
  void parse();
  Layout parse_header();  // the header and the metadata JSON
  void parse_tensor(const nlohmann::json& entry, size_t index, const Layout& layout, uint64_t& end,
                    std::set<std::string>& names);
  void check_provenance();
  // Checks a bitmap-encoded tensor (`type_info` is the dtype's entry) and expands it into expanded_.
  const uint8_t* expand_bitmap(const uint8_t* stored, uint64_t bytes, uint64_t numel, const void* type_info,
                               const std::string& label, uint64_t at);

  std::string name_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;  // munmap on destruction when set
  struct FreeBytes {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t[], FreeBytes> owned_;  // the bytes when not mapped (64-byte aligned)
  std::vector<std::unique_ptr<uint8_t[], FreeBytes>> expanded_;  // encoded tensors, expanded
  nlohmann::json metadata_;
  std::vector<std::string> labels_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace mighty
