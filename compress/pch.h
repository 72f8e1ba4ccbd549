// Precompiled header of mighty_compress: LibTorch's headers cost ~20 s per translation unit otherwise.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <fmt/format.h>
