// IDX files (the MNIST family's format), plain or gzip-compressed, read strictly: magic, element type, rank,
// and the exact byte count the dimensions imply. Anything else is one mighty::Error naming the file and
// field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mighty {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // row-major, unsigned bytes
};

// Decompresses a gzip stream; a truncated or corrupt stream is an error naming `what` and the byte offset.
std::string gunzip(const std::string& compressed, const std::string& what);

// Parses the bytes of an IDX file (already decompressed). Only the unsigned-byte element type (0x08) is
// accepted.
IdxArray parse_idx(const std::string& bytes, const std::string& what);

// Reads a file, gunzipping it when it starts with the gzip magic.
IdxArray read_idx(const std::string& path);

}  // namespace mighty
