// Packing, path selection and threading for the GEMM. Compiled without ISA flags.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/requantize.h"
#include "kernels/thread_pool.h"

namespace mighty::kernels {

void AlignedFree::operator()(void* p) const { std::free(p); }

AlignedBytes aligned_bytes(size_t bytes) {
  const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return AlignedBytes(static_cast<uint8_t*>(p));
}

PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k, int64_t ldw) {
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.n_padded = (n + kPackColumns - 1) / kPackColumns * kPackColumns;
  p.k_padded = (k + kPackDepth - 1) / kPackDepth * kPackDepth;
  p.block_stride = kPackColumns * ((p.k_padded + kAmxDepth - 1) / kAmxDepth * kAmxDepth);
  if (p.block_stride % 4096 == 0) p.block_stride += 64;
  p.data = aligned_bytes(static_cast<size_t>(p.n_padded / kPackColumns * p.block_stride));
  p.column_sums.assign(static_cast<size_t>(p.n_padded), 0);
  auto* out = reinterpret_cast<int8_t*>(p.data.get());
  for (int64_t col = 0; col < n; ++col) {
    const int64_t block = col / kPackColumns, lane = col % kPackColumns;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t v = w[col * ldw + kk];
      sum += v;
      const int64_t group = kk / kPackDepth, within = kk % kPackDepth;
      out[block * p.block_stride + group * kPackColumns * kPackDepth + lane * kPackDepth + within] = v;
    }
    p.column_sums[col] = sum;
  }
  if (p.n_padded == kPackColumns) {  // the pairs layout (gemm.h): a permutation of the block's bytes
    p.pairs = aligned_bytes(static_cast<size_t>(p.block_stride));
    auto* pairs = reinterpret_cast<int8_t*>(p.pairs.get());
    for (int64_t pair = 0; pair < p.block_stride / 128; ++pair)
      for (int64_t lane = 0; lane < 32; ++lane) {  // 8 columns x 2 groups, twice
        const int64_t col = lane / 2, group = 2 * pair + lane % 2;
        std::memcpy(pairs + pair * 128 + lane * 4, out + group * 64 + col * 4, 4);
      }
  }
  const double zero = index_zero_blocks(p, false);
  p.sparse = zero >= kSparseCrossover;
  return p;
}

PackedWeights pack_weights_runs64(const int8_t* w, int64_t n, int64_t segments, int64_t run, int64_t ldw) {
  const int64_t padded = runs64_bytes(run), k = segments * padded;
  std::vector<int8_t> spread(static_cast<size_t>(n * k), 0);
  for (int64_t col = 0; col < n; ++col)
    for (int64_t s = 0; s < segments; ++s)
      std::memcpy(spread.data() + col * k + s * padded, w + col * ldw + s * run, static_cast<size_t>(run));
  PackedWeights p = pack_weights(spread.data(), n, k, k);
  index_zero_blocks(p, false);
  return p;
}

double index_zero_blocks(PackedWeights& w, bool sparse) {
  const int64_t blocks = w.n_padded / kPackColumns, groups = w.k_padded / kPackDepth;
  w.nz_begin.assign(static_cast<size_t>(blocks + 1), 0);
  w.nz_group.clear();
  const auto* data = reinterpret_cast<const uint64_t*>(w.data.get());
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t g = 0; g < groups; ++g) {
      const uint64_t* q = data + (b * w.block_stride + g * kPackColumns * kPackDepth) / 8;
      uint64_t any = 0;
      for (int i = 0; i < 8; ++i) any |= q[i];
      if (any != 0) w.nz_group.push_back(static_cast<int32_t>(g));
    }
    w.nz_begin[static_cast<size_t>(b + 1)] = static_cast<int32_t>(w.nz_group.size());
  }
  const double total = static_cast<double>(blocks * groups);
  w.zero_block_fraction = total > 0 ? 1.0 - static_cast<double>(w.nz_group.size()) / total : 0.0;
  w.sparse = sparse;
  return w.zero_block_fraction;
}

void apply_epilogue_ref(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc) {
  const Epilogue& e = args.epilogue;
  const int32_t za = args.a_zero_points ? args.a_zero_points[row] : args.a_zero_point;
  const auto& sums = args.w->column_sums;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t col = n0 + j;
    int32_t v = acc[j] - za * sums[col];
    if (e.bias) v += e.bias[col];
    if (e.kind == OutputKind::kInt32) {
      static_cast<int32_t*>(args.c)[row * args.ldc + col] = v;
      continue;
    }
    float mult = e.per_channel ? e.multiplier[col] : e.multiplier[0];
    if (e.row_scale) mult = e.row_scale[row] * mult;
    if (e.kind == OutputKind::kUint8) {
      static_cast<uint8_t*>(args.c)[row * args.ldc + col] =
          static_cast<uint8_t>(requantize_value(v, mult, e.out_zero_point, e.clamp_lo, e.clamp_hi));
    } else {
      static_cast<float*>(args.c)[row * args.ldc + col] =
          dequantize_value(v, mult, e.fp_bias ? e.fp_bias[col] : 0.0f);
    }
  }
}

