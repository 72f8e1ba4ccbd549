#include "runtime/exec/session.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <optional>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"
#include "runtime/exec/fp32_fusion.h"
#include "runtime/format/metadata.h"
#include "runtime/graph/op_def.h"

namespace mighty {

Session::Session(Session&&) noexcept = default;
Session::~Session() = default;

Session::Session(Artifact artifact, int threads) : artifact_(std::move(artifact)) {
  const MetaValue meta(artifact_.metadata(), artifact_.name());
  try {
    graph_ = Graph::from_json(meta.at("graph").json());
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", artifact_.name(), e.what()));
  }
  // Float input as the output is the identity (ONNX's Identity and Dropout tests); token ids have no float
  // buffer, so it would hand back a recycled buffer's stale contents.
  if (graph_.output() == 0 && graph_.input_dtype() == DType::kInt64) {
    throw Error(fmt::format("{}: the graph's output is its token-id Input node: the model computes nothing",
                            artifact_.name()));
  }
  if (meta.has("input")) {
    input_ = InputSpec::from_json(meta.at("input"));
    has_input_ = true;
  }
  const auto& nodes = graph_.nodes();
  nodes_.resize(nodes.size());
  // Each node's "quant" attribute (checked where it is read), or none.
  const MetaValue node_list = meta.at("graph").at("nodes");
  std::vector<std::optional<MetaValue>> quant(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].attrs.contains("quant")) quant[i] = node_list.at(i).at("attrs").at("quant");
    prepare_node(static_cast<int>(i), quant[i]);
  }
  // The ops' own preparation sees the fp32 convolutions' folded weights.
  exec::fuse_fp32_convolutions(graph_, nodes_);
  for (size_t i = 0; i < nodes.size(); ++i)
    if (const auto prepare = op_def(nodes[i].op).prepare) prepare(nodes[i], nodes_[i]);
  // Requantized uint8 outputs read their consumers' int8 forms, so they come once every node is prepared.
  std::vector<exec::Int8Layer*> int8(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) int8[i] = nodes_[i].int8.get();
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (quant[i] && quant[i]->has("output_scale"))
      exec::prepare_u8_output(artifact_, graph_, static_cast<int>(i), *quant[i], int8);
  }
  // Liveness: a node's buffer goes back to a free list after its last consumer has run, and later nodes take
  // their buffers from that list, so peak memory follows the widest cut of the graph, not its length.
  last_use_.assign(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i)
    for (int in : nodes[i].inputs) last_use_[static_cast<size_t>(in)] = i;
  last_use_[static_cast<size_t>(graph_.output())] = nodes.size();
  slice_ = batch_slice();
  if (threads > 1) pool_ = std::make_unique<kernels::ThreadPool>(threads);
  pool_mutex_ = std::make_unique<std::mutex>();
}

// Examples per slice: as many as keep the largest layer's input and output within a sixteenth of the L2
// cache (uint8 values counted as bytes, others as floats), at least kMinSlice (GEMMs of a few examples still
// reuse each weight load). MIGHTY_BATCH_SLICE=N sets it (benchmarks). Measured on an Intel Xeon (2 MB L2),
// batch 64, 1 thread, slices of 1 to 32 examples and whole: the default student peaks at 2-4 examples
// (1.7x the whole batch on AMX, 1.3x on VNNI), its int8 teacher at 4-8 (1.4-1.5x), falling off beyond.
int64_t Session::batch_slice() const {
  constexpr int64_t kMinSlice = 4;
  if (const char* env = std::getenv("MIGHTY_BATCH_SLICE")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end == env || *end != '\0' || v < 1)
      throw Error(fmt::format("MIGHTY_BATCH_SLICE='{}': expected a positive number of examples", env));
    return v;
  }
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#else
  const long l2 = 0;  // not known (WebAssembly): 1 MB assumed
