// The scalar path of the fp32 math (kernels/fp32_math.h) and its dispatch. Compiled without ISA flags.
#include "kernels/fp32_math.h"

#include "kernels/dispatch.h"
#include "kernels/fp32_math_impl.h"
#include "kernels/fp32_ops.h"

namespace mighty::kernels {

const Fp32MathKernels kFp32MathRef = {scalar::softmax,
                                      scalar::map<gelu_t<float>>,
                                      scalar::map<silu_t<float>>,
                                      scalar::map<sigmoid_t<float>>,
                                      scalar::layer_norm,
                                      max_pool2_fp32};

const Fp32MathKernels& fp32_math(Isa isa) { return *kernel_table(isa).fp32_math; }

const Fp32MathKernels& fp32_math() {
  static const Fp32MathKernels& selected = fp32_math(selected_isa());
  return selected;
}

}  // namespace mighty::kernels
