#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"
#include "runtime/io/progress.h"
#include "runtime/io/timing.h"

using namespace mighty;

TEST_CASE("atomic write replaces the file and leaves no temporary behind") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_files_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "a.json").string();
  write_file_atomic(path, "first");
  write_file_atomic(path, "second, longer");
  REQUIRE(read_file(path) == "second, longer");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++entries;
  REQUIRE(entries == 1);
  REQUIRE_THROWS_AS(write_file_atomic((dir / "missing" / "x").string(), "x"), Error);
  REQUIRE_THROWS_WITH(read_file((dir / "nope").string()),
                      Catch::Contains("nope") && Catch::Contains("cannot open"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("xxHash64 matches its published value") {
  REQUIRE(hash64("") == 0xef46db3751d8e999ULL);
  REQUIRE(hash64_hex("") == "ef46db3751d8e999");
}

TEST_CASE("plain progress prints lines with rate and ETA") {
  std::FILE* f = std::tmpfile();
  {
    Progress p("work", 100, "step", f, Progress::Style::kPlain);
    for (int i = 1; i <= 100; ++i) p.update(i, "loss 1.0");
    p.note("epoch done");
    p.finish(100);
  }
  std::rewind(f);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  REQUIRE(text.find("work: 50/100 steps (50%)") != std::string::npos);
  REQUIRE(text.find("step/s ETA") != std::string::npos);
  REQUIRE(text.find("work: epoch done") != std::string::npos);
  REQUIRE(text.find("elapsed") != std::string::npos);
  REQUIRE(text.find('\r') == std::string::npos);  // no redraws in logs
  REQUIRE(format_duration(3725) == "1:02:05");
  REQUIRE(format_duration(65) == "1:05");
}

TEST_CASE("timing: throughput is the median of at least 0.2 s of batches, at least 5 and at most 10,000") {
  int64_t ones = 0, batches = 0;
  const auto start = std::chrono::steady_clock::now();
  auto slow = mighty::measure_latency([&] { ++ones; },
                                      [&] {
                                        ++batches;
                                        std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                      },
                                      7, 16, 3);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(ones == 3 + 7);
  REQUIRE(slow["throughput_batches"].get<int64_t>() == batches - 1);  // one untimed call first
  REQUIRE(batches - 1 >= 5);
  REQUIRE(seconds >= mighty::kThroughputSeconds);
  REQUIRE(slow["throughput_per_s"].get<double>() <= 16 / 0.002);
  REQUIRE(slow["throughput_batch"] == 16);
  // Instant batches stop at the cap, long before 0.2 s.
  auto fast = mighty::measure_latency([] {}, [] {}, 1, 1, 0);
  REQUIRE(fast["throughput_batches"] == 10000);
  // Slow batches stop at 5 even past 0.2 s.
  batches = 0;
  auto five = mighty::measure_latency([] {},
                                      [&] {
                                        ++batches;
                                        std::this_thread::sleep_for(std::chrono::milliseconds(60));
                                      },
                                      1, 1, 0);
  REQUIRE(five["throughput_batches"] == 5);
}
