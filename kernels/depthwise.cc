// Depthwise convolution: packing, the scalar reference path and the dispatch (depthwise.h).
#include "kernels/depthwise.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/dispatch.h"
#include "kernels/thread_pool.h"

namespace mighty::kernels {

DepthwiseWeights pack_depthwise(const int8_t* w, int64_t channels, int64_t kernel) {
  DepthwiseWeights p;
  p.channels = channels;
  p.kernel = kernel;
  p.channels_padded = (channels + kPackColumns - 1) / kPackColumns * kPackColumns;
  p.row_pairs = (kernel + 1) / 2;
  p.taps.assign(static_cast<size_t>(kernel * p.row_pairs * p.channels_padded * 2), 0);
  p.sums.n = channels;
  p.sums.n_padded = p.channels_padded;
  p.sums.k = kernel * kernel;
  p.sums.column_sums.assign(static_cast<size_t>(p.channels_padded), 0);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t dy = 0; dy < kernel; ++dy)
      for (int64_t dx = 0; dx < kernel; ++dx) {
        const int8_t v = w[(c * kernel + dy) * kernel + dx];
        const int64_t block = c / kPackColumns, lane = c % kPackColumns;
        p.taps[static_cast<size_t>(
            (((block * kernel + dy) * p.row_pairs + dx / 2) * kPackColumns + lane) * 2 + dx % 2)] = v;
        p.sums.column_sums[static_cast<size_t>(c)] += v;
      }
  return p;
}

GemmArgs depthwise_epilogue_args(const DepthwiseArgs& args) {
  GemmArgs g;
  g.a_zero_point = args.zero_point;
  g.w = &args.w->sums;
  g.epilogue = args.epilogue;
  g.c = args.c;
  g.ldc = args.ldc;
  return g;
}

// The definition, one output pixel and channel at a time over the padded image.
void depthwise_ref(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  const ConvGeometry& g = args.geometry;
  const DepthwiseWeights& w = *args.w;
  const int64_t ow = g.out_width(), c = g.channels, k = g.kernel;
  const int64_t padded_row = (g.width + 2 * g.padding) * c;
  const GemmArgs epilogue = depthwise_epilogue_args(args);
  std::vector<int32_t> acc(static_cast<size_t>(c));
  for (int64_t oy = row_begin; oy < row_end; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const uint8_t* corner = args.image + oy * g.stride * padded_row + ox * g.stride * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        int32_t s = 0;
        for (int64_t dy = 0; dy < k; ++dy)
          for (int64_t dx = 0; dx < k; ++dx)
            s += int32_t{corner[dy * padded_row + dx * c + ch]} * depthwise_tap(w, ch, dy, dx);
        acc[static_cast<size_t>(ch)] = s;
      }
      apply_epilogue_ref(epilogue, oy * ow + ox, 0, c, acc.data());
    }
}

void depthwise_u8s8(const DepthwiseArgs& args, Isa isa, ThreadPool* pool) {
  if (args.geometry.channels != args.w->channels || args.geometry.kernel != args.w->kernel)
    throw std::invalid_argument("depthwise: the geometry's channels and kernel differ from the weights'");
  const DepthwiseKernel kernel = kernel_table(isa).depthwise;
  const int64_t rows = args.geometry.out_height();
  const int threads = pool ? pool->threads() : 1;
  const int64_t chunk = (rows + threads - 1) / threads;
  if (threads <= 1 || rows <= 1) {
    kernel(args, 0, rows);
    return;
  }
  pool->parallel_for((rows + chunk - 1) / chunk,
                     [&](int64_t t) { kernel(args, t * chunk, std::min(rows, (t + 1) * chunk)); });
}

void depthwise_u8s8(const DepthwiseArgs& args, ThreadPool* pool) {
  static const Isa selected = selected_isa();
  depthwise_u8s8(args, selected, pool);
}

}  // namespace mighty::kernels