#endif
  const int64_t budget = (l2 > 0 ? l2 : 1 << 20) / 16;
  const auto& nodes = graph_.nodes();
  std::vector<int64_t> bytes(nodes.size());
  std::vector<bool> u8(nodes.size(), false);
  int64_t widest = 1;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    const exec::Int8Layer* q = nodes_[i].int8.get();
    u8[i] =
        q ? q->u8_output : op_def(n.op).takes_u8 && !n.inputs.empty() && u8[static_cast<size_t>(n.inputs[0])];
    int64_t elems = 1;
    for (int64_t d : n.shape) elems *= d;
    bytes[i] = elems * (u8[i] ? 1 : 4);
    int64_t touched = bytes[i];
    for (int in : n.inputs) touched += bytes[static_cast<size_t>(in)];
    widest = std::max(widest, touched);
  }
  return std::max(kMinSlice, budget / widest);
}

// Checks the node's tensors against the graph, finds its fp32 tensors, reads its layer attributes and, when
// quantized, prepares its int8 form (the op's own prepare hook runs later, after fusion).
void Session::prepare_node(int i, const std::optional<MetaValue>& quant) {
  const Node& n = graph_.nodes()[static_cast<size_t>(i)];
  exec::PreparedNode& p = nodes_[static_cast<size_t>(i)];
  const bool quantized = quant.has_value();
  for (const auto& spec : graph_.tensors(i)) {
    if (!artifact_.has_tensor(spec.name)) {
      throw Error(fmt::format("{}: the graph needs tensor '{}', which the file does not have",
                              artifact_.name(), spec.name));
    }
    const auto& t = artifact_.tensor(spec.name);
    const bool int8_weight = quantized && spec.name == n.name + ".weight";
    const TensorType want = int8_weight ? TensorType::kInt8 : TensorType::kFloat32;
    if (t.shape != spec.shape || t.type != want) {
      throw Error(fmt::format("{}: tensor '{}' is {} [{}], the graph needs {} [{}]", artifact_.name(),
                              spec.name, tensor_type_name(t.type), fmt::join(t.shape, ", "),
                              tensor_type_name(want), fmt::join(spec.shape, ", ")));
    }
    if (!int8_weight) p.tensors.emplace_back(spec.name.substr(n.name.size() + 1), t.as<float>());
  }
  if (quantized && n.op != OpKind::kLinear && n.op != OpKind::kConv2d && n.op != OpKind::kEmbeddingBag) {
    throw Error(fmt::format("{}: graph node {} ('{}'): unsupported quantization {}", artifact_.name(), i,
                            n.name, describe_json(quant->json())));
  }
  if (n.op == OpKind::kLinear || n.op == OpKind::kConv2d || n.op == OpKind::kMaxPool2d ||
      n.op == OpKind::kAvgPool2d) {
    // Only these read them; their values were checked by Graph::infer_shapes.
    auto get = [&](const char* key, int64_t fallback) {
      return n.attrs.contains(key) ? n.attrs[key].get<int64_t>() : fallback;
    };
    p.attrs.in = get(n.op == OpKind::kConv2d ? "in_channels" : "in_features", 0);
    p.attrs.out = get(n.op == OpKind::kConv2d ? "out_channels" : "out_features", 0);
    p.attrs.kernel = get("kernel", 1);
    p.attrs.stride = get("stride", -1);
    p.attrs.padding = get("padding", 0);
    p.attrs.groups = get("groups", 1);
    p.attrs.bias = n.attrs.value("bias", true);
  }
  if (quantized) p.int8 = exec::prepare_int8(artifact_, graph_, i, *quant);
}

const InputSpec& Session::input_spec() const {
  if (!has_input_) throw Error(fmt::format("{}: metadata has no input spec", artifact_.name()));
  return input_;
}

