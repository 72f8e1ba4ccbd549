/* The web module's code is the C API (runtime/mighty.h) alone: web/CMakeLists.txt exports its functions. */
#include "runtime/mighty.h"
