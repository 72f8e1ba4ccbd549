#include "kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mighty::kernels {

namespace {

// Copies of a few dozen bytes without a call or a byte loop: 16-byte moves and one overlapping move for the
// rest (n >= 16), or two overlapping moves of 8, 4 or 2 bytes (n < 16).
inline void copy_small(uint8_t* dst, const uint8_t* src, size_t n) {
  if (n >= 16) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
    if (i < n) std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else if (n >= 2) {
    std::memcpy(dst, src, 2);
    std::memcpy(dst + n - 2, src + n - 2, 2);
  } else if (n == 1) {
    *dst = *src;
  }
}

// 16 bytes and their lane-wise maximum: SSE2 (part of every x86-64), else plain bytes.
#if defined(__SSE2__)
using Block16 = __m128i;
inline Block16 load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void store16(uint8_t* p, Block16 b) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), b); }
inline Block16 max16(Block16 a, Block16 b) { return _mm_max_epu8(a, b); }
#else
struct Block16 {
  uint8_t b[16];
};
inline Block16 load16(const uint8_t* p) {
  Block16 v;
  std::memcpy(v.b, p, 16);
  return v;
}
inline void store16(uint8_t* p, Block16 v) { std::memcpy(p, v.b, 16); }
inline Block16 max16(Block16 a, Block16 b) {
  for (int i = 0; i < 16; ++i) a.b[i] = std::max(a.b[i], b.b[i]);
  return a;
}
#endif

}  // namespace

void im2col_hwc(const uint8_t* in, const ConvGeometry& g, uint8_t pad_value, uint8_t* out, int64_t ldo) {
  const int64_t oh = g.out_height(), ow = g.out_width(), c = g.channels, k = g.kernel;
  const size_t span = static_cast<size_t>(k * c);  // one kernel row of a patch
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      uint8_t* row = out + (oy * ow + ox) * ldo;
      const int64_t ix0 = ox * g.stride - g.padding;
      const bool inside_x = ix0 >= 0 && ix0 + k <= g.width;
      for (int64_t ky = 0; ky < k; ++ky) {
        const int64_t iy = oy * g.stride - g.padding + ky;
        uint8_t* dst = row + ky * k * c;
        if (iy < 0 || iy >= g.height) {
          std::memset(dst, pad_value, span);
        } else if (inside_x) {
          // The k pixels of this kernel row are adjacent in a channels-last image: one copy.
          copy_small(dst, in + (iy * g.width + ix0) * c, span);
        } else {
          for (int64_t kx = 0; kx < k; ++kx) {
            const int64_t ix = ix0 + kx;
            if (ix < 0 || ix >= g.width) {
              std::memset(dst + kx * c, pad_value, static_cast<size_t>(c));
            } else {
              copy_small(dst + kx * c, in + (iy * g.width + ix) * c, static_cast<size_t>(c));
            }
          }
        }
      }
    }
  }
}

int64_t implicit_run_bytes(int64_t kernel, int64_t channels) { return (kernel * channels + 3) / 4 * 4; }

int64_t direct_conv_slack(const ConvGeometry& g) {
  return kAmxTileRows * g.stride * g.channels + runs64_bytes(implicit_run_bytes(g.kernel, g.channels));
}

int64_t padded_image_bytes(const ConvGeometry& g) {
  return (g.height + 2 * g.padding) * (g.width + 2 * g.padding) * g.channels;
}

void pad_hwc(const uint8_t* in, const ConvGeometry& g, uint8_t pad_value, uint8_t* out) {
  const int64_t pw = g.width + 2 * g.padding, c = g.channels;
  const size_t row = static_cast<size_t>(pw * c), edge = static_cast<size_t>(g.padding * c);
  const size_t inner = static_cast<size_t>(g.width * c);
  for (int64_t y = 0; y < g.padding; ++y) std::memset(out + y * pw * c, pad_value, row);
  for (int64_t y = 0; y < g.height; ++y) {
    uint8_t* dst = out + (y + g.padding) * pw * c;
    std::memset(dst, pad_value, edge);
    std::memcpy(dst + edge, in + y * g.width * c, inner);
    std::memset(dst + edge + inner, pad_value, edge);
  }
  for (int64_t y = g.height + g.padding; y < g.height + 2 * g.padding; ++y)
    std::memset(out + y * pw * c, pad_value, row);
}

int64_t implicit_rows(const ConvGeometry& g, int64_t batch, int64_t* rows) {
  const int64_t pw = g.width + 2 * g.padding, c = g.channels, image = padded_image_bytes(g);
  const int64_t oh = g.out_height(), ow = g.out_width();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) *rows++ = b * image + (oy * g.stride * pw + ox * g.stride) * c;
  return pw * c;
}

void conv_weight_hwc(const int8_t* oihw, int64_t out_channels, int64_t in_channels, int64_t kernel,
                     int64_t run_bytes, int8_t* ohwc) {
  std::memset(ohwc, 0, static_cast<size_t>(out_channels * kernel * run_bytes));
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t c = 0; c < in_channels; ++c)
      for (int64_t ky = 0; ky < kernel; ++ky)
        for (int64_t kx = 0; kx < kernel; ++kx)
          ohwc[(o * kernel + ky) * run_bytes + kx * in_channels + c] =
              oihw[((o * in_channels + c) * kernel + ky) * kernel + kx];
}