int64_t Session::output_size(int64_t length) const {
  Shape s = graph_.output_shape();
  if (graph_.input_dtype() == DType::kInt64 && s.size() == 2 && length > 0) s[0] = length;
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

std::vector<float> Session::run(const float* input, int64_t batch) const {
  if (graph_.input_dtype() != DType::kFloat32) throw Error("this model takes tokens: use run_tokens");
  exec::RunCall call;
  call.input = input;
  call.batch = batch;
  int64_t per_example = 1;
  for (int64_t d : graph_.input_shape()) per_example *= d;
  return execute_sliced(call, per_example);
}

// A batch larger than slice_ runs slice by slice through the whole graph, so each slice's activations stay in
// cache from one layer to the next (examples are independent in every op). With a pool, the threads take
// whole slices (each slice's kernels on one thread: the GEMMs of a few examples are too small to split
// well); an error in any slice is rethrown once all are done.
std::vector<float> Session::execute_sliced(exec::RunCall call, int64_t input_stride) const {
  std::unique_lock<std::mutex> lock(*pool_mutex_, std::try_to_lock);
  kernels::ThreadPool* pool = lock.owns_lock() ? pool_.get() : nullptr;
  if (call.batch <= slice_) {
    call.pool = pool;
    return run_graph(call);
  }
  const int64_t batch = call.batch, slices = (batch + slice_ - 1) / slice_;
  const auto per_example = static_cast<size_t>(output_size(call.length));
  std::vector<float> out(per_example * static_cast<size_t>(batch));
  const bool by_slice = pool && pool->threads() > 1;
  std::mutex error_mutex;
  std::exception_ptr error;
  auto one = [&](int64_t s) {
    exec::RunCall part = call;
    const int64_t b0 = s * slice_;
    part.batch = std::min(slice_, batch - b0);
    if (call.input) part.input = call.input + b0 * input_stride;
    if (call.tokens) part.tokens = call.tokens + b0 * input_stride;
    part.pool = by_slice ? nullptr : pool;
    try {
      const std::vector<float> y = run_graph(part);
      if (y.size() != per_example * static_cast<size_t>(part.batch))
        throw Error(fmt::format("a slice of {} examples gave {} outputs, not {} per example", part.batch,
                                y.size(), per_example));
      std::copy(y.begin(), y.end(), out.begin() + static_cast<std::ptrdiff_t>(per_example * b0));
    } catch (...) {
      const std::lock_guard<std::mutex> guard(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  if (by_slice) {
    pool->parallel_for(slices, one);
  } else {
    for (int64_t s = 0; s < slices; ++s) one(s);
  }
  if (error) std::rethrow_exception(error);
  return out;
}

std::vector<float> Session::run_tokens(const int64_t* tokens, int64_t batch, int64_t length) const {
  if (graph_.input_dtype() != DType::kInt64) throw Error("this model takes float input: use run");
  const int64_t context = graph_.input_shape()[0];
  if (length < 1 || length > context) {
    throw Error(fmt::format("token sequence of length {} does not fit the context of {}", length, context));
  }
  exec::RunCall call;
  call.tokens = tokens;
  call.batch = batch;
  call.length = length;
  return execute_sliced(call, length);
}

std::vector<float> Session::decode(const int64_t* tokens, int64_t length, DecodeState& state) const {
  if (graph_.input_dtype() != DType::kInt64) throw Error("decode needs a language model (token input)");
  for (const Node& n : graph_.nodes()) {
    const bool attention = n.op == OpKind::kMultiHeadAttention || n.op == OpKind::kScaledDotProductAttention;
    if (attention && !n.attrs.value("causal", false))
      throw Error("decode needs causal attention (a language model)");
    if (n.op == OpKind::kGlobalAvgPool)
      throw Error("decode needs a language model, not a sequence classifier");
  }
  const int64_t context = graph_.input_shape()[0];
  if (length < 1 || state.position + length > context) {
    throw Error(fmt::format("decoding {} more tokens after {} exceeds the context of {}", length,
                            state.position, context));
  }
  if (state.keys.empty()) {
    state.keys.resize(graph_.nodes().size());
    state.values.resize(graph_.nodes().size());
  }
  exec::DecodeCache cache{state.position, &state.keys, &state.values};
  exec::RunCall call;
  call.tokens = tokens;
  call.length = length;
  call.decode = &cache;
  auto logits = execute(call);
  state.position += length;
  return logits;
}

namespace {

// Activation buffers of finished runs, kept for the next run on the same thread, so a warm run allocates no
// activation memory. Buffers are handed out with their old contents (every op sizes its output with resize
// and then writes all of it, or assigns it where it accumulates: GlobalAvgPool, EmbeddingBag), so only a
// buffer that grows is zero-filled, and only past its old size (measured against clearing them: the default
// student's fp32 form 1.03-1.05x). At most kKeepBytes per thread stay between runs.
struct RunBuffers {
  static constexpr size_t kKeepBytes = 64u << 20;
  std::vector<std::vector<float>> f;
  std::vector<exec::U8Buffer> u8;

  void take(exec::Value& v) {
    if (!f.empty()) {
      v.data = std::move(f.back());
      f.pop_back();
    }
    if (!u8.empty()) {
      v.u8 = std::move(u8.back());
      u8.pop_back();
    }
  }
  void give(exec::Value& v) {
    if (v.data.capacity() > 0) f.push_back(std::move(v.data));
    if (v.u8.capacity() > 0) u8.push_back(std::move(v.u8));
    v.data = {};
    v.u8 = {};
  }
  // After a run: drop buffers beyond the budget, largest last kept.
  void trim() {
    size_t bytes = 0;
    for (auto it = f.begin(); it != f.end();) {
      bytes += it->capacity() * sizeof(float);
      it = bytes > kKeepBytes ? f.erase(it) : it + 1;
    }
    for (auto it = u8.begin(); it != u8.end();) {
      bytes += it->capacity();
      it = bytes > kKeepBytes ? u8.erase(it) : it + 1;
    }
  }
};

}  // namespace

std::vector<float> Session::execute(exec::RunCall call) const {
  std::unique_lock<std::mutex> lock(*pool_mutex_, std::try_to_lock);
  call.pool = lock.owns_lock() ? pool_.get() : nullptr;
  return run_graph(call);
}

std::vector<float> Session::run_graph(exec::RunCall call) const {
  const auto& nodes = graph_.nodes();
  if (graph_.input_dtype() == DType::kInt64) call.context = graph_.input_shape()[0];
  thread_local RunBuffers buffers;
  std::vector<exec::Value> values(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    const OpDef& def = op_def(n.op);
    if (nodes_[i].pass_through) {  // fused into its producer, its only input's only user
      values[i] = std::move(values[static_cast<size_t>(n.inputs[0])]);
      continue;
    }
    buffers.take(values[i]);
    if (!n.inputs.empty() && values[static_cast<size_t>(n.inputs[0])].is_u8 && !def.takes_u8)
      throw Error(fmt::format("graph node '{}' ({}) cannot take a uint8 input", n.name, def.name));
    exec::OpContext ctx(n, static_cast<int>(i), nodes_[i], call, values);
    def.run(ctx);
    for (int in : n.inputs)
      if (last_use_[static_cast<size_t>(in)] == i) buffers.give(values[static_cast<size_t>(in)]);
  }
  std::vector<float> logits = std::move(values[static_cast<size_t>(graph_.output())].data);
  for (auto& v : values) buffers.give(v);
  buffers.trim();
  return logits;
}

namespace exec {

const float* OpContext::tensor(const char* suffix) const {
  for (const auto& [name, data] : prepared_.tensors)
    if (name == suffix) return data;
  throw Error(fmt::format("graph node '{}' has no tensor '{}.{}'", node_.name, node_.name, suffix));
}

const float* OpContext::find_repacked(const char* name) const {
  for (const auto& [key, data] : prepared_.repacked)
    if (key == name) return data.data();
  return nullptr;
}

const float* OpContext::repacked(const char* name) const {
  if (const float* data = find_repacked(name)) return data;
  throw Error(fmt::format("graph node '{}' has no repacked weights '{}'", node_.name, name));
}

bool OpContext::attr_bool(const char* key, bool fallback) const {
  auto it = node_.attrs.find(key);
  return it != node_.attrs.end() ? it->get<bool>() : fallback;  // a boolean (Graph::infer_shapes checks)
}

}  // namespace exec
}  // namespace mighty
