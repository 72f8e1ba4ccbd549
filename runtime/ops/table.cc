// The op table: every op of runtime/graph/op_list.h, indexed by OpKind, and the IR's shared checks
// (ShapeContext). Nothing here knows an op; each definition lives in its own file.
#include <array>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"
#include "runtime/graph/op_def.h"

namespace mighty {

#define MIGHTY_OP(name) extern const OpDef k##name##Op;
#include "runtime/graph/op_list.h"
#undef MIGHTY_OP

namespace {

constexpr const OpDef* kTable[] = {
#define MIGHTY_OP(name) &k##name##Op,
#include "runtime/graph/op_list.h"
#undef MIGHTY_OP
};

}  // namespace

const OpDef& op_def(OpKind op) {
  const auto index = static_cast<size_t>(op);
  if (index >= std::size(kTable)) throw Error(fmt::format("unknown op kind {}", index));
  return *kTable[index];
}

const OpDef* find_op_def(const std::string& name) {
  for (const OpDef* def : kTable)
    if (name == def->name) return def;
  return nullptr;
}

namespace ops {
Shape same_shape(const ShapeContext& ctx) { return ctx.input(); }
}  // namespace ops

const Shape& ShapeContext::input(int k) const { return input_node(k).shape; }

const Node& ShapeContext::input_node(int k) const {
  return graph_.nodes()[static_cast<size_t>(node_.inputs.at(static_cast<size_t>(k)))];
}

void ShapeContext::fail(const std::string& what) const {
  throw Error(fmt::format("graph node {} ('{}', {}): {}", index_, node_.name, op_name(node_.op), what));
}

int64_t ShapeContext::attr_int(const char* key, int64_t lo, int64_t hi) const {
  auto it = node_.attrs.find(key);
  if (it == node_.attrs.end() || !it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
    fail(fmt::format("attribute '{}' must be an integer", key));
  const auto v = it->get<int64_t>();
  if (v < lo || v > hi) fail(fmt::format("attribute '{}' = {} is outside [{}, {}]", key, v, lo, hi));
  return v;
}

int64_t ShapeContext::attr_int_or(const char* key, int64_t fallback, int64_t lo, int64_t hi) const {
  return node_.attrs.contains(key) ? attr_int(key, lo, hi) : fallback;
}

bool ShapeContext::attr_bool_or(const char* key, bool fallback) const {
  auto it = node_.attrs.find(key);
  return (it != node_.attrs.end() && it->is_boolean()) ? it->get<bool>() : fallback;
}

double ShapeContext::attr_number_or(const char* key, double fallback, double lo, double hi) const {
  auto it = node_.attrs.find(key);
  if (it == node_.attrs.end()) return fallback;
  if (!it->is_number()) fail(fmt::format("attribute '{}' must be a number", key));
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) fail(fmt::format("attribute '{}' = {} is outside [{}, {}]", key, v, lo, hi));
  return v;
}

void ShapeContext::need_rank(size_t rank) const {
  if (input().size() != rank) {
    fail(fmt::format("input shape [{}] has rank {}, expected {}", fmt::join(input(), ", "), input().size(),
                     rank));
  }
}

void ShapeContext::need_dim(int64_t found, int64_t expected, const char* what) const {
  if (found != expected) fail(fmt::format("{} is {}, expected {}", what, found, expected));
}

}  // namespace mighty