namespace {

// Max pooling of whole 16-channel blocks with a K x K window known at compile time: each output block
// straight from its window's loads, as a tree of maxima (the two-pass loop below keeps its kernel size in
// memory and chains every maximum; measured on the default student's two pools, 2x2 at stride 2: 2.3 ->
// 0.5 us).
template <int K>
void max_pool_blocks(const uint8_t* in, int64_t row, int64_t channels, int64_t stride, int64_t oh, int64_t ow,
                     uint8_t* out) {
  for (int64_t oy = 0; oy < oh; ++oy) {
    const uint8_t* top = in + oy * stride * row;
    uint8_t* dst = out + oy * ow * channels;
    for (int64_t ox = 0; ox < ow; ++ox) {
      const uint8_t* window = top + ox * stride * channels;
      for (int64_t c0 = 0; c0 < channels; c0 += 16) {
        Block16 m[K];
        for (int ky = 0; ky < K; ++ky) {
          m[ky] = load16(window + ky * row + c0);
          for (int kx = 1; kx < K; ++kx) m[ky] = max16(m[ky], load16(window + ky * row + kx * channels + c0));
        }
        for (int ky = 1; ky < K; ++ky) m[0] = max16(m[0], m[ky]);
        store16(dst + ox * channels + c0, m[0]);
      }
    }
  }
}

}  // namespace

void max_pool_hwc(const uint8_t* in, int64_t height, int64_t width, int64_t channels, int64_t kernel,
                  int64_t stride, uint8_t* out) {
  const int64_t oh = (height - kernel) / stride + 1, ow = (width - kernel) / stride + 1;
  const int64_t row = width * channels;
  if (channels % 16 == 0 && kernel == 2) {
    max_pool_blocks<2>(in, row, channels, stride, oh, ow, out);
    return;
  }
  if (channels % 16 == 0 && kernel == 3) {
    max_pool_blocks<3>(in, row, channels, stride, oh, ow, out);
    return;
  }
  // One output row at a time: the max over its `kernel` input rows into `rows` (contiguous bytes, 16 at a
  // time), then over each window's `kernel` pixels, 16 channels at a time; `rows` has 16 bytes of slack so a
  // block may start at any pixel.
  thread_local std::vector<uint8_t> rows;
  rows.resize(static_cast<size_t>(row + 16));
  for (int64_t oy = 0; oy < oh; ++oy) {
    const uint8_t* top = in + oy * stride * row;
    int64_t i = 0;
    for (; i + 16 <= row; i += 16) {
      Block16 m = load16(top + i);
      for (int64_t ky = 1; ky < kernel; ++ky) m = max16(m, load16(top + ky * row + i));
      store16(rows.data() + i, m);
    }
    for (; i < row; ++i) {
      uint8_t m = top[i];
      for (int64_t ky = 1; ky < kernel; ++ky) m = std::max(m, top[ky * row + i]);
      rows[static_cast<size_t>(i)] = m;
    }
    uint8_t* dst = out + oy * ow * channels;
    for (int64_t ox = 0; ox < ow; ++ox) {
      const uint8_t* window = rows.data() + ox * stride * channels;
      for (int64_t c0 = 0; c0 < channels; c0 += 16) {
        Block16 m = load16(window + c0);
        for (int64_t kx = 1; kx < kernel; ++kx) m = max16(m, load16(window + kx * channels + c0));
        if (channels - c0 >= 16) {
          store16(dst + ox * channels + c0, m);
        } else {
          uint8_t part[16];
          store16(part, m);
          copy_small(dst + ox * channels + c0, part, static_cast<size_t>(channels - c0));
        }
      }
    }
  }
}

void avg_pool_hwc(const uint8_t* in, int64_t height, int64_t width, int64_t channels, int64_t kernel,
                  int64_t stride, uint8_t* out) {
  const int64_t oh = (height - kernel) / stride + 1, ow = (width - kernel) / stride + 1;
  const uint32_t count = static_cast<uint32_t>(kernel * kernel);
  std::vector<uint32_t> sum(static_cast<size_t>(channels));
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      std::fill(sum.begin(), sum.end(), 0u);
      for (int64_t ky = 0; ky < kernel; ++ky) {
        for (int64_t kx = 0; kx < kernel; ++kx) {
          const uint8_t* src = in + ((oy * stride + ky) * width + ox * stride + kx) * channels;
          for (int64_t c = 0; c < channels; ++c) sum[c] += src[c];
        }
      }
      uint8_t* dst = out + (oy * ow + ox) * channels;
      for (int64_t c = 0; c < channels; ++c) dst[c] = static_cast<uint8_t>((sum[c] + count / 2) / count);
    }
  }
}

void global_avg_pool_hwc(const uint8_t* in, int64_t pixels, int64_t channels, uint8_t* out) {
  std::vector<uint64_t> sum(static_cast<size_t>(channels), 0);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c) sum[c] += in[p * channels + c];
  const auto count = static_cast<uint64_t>(pixels);
  for (int64_t c = 0; c < channels; ++c) out[c] = static_cast<uint8_t>((sum[c] + count / 2) / count);
}

}  // namespace mighty::kernels
