#include "runtime/format/artifact.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/format/metadata.h"
#include "runtime/io/atomic_file.h"

namespace mighty {
namespace {

constexpr char kMagic[8] = {'M', 'I', 'G', 'H', 'T', 'Y', '\r', '\n'};
constexpr size_t kChecksumOffset = 48;
constexpr uint64_t kMaxDim = uint64_t{1} << 40;

struct TypeInfo {
  TensorType type;
  const char* name;
  size_t size;
};
constexpr TypeInfo kTypes[] = {{TensorType::kFloat32, "float32", 4},
                               {TensorType::kInt8, "int8", 1},
                               {TensorType::kUint8, "uint8", 1},
                               {TensorType::kInt32, "int32", 4}};

uint8_t* allocate_aligned(uint64_t size) {
  void* p = std::aligned_alloc(kArtifactAlignment,
                               (size + kArtifactAlignment) / kArtifactAlignment * kArtifactAlignment);
  if (!p) throw Error(fmt::format("cannot allocate {} bytes", size));
  return static_cast<uint8_t*>(p);
}

uint64_t align_up(uint64_t v) {
  return (v + kArtifactAlignment - 1) / kArtifactAlignment * kArtifactAlignment;
}

void put_u32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t header_checksum(const uint8_t* header, const uint8_t* metadata, size_t metadata_size) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  XXH64_update(state, header, kChecksumOffset);
  XXH64_update(state, metadata, metadata_size);
  const uint64_t h = XXH64_digest(state);
  XXH64_freeState(state);
  return h;
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

bool all_zero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

// The bitmap encoding of `dense` (elements of `size` bytes; an element is zero when all its bytes are), or ""
// when it would not save at least a tenth of the bytes.
std::string bitmap_encode(const std::string& dense, size_t size) {
  const size_t n = size == 0 ? 0 : dense.size() / size;
  size_t nonzero = 0;
  for (size_t i = 0; i < n; ++i) nonzero += all_zero(dense.data() + i * size, size) ? 0 : 1;
  const size_t encoded = (n + 7) / 8 + nonzero * size;
  if (n < 64 || encoded * 10 > dense.size() * 9) return {};
  std::string out((n + 7) / 8, '\0');
  out.reserve(encoded);
  for (size_t i = 0; i < n; ++i) {
    const char* e = dense.data() + i * size;
    if (all_zero(e, size)) continue;
    out[i / 8] = static_cast<char>(static_cast<uint8_t>(out[i / 8]) | (1u << (i % 8)));
    out.append(e, size);
  }
  return out;
}

}  // namespace

const char* tensor_type_name(TensorType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i.name;
  return "?";
}

size_t tensor_type_size(TensorType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i.size;
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

void ArtifactWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape,
                                const void* data) {
  for (const auto& t : tensors_) {
    if (t.name == name) throw Error(fmt::format("artifact writer: tensor '{}' added twice", name));
  }
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) throw Error(fmt::format("artifact writer: tensor '{}' has a negative dimension", name));
    numel *= d;
  }
  const size_t bytes = static_cast<size_t>(numel) * tensor_type_size(type);
  std::string dense(static_cast<const char*>(data), bytes);
  std::string encoded = bitmap_encode(dense, tensor_type_size(type));
  if (encoded.empty()) {
    tensors_.push_back({name, type, std::move(shape), std::move(dense), ""});
  } else {
    tensors_.push_back({name, type, std::move(shape), std::move(encoded), "bitmap"});
  }
}

std::string ArtifactWriter::serialize() const {
  nlohmann::json meta = metadata_;
  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0;
  bool encoded = false;
  for (const auto& t : tensors_) {
    offset = align_up(offset);
    table.push_back({{"name", t.name},
                     {"dtype", tensor_type_name(t.type)},
                     {"shape", t.shape},
                     {"offset", offset},
                     {"bytes", t.bytes.size()},
                     {"checksum", hex64(XXH64(t.bytes.data(), t.bytes.size(), 0))}});
    if (!t.encoding.empty()) {
      table.back()["encoding"] = t.encoding;
      encoded = true;
    }
    offset += t.bytes.size();
  }
  meta["tensors"] = table;
  const std::string json = meta.dump();
  const uint64_t data_offset = align_up(kArtifactHeaderSize + json.size());
  const uint64_t data_size = offset;

  std::string out(data_offset + data_size, '\0');
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  put_u32(out, 8, encoded ? kArtifactVersionEncoded : kArtifactVersion);
  put_u32(out, 12, kArtifactHeaderSize);
  put_u64(out, 16, kArtifactHeaderSize);
  put_u64(out, 24, json.size());
  put_u64(out, 32, data_offset);
  put_u64(out, 40, data_size);
  std::memcpy(out.data() + kArtifactHeaderSize, json.data(), json.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(out.data());
  put_u64(out, kChecksumOffset, header_checksum(bytes, bytes + kArtifactHeaderSize, json.size()));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const uint64_t at = data_offset + table[i]["offset"].get<uint64_t>();
    std::memcpy(out.data() + at, tensors_[i].bytes.data(), tensors_[i].bytes.size());
  }
  return out;
}

