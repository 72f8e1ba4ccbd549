// The student-first cascade, measured by verify: the int8 student answers when its confidence (top-1 softmax
// probability) clears a threshold, else the teacher does — both as .mighty files on the runtime, as
// `mighty-run serve` runs them. The threshold is chosen on the validation split only (the most examples left
// to the student while the cascade's validation accuracy stays >= the target: the teacher's own validation
// accuracy unless the recipe gives one); the test split reports it: accuracy, share answered by the student,
// batch-1 latency (mean, p99) and the CPU-seconds per million predictions of teacher-only, student-only and
// the cascade, each measured by running it.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "compress/pipeline/stages.h"
#include "compress/train/evaluate.h"
#include "runtime/exec/session.h"

namespace mighty::compress {

// {"unavailable": why} when the run cannot have a cascade (a language model, no validation split); else the
// measurements, with "threshold" to store in the student's file when the teacher is servable ("teacher_file":
// a zoo teacher exported to teacher.fp32.mighty; other teachers run in LibTorch, "teacher_file" null).
nlohmann::json measure_cascade(StageContext& ctx, const VerifySpec& spec, const Forward& student,
                               int threads);

std::string cascade_markdown(const nlohmann::json& c);

}  // namespace mighty::compress
