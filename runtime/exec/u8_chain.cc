#include "runtime/exec/u8_chain.h"

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

}  // namespace mighty
