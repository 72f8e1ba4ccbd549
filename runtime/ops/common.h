// Helpers shared by the op definitions in runtime/ops/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <Eigen/Core>

#include "runtime/graph/graph.h"

namespace mighty::ops {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRows = Eigen::Map<const RowMatrix>;
using Rows = Eigen::Map<RowMatrix>;

inline int64_t product(const std::vector<int64_t>& shape, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < shape.size(); ++i) n *= shape[i];
  return n;
}

inline constexpr float kNormEps = 1e-5f;  // LibTorch's default for BatchNorm2d and LayerNorm

// The ReLU op's value (NaN and -0 give +0), also where a convolution applies a fused ReLU.
inline float relu(float v) { return v > 0.0f ? v : 0.0f; }

// The output shape is the first input's (elementwise ops).
Shape same_shape(const ShapeContext& ctx);

}  // namespace mighty::ops