int16_t* scratch_int16(size_t count) {
  thread_local std::vector<int16_t> buffer;
  if (buffer.size() < count + 32) buffer.resize(count + 32);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<int16_t*>((address + 63) / 64 * 64);
}

namespace {

// Rows [r0, r1) of a GEMM as a GEMM of its own.
GemmArgs row_range(const GemmArgs& args, int64_t r0, int64_t r1) {
  GemmArgs sub = args;
  sub.m = r1 - r0;
  if (args.a_rows)
    sub.a_rows = args.a_rows + r0;
  else
    sub.a = args.a + r0 * args.lda;
  if (args.a_zero_points) sub.a_zero_points = args.a_zero_points + r0;
  if (args.epilogue.row_scale) sub.epilogue.row_scale = args.epilogue.row_scale + r0;
  const int64_t elem = args.epilogue.kind == OutputKind::kUint8 ? 1 : 4;
  sub.c = static_cast<uint8_t*>(args.c) + r0 * args.ldc * elem;
  return sub;
}

}  // namespace

void gemm_u8s8(const GemmArgs& args_in, Isa isa, ThreadPool* pool) {
  const GemmKernel kernel = kernel_table(isa).gemm;
  GemmArgs args = args_in;
  thread_local std::vector<int64_t> group_offsets;
  if (args.a_rows) {
    const int64_t k = args.w->k;
    if (args.a_segments < 1 || k % args.a_segments != 0 || (k / args.a_segments) % kPackDepth != 0)
      throw std::invalid_argument("gemm: implicit im2col needs K (" + std::to_string(k) + ") in " +
                                  std::to_string(args.a_segments) + " runs of a multiple of 4 bytes");
  }
  if (args.a_rows && args.w->sparse) {  // only the block-sparse loops look groups up
    const int64_t k = args.w->k, run = k / args.a_segments;
    group_offsets.resize(static_cast<size_t>(k / kPackDepth));
    for (int64_t g = 0; g < k / kPackDepth; ++g) {
      const int64_t byte = g * kPackDepth;
      group_offsets[static_cast<size_t>(g)] = byte / run * args.a_segment_stride + byte % run;
    }
    args.a_group_offsets = group_offsets.data();
  }
  const int64_t n = args.w->n;
  const int threads = pool ? pool->threads() : 1;
  // Few columns and many rows (a convolution's patch matrix): the threads take row ranges, so each keeps
  // every column and a whole register or tile block (a 16-column share per thread would halve the reuse of
  // each activation load and, on the AMX path, make every thread gather the same patches).
  // On the AMX path the same holds while the weights are one panel: a thread's row strips then pass over
  // every column without the threads packing the same strips.
  constexpr int64_t kRowUnit = 32;
  const bool amx_rows = isa == Isa::kAmx && !args.w->sparse && args.m >= kRowUnit * threads &&
                        args.w->n_padded / kPackColumns * args.w->block_stride <= kAmxPanelBytes;
  if (threads > 1 && (n < 64 * threads || amx_rows) && args.m >= 2 * kRowUnit) {
    const int64_t per_thread = ((args.m + threads - 1) / threads + kRowUnit - 1) / kRowUnit * kRowUnit;
    const int64_t tasks = (args.m + per_thread - 1) / per_thread;
    pool->parallel_for(tasks, [&](int64_t t) {
      const int64_t r0 = t * per_thread;
      kernel(row_range(args, r0, std::min(args.m, r0 + per_thread)), 0, n);
    });
    return;
  }
  // One contiguous column range per thread. Batch-1..5 ranges are multiples of the 128-column GEMV tile (a
  // narrower tile has too few accumulator chains); GEMM ranges only need the 16-column packing block, since
  // an even split matters more there than the width of the last tile (measured: 1.77-1.99x at 2 threads).
  const int64_t unit = args.m <= 5 ? 128 : 16;
  const int64_t per_thread = (n + threads - 1) / threads;
  const int64_t chunk = (per_thread + unit - 1) / unit * unit;
  const int64_t tasks = (n + chunk - 1) / chunk;
  if (tasks <= 1) {
    kernel(args, 0, n);
    return;
  }
  pool->parallel_for(tasks, [&](int64_t t) { kernel(args, t * chunk, std::min(n, (t + 1) * chunk)); });
}

void gemm_u8s8(const GemmArgs& args, ThreadPool* pool) {
  static const Isa selected = selected_isa();
  gemm_u8s8(args, selected, pool);
}

}  // namespace mighty::kernels
