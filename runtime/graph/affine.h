// Arithmetic with a constant as a per-channel affine: both front ends (onnx_io's Add/Sub/Mul/Div, compress's
// TorchScript add/sub/mul/div) carry `x op k` as x * scale + shift (a BatchNorm2d with frozen statistics), by
// this one rule.
#pragma once

#include <string_view>

namespace mighty {

// `op` is "add", "sub", "mul" or "div" (any case); `constant_first` when k is the left operand. x / k becomes
// x * (1 / k). Returns false for k / x, which is not affine.
inline bool affine_of(std::string_view op, bool constant_first, float k, float* scale, float* shift) {
  auto is = [&](std::string_view name) {
    if (op.size() != name.size()) return false;
    for (size_t i = 0; i < op.size(); ++i)
      if ((op[i] | 0x20) != name[i]) return false;
    return true;
  };
  *scale = 1.0f;
  *shift = 0.0f;
  if (is("add")) {
    *shift = k;
  } else if (is("sub")) {
    *scale = constant_first ? -1.0f : 1.0f;
    *shift = constant_first ? k : -k;
  } else if (is("mul")) {
    *scale = k;
  } else if (is("div") && !constant_first) {
    *scale = 1.0f / k;
  } else {
    return false;
  }
  return true;
}

}  // namespace mighty
