// Convolution and pooling support for uint8 activations in HWC (channels-last) layout: a convolution is
// im2col followed by the u8 x s8 GEMM, whose [pixels][out_channels] result is HWC again, so no transposes are
// needed between layers. The weights of a conv are packed with K ordered (ky, kx, c) to match (see
// conv_weight_hwc). These are data movement and exact integer arithmetic: one implementation serves every
// path.
#pragma once

#include <cstdint>

namespace mighty::kernels {

struct ConvGeometry {
  int64_t height = 0, width = 0, channels = 0;  // input, HWC
  int64_t kernel = 1, stride = 1, padding = 0;
  int64_t out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
  int64_t patch() const { return kernel * kernel * channels; }  // K of the GEMM
};

// out[(oy * out_w + ox)][(ky * kernel + kx) * C + c] = in[iy][ix][c], or `pad_value` (the input's zero point)
// outside the image. `out` holds out_h * out_w rows of ldo >= patch() bytes.
void im2col_hwc(const uint8_t* in, const ConvGeometry& g, uint8_t pad_value, uint8_t* out, int64_t ldo);

// Implicit im2col: the GEMM reads each patch straight from an image padded with the zero point, as `kernel`
// runs of implicit_run_bytes() contiguous bytes, one per kernel row (see GemmArgs::a_rows), so no patch
// matrix is written. A run is kernel * C bytes rounded up to a whole 4-deep group: the extra bytes are the
// next pixel's, multiplied by zero weights (conv_weight_hwc's padding), so the buffer needs kRunSlack bytes
// after the last image.
inline constexpr int64_t kRunSlack = 3;
int64_t implicit_run_bytes(int64_t kernel, int64_t channels);
// The bytes after the last image that the AMX path's direct convolution may read (GemmArgs::w_runs64): a
// tile's rows past its last output row (up to 15 pixels at the layer's stride) and a run read in whole
// 64-byte steps. A buffer of images with this much after them can be given as GemmArgs::a_readable.
int64_t direct_conv_slack(const ConvGeometry& g);
int64_t padded_image_bytes(const ConvGeometry& g);  // (H + 2p) * (W + 2p) * C
// Copies an HWC image into the middle of a padded one whose border holds `pad_value`.
void pad_hwc(const uint8_t* in, const ConvGeometry& g, uint8_t pad_value, uint8_t* out);
// The GEMM's rows for `batch` padded images stored back to back: rows[(b * out_h + oy) * out_w + ox] is the
// offset of that output pixel's first patch byte; returns the run stride (one padded image row).
int64_t implicit_rows(const ConvGeometry& g, int64_t batch, int64_t* rows);

// Reorders conv weights [O][C][kh][kw] (LibTorch's layout) to [O][kh][run_bytes], each run holding (kw, C)
// and then zeros up to run_bytes: the K order of im2col_hwc with run_bytes = kernel * C, of the implicit
// im2col with implicit_run_bytes().
void conv_weight_hwc(const int8_t* oihw, int64_t out_channels, int64_t in_channels, int64_t kernel,
                     int64_t run_bytes, int8_t* ohwc);

// Pooling windows of `kernel` x `kernel` at `stride`, no padding, HWC. Average pooling rounds half up:
// (sum + count / 2) / count; with equal input and output quantization the zero point cancels.
void max_pool_hwc(const uint8_t* in, int64_t height, int64_t width, int64_t channels, int64_t kernel,
                  int64_t stride, uint8_t* out);
void avg_pool_hwc(const uint8_t* in, int64_t height, int64_t width, int64_t channels, int64_t kernel,
                  int64_t stride, uint8_t* out);
// Mean over all pixels per channel, rounded half up: [H*W][C] -> [C].
void global_avg_pool_hwc(const uint8_t* in, int64_t pixels, int64_t channels, uint8_t* out);

}  // namespace mighty::kernels
