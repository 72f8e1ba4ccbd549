// A deliberate violation: the kernels layer including a runtime header must not compile.
#include "runtime/exec/session.h"

int layering_violation() { return 0; }
