// A deliberate violation: the runtime layer including a compress header must not compile.
#include "compress/recipe/recipe.h"

int layering_violation() { return 0; }
