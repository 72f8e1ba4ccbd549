// Executes an artifact's graph on the CPU without LibTorch: every op of the graph IR in fp32, and Linear,
// Conv2d and EmbeddingBag in int8 where the artifact quantized them (exec/int8_layer.h), with uint8 chains
// between static int8 layers (exec/u8_chain.h). The executor is a loop over the nodes that calls each op's
// own run function (runtime/ops/). Everything is checked when the session is built — the graph, every
// tensor's name, shape and dtype, every quantization parameter and the input spec — so a run cannot read a
// tensor that is not there.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kernels/thread_pool.h"
#include "runtime/exec/op_context.h"
#include "runtime/format/artifact.h"
#include "runtime/format/input_spec.h"
#include "runtime/format/metadata.h"
#include "runtime/graph/graph.h"

namespace mighty {

class Session {
 public:
  // `threads` splits the int8 GEMMs (results are identical for any count).
  explicit Session(Artifact artifact, int threads = 1);
  static Session load(const std::string& path, int threads = 1) {
    return Session(Artifact::open(path), threads);
  }
  Session(Session&&) noexcept;
  ~Session();

  const Graph& graph() const { return graph_; }
  const Artifact& artifact() const { return artifact_; }
  // The artifact's input spec (metadata "input", checked at load); an Error when the file has none.
  const InputSpec& input_spec() const;
  bool has_input_spec() const { return has_input_; }

  // Float input [batch, input_shape...] (already normalized); returns [batch, output_shape...] flattened.
  std::vector<float> run(const float* input, int64_t batch) const;
  // Token input [batch, length] with length <= the context; returns [batch, length, vocab] (language model)
  // or [batch, classes] (sequence or document classifier) flattened. Ids < 0 are padding for EmbeddingBag.
  std::vector<float> run_tokens(const int64_t* tokens, int64_t batch, int64_t length) const;

  // Incremental decoding of a causal language model (batch 1): the keys and values of every attention layer
  // for the positions seen so far, so each new token costs one position's work instead of the whole prefix.
  struct DecodeState {
    int64_t position = 0;  // tokens consumed so far
    std::vector<std::vector<float>> keys,
        values;  // per graph node (empty for non-attention nodes): [context][d]
  };
  // Feeds `length` more tokens; returns their logits [length][vocab]. The total may not exceed the context.
  std::vector<float> decode(const int64_t* tokens, int64_t length, DecodeState& state) const;

  // Output elements per example for a sequence of `length` (the whole input for image models).
  int64_t output_size(int64_t length = 0) const;

 private:
  std::vector<float> execute(exec::RunCall call) const;    // on the pool when it is free
  std::vector<float> run_graph(exec::RunCall call) const;  // on call.pool
  std::vector<float> execute_sliced(exec::RunCall call, int64_t input_stride) const;
  int64_t batch_slice() const;
  void prepare_node(int index, const std::optional<MetaValue>& quant);

  Artifact artifact_;
  Graph graph_;
  InputSpec input_;
  bool has_input_ = false;
  std::vector<exec::PreparedNode> nodes_;
  std::vector<size_t> last_use_;  // per node: the last node that reads it (liveness)
  int64_t slice_ = 0;             // examples per slice of a large batch (execute_sliced)
  std::unique_ptr<kernels::ThreadPool> pool_;
  std::unique_ptr<std::mutex>
      pool_mutex_;  // the pool serves one run at a time; concurrent runs go 1-threaded
};

}  // namespace mighty
