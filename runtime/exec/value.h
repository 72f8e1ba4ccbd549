// The values that flow between the nodes of a graph while the session runs it.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/quantize.h"

namespace mighty::exec {

struct Value {
  std::vector<float> data;     // [batch, shape...] row-major (NCHW for images)
  std::vector<int64_t> shape;  // without the batch dimension
  // uint8 channels-last form ([batch][h][w][c], quantized with `params`) between int8 layers of a uint8
  // chain (exec/u8_chain.h); when set, `data` is unused.
  std::vector<uint8_t> u8;
  bool is_u8 = false;
  kernels::QuantParams params;
};

}  // namespace mighty::exec