void ArtifactWriter::write(const std::string& path) const { write_file_atomic(path, serialize()); }

Artifact Artifact::open(const std::string& path) {
  Artifact a;
  a.name_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error(fmt::format("{}: cannot stat: {}", path, why));
  }
  a.size_ = static_cast<uint64_t>(st.st_size);
  void* m = a.size_ > 0 ? ::mmap(nullptr, a.size_, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  if (m != MAP_FAILED) {
    a.mapping_ = m;
    a.base_ = static_cast<const uint8_t*>(m);
  } else {
    // No mapping (empty file, or a file system without mmap): read it.
    a.owned_.reset(allocate_aligned(a.size_));
    uint64_t done = 0;
    while (done < a.size_) {
      const ssize_t n = ::read(fd, a.owned_.get() + done, a.size_ - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        throw Error(fmt::format("{}: read failed at byte {}", path, done));
      }
      done += static_cast<uint64_t>(n);
    }
    a.base_ = a.owned_.get();
  }
  ::close(fd);
  a.parse();
  return a;
}

Artifact Artifact::from_bytes(std::string bytes, const std::string& name) {
  Artifact a;
  a.name_ = name;
  a.size_ = bytes.size();
  a.owned_.reset(allocate_aligned(a.size_));
  std::memcpy(a.owned_.get(), bytes.data(), bytes.size());
  a.base_ = a.owned_.get();
  a.parse();
  return a;
}

Artifact::Artifact(Artifact&& o) noexcept { *this = std::move(o); }

