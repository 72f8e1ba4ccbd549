// Precompiled header of mighty_compress: LibTorch's headers cost ~20 s per translation unit otherwise.
#pragma once
#include <fmt/format.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
