#include "runtime/io/idx.h"

#if !defined(MIGHTY_NO_ZLIB)
#include <zlib.h>
#endif

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace mighty {
namespace {

uint32_t read_be32(const std::string& b, size_t offset) {
  return (uint32_t{static_cast<uint8_t>(b[offset])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[offset + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[offset + 2])} << 8) | uint32_t{static_cast<uint8_t>(b[offset + 3])};
}

}  // namespace

#if defined(MIGHTY_NO_ZLIB)
// The WebAssembly build has no zlib (no package of it for wasm): gzip input is refused by name.
std::string gunzip(const std::string&, const std::string& what) {
  throw Error(what +
              ": gzip data, which this build (WebAssembly, without zlib) cannot read; decompress it first");
}
#else
std::string gunzip(const std::string& compressed, const std::string& what) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw Error(what + ": cannot initialize zlib");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  char buffer[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      const size_t at = compressed.size() - zs.avail_in;
      const std::string msg = zs.msg ? zs.msg : (rc == Z_BUF_ERROR ? "stream ends early" : "inflate failed");
      inflateEnd(&zs);
      throw Error(fmt::format("{}: corrupt or truncated gzip data at compressed byte {} of {}: {}", what, at,
                              compressed.size(), msg));
    }
    out.append(buffer, sizeof(buffer) - zs.avail_out);
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw Error(
          fmt::format("{}: truncated gzip data: the stream ends after {} compressed bytes without its end "
                      "marker",
                      what, compressed.size()));
    }
  }
  const size_t trailing = zs.avail_in;
  inflateEnd(&zs);
  if (trailing != 0) {
    throw Error(fmt::format("{}: {} unexpected bytes after the end of the gzip stream", what, trailing));
  }
  return out;
}
#endif

IdxArray parse_idx(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 4)
    throw Error(fmt::format("{}: IDX header: file has {} bytes, expected at least 4", what, bytes.size()));
  if (bytes[0] != 0 || bytes[1] != 0) {
    throw Error(fmt::format("{}: IDX magic at offset 0: expected 00 00, found {:02x} {:02x}", what,
                            static_cast<uint8_t>(bytes[0]), static_cast<uint8_t>(bytes[1])));
  }
  const auto type = static_cast<uint8_t>(bytes[2]);
  if (type != 0x08) {
    throw Error(fmt::format("{}: IDX element type at offset 2: expected 0x08 (unsigned byte), found 0x{:02x}",
                            what, type));
  }
  const auto rank = static_cast<uint8_t>(bytes[3]);
  if (rank < 1 || rank > 4)
    throw Error(fmt::format("{}: IDX rank at offset 3: expected 1..4, found {}", what, rank));
  const size_t header = 4 + 4 * size_t{rank};
  if (bytes.size() < header) {
    throw Error(fmt::format("{}: IDX header: file has {} bytes, a rank-{} header needs {}", what,
                            bytes.size(), rank, header));
  }
  IdxArray out;
  uint64_t total = 1;
  for (size_t i = 0; i < rank; ++i) {
    const uint32_t d = read_be32(bytes, 4 + 4 * i);
    if (d == 0) throw Error(fmt::format("{}: IDX dimension {} at offset {} is 0", what, i, 4 + 4 * i));
    total *= d;
    if (total > (uint64_t{1} << 40))
      throw Error(fmt::format("{}: IDX dimensions describe more than 2^40 bytes", what));
    out.dims.push_back(d);
  }
  if (bytes.size() - header != total) {
    throw Error(fmt::format("{}: IDX data: dimensions need {} bytes after the {}-byte header, found {}", what,
                            total, header, bytes.size() - header));
  }
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

IdxArray read_idx(const std::string& path) {
  std::string bytes = read_file(path);
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f && static_cast<uint8_t>(bytes[1]) == 0x8b) {
    bytes = gunzip(bytes, path);
  }
  return parse_idx(bytes, path);
}

}  // namespace mighty