Artifact& Artifact::operator=(Artifact&& o) noexcept {
  if (this != &o) {
    if (mapping_) ::munmap(mapping_, size_);
    name_ = std::move(o.name_);
    base_ = o.base_;
    size_ = o.size_;
    mapping_ = o.mapping_;
    owned_ = std::move(o.owned_);
    expanded_ = std::move(o.expanded_);
    metadata_ = std::move(o.metadata_);
    labels_ = std::move(o.labels_);
    tensors_ = std::move(o.tensors_);
    by_name_ = std::move(o.by_name_);
    o.mapping_ = nullptr;
    o.base_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Artifact::~Artifact() {
  if (mapping_) ::munmap(mapping_, size_);
}

void Artifact::FreeBytes::operator()(uint8_t* p) const { std::free(p); }

bool Artifact::has_tensor(const std::string& name) const { return by_name_.count(name) != 0; }

const TensorView& Artifact::tensor(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error(fmt::format("{}: no tensor named '{}'", name_, name));
  return tensors_[it->second];
}

const uint8_t* Artifact::expand_bitmap(const uint8_t* stored, uint64_t bytes, uint64_t numel,
                                       const void* type_info, const std::string& label, uint64_t at) {
  const auto& type = *static_cast<const TypeInfo*>(type_info);
  const uint64_t map_bytes = (numel + 7) / 8;
  uint64_t nonzero = 0;
  for (uint64_t i = 0; i < map_bytes; ++i) nonzero += static_cast<uint64_t>(__builtin_popcount(stored[i]));
  if (numel % 8 != 0 && (stored[map_bytes - 1] >> (numel % 8)) != 0) {
    throw Error(fmt::format("{}: {}.encoding at byte {}: bitmap bits past element {} are set", name_, label,
                            at + map_bytes - 1, numel));
  }
  if (bytes != map_bytes + nonzero * type.size) {
    throw Error(
        fmt::format("{}: {}.bytes at byte {}: the bitmap marks {} nonzero elements ({} bytes with it), "
                    "found {} bytes",
                    name_, label, at, nonzero, map_bytes + nonzero * type.size, bytes));
  }
  expanded_.emplace_back(allocate_aligned(numel * type.size));
  uint8_t* out = expanded_.back().get();
  std::memset(out, 0, numel * type.size);
  const uint8_t* value = stored + map_bytes;
  for (uint64_t i = 0; i < numel; ++i) {
    if (((stored[i / 8] >> (i % 8)) & 1u) == 0) continue;
    std::memcpy(out + i * type.size, value, type.size);
    value += type.size;
  }
  return out;
}

Artifact::Layout Artifact::parse_header() {
  auto fail = [&](const std::string& field, uint64_t at, const std::string& problem) {
    throw Error(fmt::format("{}: {} at byte {}: {}", name_, field, at, problem));
  };
  if (size_ < kArtifactHeaderSize) {
    fail("header", 0,
         fmt::format("expected at least {} bytes, found a {}-byte file", kArtifactHeaderSize, size_));
  }
  if (std::memcmp(base_, kMagic, sizeof kMagic) != 0)
    fail("magic", 0, "not a .mighty file (expected \"MIGHTY\\r\\n\")");
  const uint32_t version = get_u32(base_ + 8);
  if (version != kArtifactVersion && version != kArtifactVersionEncoded) {
    fail("format_version", 8,
         fmt::format("expected {} or {}, found {}", kArtifactVersion, kArtifactVersionEncoded, version));
  }
  const uint32_t header_size = get_u32(base_ + 12);
  if (header_size != kArtifactHeaderSize) {
    fail("header_size", 12, fmt::format("expected {}, found {}", kArtifactHeaderSize, header_size));
  }
  const uint64_t meta_offset = get_u64(base_ + 16), meta_size = get_u64(base_ + 24);
  const uint64_t data_offset = get_u64(base_ + 32), data_size = get_u64(base_ + 40);
  const uint64_t checksum = get_u64(base_ + kChecksumOffset), reserved = get_u64(base_ + 56);
  if (meta_offset != kArtifactHeaderSize) {
    fail("metadata_offset", 16, fmt::format("expected {}, found {}", kArtifactHeaderSize, meta_offset));
  }
  if (meta_size > size_ - kArtifactHeaderSize) {
    fail("metadata_size", 24,
         fmt::format("expected at most the {} bytes after the header, found {}", size_ - kArtifactHeaderSize,
                     meta_size));
  }
  const uint64_t meta_end = kArtifactHeaderSize + meta_size;
  if (data_offset < meta_end || data_offset > size_ || data_offset % kArtifactAlignment != 0) {
    fail("data_offset", 32,
         fmt::format("expected a multiple of {} in [{}, {}], found {}", kArtifactAlignment, meta_end, size_,
                     data_offset));
  }
  if (data_size != size_ - data_offset) {
    fail("data_size", 40,
         fmt::format("expected {} (the rest of the file), found {}", size_ - data_offset, data_size));
  }
  if (reserved != 0) fail("reserved", 56, fmt::format("expected 0, found {}", reserved));
  const uint64_t actual = header_checksum(base_, base_ + kArtifactHeaderSize, meta_size);
  if (actual != checksum) {
    fail("checksum", kChecksumOffset,
         fmt::format("header and metadata hash to {}, the file says {}", hex64(actual), hex64(checksum)));
  }
  for (uint64_t i = meta_end; i < data_offset; ++i) {
    if (base_[i] != 0) fail("padding", i, fmt::format("expected 0, found {}", base_[i]));
  }
  metadata_ = nlohmann::json::parse(base_ + kArtifactHeaderSize, base_ + meta_end, nullptr,
                                    /*allow_exceptions=*/false);
  if (metadata_.is_discarded() || !metadata_.is_object())
    fail("metadata", kArtifactHeaderSize, "not a JSON object");
  if (!metadata_.contains("tensors") || !metadata_["tensors"].is_array()) {
    fail("metadata.tensors", kArtifactHeaderSize, "expected an array");
  }
  return {version, data_offset, data_size};
}

// One entry of the tensor table: every field checked against the bytes that exist; `end` is where the
// previous tensor ended (tensors are sorted and do not overlap).
void Artifact::parse_tensor(const nlohmann::json& t, size_t index, const Layout& layout, uint64_t& end,
                            std::set<std::string>& names) {
  auto fail = [&](const std::string& field, uint64_t at, const std::string& problem) {
    throw Error(fmt::format("{}: {} at byte {}: {}", name_, field, at, problem));
  };
  const uint32_t version = layout.version;
  const uint64_t data_offset = layout.data_offset, data_size = layout.data_size;
  const uint8_t* data = base_ + data_offset;
  std::string label = fmt::format("tensors[{}]", index);
  auto tfail = [&](const std::string& field, const std::string& problem) {
    fail(fmt::format("{}.{}", label, field), kArtifactHeaderSize, problem);
  };
  if (!t.is_object()) tfail("entry", "expected an object");
  if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty()) {
    tfail("name", "expected a non-empty string");
  }
  const std::string name = t["name"].get<std::string>();
  label += " ('" + name + "')";
  if (!names.insert(name).second) tfail("name", "duplicated");
  if (!t.contains("dtype") || !t["dtype"].is_string()) tfail("dtype", "expected a string");
  const std::string dtype = t["dtype"].get<std::string>();
  const TypeInfo* type = nullptr;
  for (const auto& i : kTypes)
    if (dtype == i.name) type = &i;
  if (!type) tfail("dtype", fmt::format("expected float32, int8, uint8 or int32, found '{}'", dtype));
  if (!t.contains("shape") || !t["shape"].is_array() || t["shape"].size() > 8) {
    tfail("shape", "expected an array of at most 8 dimensions");
  }
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (const auto& d : t["shape"]) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxDim)
      tfail("shape", "dimensions must be integers in [0, 2^40]");
    const uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && numel > (uint64_t{1} << 60) / dim) tfail("shape", "element count overflows");
    numel *= dim;
    shape.push_back(static_cast<int64_t>(dim));
  }
  if (!t.contains("offset") || !t["offset"].is_number_unsigned())
    tfail("offset", "expected an unsigned integer");
  if (!t.contains("bytes") || !t["bytes"].is_number_unsigned())
    tfail("bytes", "expected an unsigned integer");
  const uint64_t offset = t["offset"].get<uint64_t>(), bytes = t["bytes"].get<uint64_t>();
  std::string encoding;
  if (t.contains("encoding")) {
    if (!t["encoding"].is_string() || t["encoding"] != "bitmap" || version < kArtifactVersionEncoded) {
      tfail("encoding", fmt::format("expected \"bitmap\" (format {}), found {} in a format {} file",
                                    kArtifactVersionEncoded, t["encoding"].dump(), version));
    }
    encoding = "bitmap";
  }
  const uint64_t dense_bytes = numel * type->size;
  if (encoding.empty() && bytes != dense_bytes) {
    tfail("bytes", fmt::format("shape x {} needs {} bytes, found {}", dtype, dense_bytes, bytes));
  }
  if (!encoding.empty() && (bytes < (numel + 7) / 8 || bytes > (numel + 7) / 8 + dense_bytes)) {
    tfail("bytes", fmt::format("a bitmap-encoded {} tensor of {} elements takes {} to {} bytes, found {}",
                               dtype, numel, (numel + 7) / 8, (numel + 7) / 8 + dense_bytes, bytes));
  }
  if (offset % kArtifactAlignment != 0) {
    tfail("offset", fmt::format("expected a multiple of {}, found {}", kArtifactAlignment, offset));
  }
  if (offset < end)
    tfail("offset", fmt::format("expected at least {} (sorted, non-overlapping), found {}", end, offset));
  if (offset > data_size || bytes > data_size - offset) {
    tfail("offset", fmt::format("[{}, +{}) reaches past the {} data bytes", offset, bytes, data_size));
  }
  for (uint64_t i = end; i < offset; ++i) {
    if (data[i] != 0) fail("padding", data_offset + i, fmt::format("expected 0, found {}", data[i]));
  }
  if (!t.contains("checksum") || !t["checksum"].is_string()) tfail("checksum", "expected a string");
  const std::string expected = t["checksum"].get<std::string>();
  const std::string found = hex64(XXH64(data + offset, bytes, 0));
  if (expected != found) {
    fail(label + ".checksum", data_offset + offset,
         fmt::format("data hashes to {}, the table says '{}'", found, expected));
  }
  const uint8_t* elements = data + offset;
  if (!encoding.empty())
    elements = expand_bitmap(data + offset, bytes, numel, type, label, data_offset + offset);
  by_name_[name] = tensors_.size();
  tensors_.push_back({name, type->type, std::move(shape), elements, dense_bytes, bytes, encoding});
  end = offset + bytes;
}

void Artifact::parse() {
  const Layout layout = parse_header();
  uint64_t end = 0;
  size_t index = 0;
  std::set<std::string> names;
  for (const auto& t : metadata_["tensors"]) parse_tensor(t, index++, layout, end, names);
  if (end != layout.data_size) {
    throw Error(fmt::format("{}: data at byte {}: {} bytes after the last tensor (the data must end with it)",
                            name_, layout.data_offset + end, layout.data_size - end));
  }
  check_provenance();
}

// The top-level fields every reader may use: a value of the wrong type is an error here, on open, never a
// surprise later. The graph and the input spec are checked in full by the Session that runs them.
void Artifact::check_provenance() {
  const MetaValue meta(metadata_, name_);
  for (const char* key : {"producer", "producer_version", "recipe", "recipe_hash", "data_hash", "role"})
    if (meta.has(key)) meta.at(key).string();
  for (const char* key : {"graph", "input"})
    if (meta.has(key)) meta.at(key).expect_object();
  if (meta.has("labels")) {
    for (const MetaValue& label : meta.at("labels").elements()) labels_.push_back(label.string());
  }
}

}  // namespace mighty
