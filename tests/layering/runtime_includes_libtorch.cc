// A deliberate violation: the runtime layer including LibTorch must not compile.
#include <torch/torch.h>

int layering_violation() { return 0; }
