// The LibTorch op table: every op of runtime/graph/op_list.h, indexed by OpKind (a missing definition is a
// link error). Nothing here knows an op; each definition lives in its own file.
#include <fmt/format.h>

#include "compress/ops/torch_op.h"
#include "runtime/error.h"

namespace mighty::compress {

#define MIGHTY_OP(name) extern const TorchOpDef k##name##TorchOp;
#include "runtime/graph/op_list.h"
#undef MIGHTY_OP

namespace {

const TorchOpDef* const kTable[] = {
#define MIGHTY_OP(name) &k##name##TorchOp,
#include "runtime/graph/op_list.h"
#undef MIGHTY_OP
};

}  // namespace

const TorchOpDef& torch_op(OpKind op) {
  const auto index = static_cast<size_t>(op);
  if (index >= std::size(kTable) || kTable[index]->kind != op)
    throw Error(fmt::format("no LibTorch definition for op kind {}", index));
  return *kTable[index];
}

const TorchOpDef* find_script_op(const std::string& script_kind) {
  for (const TorchOpDef* def : kTable)
    for (const char* name : def->script_ops)
      if (name && script_kind == name) return def;
  return nullptr;
}

std::string script_ops_supported() {
  std::string out;
  for (const TorchOpDef* def : kTable) {
    for (const char* name : def->script_ops) {
      if (!name) continue;
      out += out.empty() ? "" : ", ";
      out += name;
    }
  }
  return out;
}

bool int8_layer(const Node& n, bool static_activation) {
  if (!torch_op(n.op).int8_weights) return false;
  const int64_t groups = n.attrs.value("groups", int64_t{1});
  if (groups == 1) return true;
  return static_activation && groups == n.attrs.value("in_channels", int64_t{0}) &&
         groups == n.attrs.value("out_channels", int64_t{0});
}

std::vector<PrunableWeight> own_weight(const Node& node) { return {{node.name, node.name + ".weight"}}; }

}  // namespace mighty::compress
