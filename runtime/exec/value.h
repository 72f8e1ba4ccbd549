// The values that flow between the nodes of a graph while the session runs it.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "kernels/quantize.h"

namespace mighty::exec {

// An allocator whose value-initialization is default-initialization: resize() leaves new bytes as they are
// instead of zeroing them. For buffers whose producer writes every element it sizes (the uint8 chain's):
// the session reuses buffers across runs, and with batches of varying size (a server's micro-batches) a
// buffer that grows would otherwise be zero-filled for nothing.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <class U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}  // NOLINT: an allocator converts
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using U8Buffer = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

struct Value {
  std::vector<float> data;     // [batch, shape...] row-major (NCHW for images)
  std::vector<int64_t> shape;  // without the batch dimension
  // uint8 channels-last form ([batch][h][w][c], quantized with `params`) between int8 layers of a uint8
  // chain (exec/u8_chain.h); when set, `data` is unused.
  U8Buffer u8;
  bool is_u8 = false;
  kernels::QuantParams params;
};

}  // namespace mighty::exec
