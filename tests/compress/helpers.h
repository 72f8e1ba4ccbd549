// Shared by the compress test suites: small real datasets and fresh temporary directories.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

#include "compress/data/data.h"
#include "compress/pipeline/jobs.h"
#include "compress/recipe/recipe.h"
#include "runtime/error.h"

namespace mighty::compress::testing {

// The one-line error a recipe text gives ("no error" if it parses).
inline std::string recipe_error(const std::string& text) {
  try {
    parse_recipe(text, "test.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// The first `train` images of Fashion-MNIST's seeded training order (installed by scripts/setup), with
// `validation` held out, the first `test` test images and `calibration` calibration images.
inline Dataset small_fashion_mnist(int64_t train, int64_t validation, int64_t test, int64_t calibration,
                                   bool augment, uint64_t seed) {
  DataSpec d;
  d.kind = "images";
  const std::string base = "/usr/share/datasets/fashion-mnist/";
  d.images.train_images = base + "train-images-idx3-ubyte.gz";
  d.images.train_labels = base + "train-labels-idx1-ubyte.gz";
  d.images.test_images = base + "t10k-images-idx3-ubyte.gz";
  d.images.test_labels = base + "t10k-labels-idx1-ubyte.gz";
  d.images.validation_size = validation;
  d.images.train_limit = train;
  d.images.test_limit = test;
  d.images.calibration_size = calibration;
  d.images.mean = 0.286;
  d.images.std = 0.353;
  d.images.crop_padding = augment ? 1 : 0;
  d.images.horizontal_flip = augment;
  return load_dataset(d, seed);
}

// An empty directory of this process: <tmp>/mighty_<suite>_<pid>_<name>.
inline std::string fresh_temp_dir(const std::string& suite, const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("mighty_" + suite + "_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// An environment variable set for one test and restored when it ends (tests share a process when Catch runs
// several: a data cache left in MIGHTY_DATA made later tests miss the real one).
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old, had_ = true;
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

// Options of a compress run in `dir` that prints nothing and skips speed measurements.
inline JobOptions quiet_run(const std::string& dir) {
  JobOptions o;
  o.out_dir = dir;
  o.measure_speed = false;
  o.quiet = true;
  return o;
}

}  // namespace mighty::compress::testing
