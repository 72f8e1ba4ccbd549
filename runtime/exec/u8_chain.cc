#include "runtime/exec/u8_chain.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace mighty {

U8Chain follow_u8_chain(const Graph& graph, int from) {
  U8Chain chain;
  int at = from;
  while (true) {
    const auto& users = graph.users(at);
    if (users.size() != 1 || at == graph.output()) {
      chain.end = -1;
      return chain;
    }
    at = users[0];
    chain.end = at;
    const OpKind op = graph.nodes()[static_cast<size_t>(at)].op;
    if (op == OpKind::kReLU) {
      chain.relu = true;
      chain.lo = std::max(chain.lo, 0.0);
      continue;
    }
    if (op == OpKind::kClip) {
      const auto& attrs = graph.nodes()[static_cast<size_t>(at)].attrs;
      chain.clip = true;
      chain.lo = std::max(chain.lo, attrs.value("min", -static_cast<double>(FLT_MAX)));
      chain.hi = std::min(chain.hi, attrs.value("max", static_cast<double>(FLT_MAX)));
      continue;
    }
    if (op == OpKind::kMaxPool2d && chain.flatten < 0) continue;
    if (op == OpKind::kFlatten && chain.flatten < 0) {
      chain.flatten = at;
      continue;
    }
    chain.consumer = chain.flatten < 0 ? op == OpKind::kConv2d : op == OpKind::kLinear;
    return chain;
  }
}

void u8_clamp(const U8Chain& chain, const kernels::QuantParams& out, int32_t& lo, int32_t& hi) {
  auto quantized = [&](double bound) {
    const double q = std::nearbyint(bound / static_cast<double>(out.scale)) + out.zero_point;
    return static_cast<int32_t>(std::min(255.0, std::max(0.0, q)));
  };
  lo = std::isfinite(chain.lo) ? quantized(chain.lo) : 0;
  hi = std::isfinite(chain.hi) ? quantized(chain.hi) : 255;
  if (hi < lo) hi = lo;  // an empty interval (min above max is refused by Clip's shape inference)
}

}  // namespace mighty
